"""factorion serve stays responsive: API latencies on 32x32 grids while builds run.

The app runs under uvicorn on a free port of 127.0.0.1 (in a thread); the client is ``requests``.
Measured: ``POST /api/throughput`` on a 32x32 grid, then ``GET /api/jobs/{id}`` polled every
0.1 s (and the page, ``GET /``) while two 32x32 builds run at once (budget ``BUDGET_S`` each).
Target: a poll answers within ``TARGET_MS`` (95th percentile) while the builds use the CPUs.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time

import requests

from factorion.serve.app import create_app

BUDGET_S = 10.0
TARGET_MS = 200.0
N = 32


def grid(shift: int) -> dict:
    cells = [{"kind": "source", "y": 4 + shift, "x": 0, "item": "iron-plate"},
             {"kind": "source", "y": 20 + shift, "x": 0, "item": "iron-plate", "rate": 7.5},
             {"kind": "sink", "y": 12 + shift, "x": N - 1, "item": "iron-gear-wheel"}]
    cells += [{"kind": "obstacle", "y": y, "x": 15} for y in range(8, 24)]
    return {"grid": {"height": N, "width": N, "cells": cells}}


def _server():
    import uvicorn
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(max_jobs=2, time_limit_s=120, warm=True),
                                           log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def _ms(f) -> float:
    t = time.perf_counter()
    r = f()
    r.raise_for_status()
    return (time.perf_counter() - t) * 1e3


def run() -> dict:
    server, url = _server()
    s = requests.Session()
    time.sleep(3)  # the warm-up build (kernels loaded) ends first
    measure = [_ms(lambda: s.post(f"{url}/api/throughput", json=grid(0))) for _ in range(10)]
    ids = [s.post(f"{url}/api/build", json={**grid(k), "budget_s": BUDGET_S}).json()["id"] for k in (0, 1)]
    polls, pages, jobs, t0 = [], [], {}, time.perf_counter()
    while len(jobs) < len(ids) and time.perf_counter() - t0 < 120:
        for i in ids:
            t = time.perf_counter()
            j = s.get(f"{url}/api/jobs/{i}").json()
            polls.append((time.perf_counter() - t) * 1e3)
            if j["state"] in ("done", "failed"):
                jobs[i] = j
        pages.append(_ms(lambda: s.get(f"{url}/")))
        time.sleep(0.1)
    server.should_exit = True
    p95 = statistics.quantiles(polls, n=20)[-1]
    out = {"throughput_32x32_ms_median": round(statistics.median(measure), 1),
           "poll_ms_median": round(statistics.median(polls), 1), "poll_ms_p95": round(p95, 1),
           "page_ms_median": round(statistics.median(pages), 1), "polls": len(polls),
           "builds": [{"state": j["state"], "elapsed_s": j["elapsed_s"],
                       "throughput": j["result"]["throughput"] if j["result"] else None,
                       "method": j["result"]["method"] if j["result"] else j["error"]}
                      for j in jobs.values()],
           "target_poll_ms_p95": TARGET_MS, "meets_target": p95 <= TARGET_MS}
    for k, v in out.items():
        print(f"  {k:>26}: {v}")
    return out


if __name__ == "__main__":
    run()
