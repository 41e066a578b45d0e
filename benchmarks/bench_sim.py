"""Speed of the throughput simulator (factorion.sim).

Figures (medians over repeats; ``*_cpu`` on this process's CPU time, less sensitive to other load
on a shared box):

* ``compile``: first call in a fresh process with an empty numba cache (``cold_s``: compiling
  every function) and with the cache this checkout already holds (``warm_first_call_s``: import +
  load + first solve);
* ``tasks11``: 11x11 task factories from ``factorion.tasks`` (every family, levels 1-5: working,
  throttled, with entities missing, bare) through ``throughput_batch`` in batches of 256, plus
  ``throughput`` and ``simulate`` one world at a time; target 50,000 factories/s for the batch;
* ``fuzz11``: 11x11 random factories from ``factorion.sim.fuzz`` (belt walks, splitters,
  undergrounds, inserter taps, machines; ~half of them move something);
* ``windows32``: 32x32 windows cut from the shared blueprint corpus, as cut (almost none has a
  source or sink, so this times graph building and the early exit) and ``fed`` (each belt that
  enters the window at its edge starts at a source, each belt that leaves it ends in a sink: the
  whole solver on real layouts).

``.venv/bin/python -c "from benchmarks.bench_sim import run; run()"``
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET = 50_000
BATCH = 256
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "blueprints"

_FIRST_CALL = """
import time
t = time.perf_counter()
from factorion.core.world import World
from factorion.sim import throughput, throughput_batch
w = World(3, 4)
w.place("source", 1, 0, item="iron-plate")
w.place("transport-belt", 1, 1, direction=1)
w.place("transport-belt", 1, 2, direction=1)
w.place("sink", 1, 3, item="iron-plate")
assert throughput(w) == 15.0
import numpy as np
throughput_batch(np.stack([w.grid]))
print(time.perf_counter() - t)
"""


def _first_call(cold: bool) -> float:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if cold:
            env["NUMBA_CACHE_DIR"] = tmp
        out = subprocess.run([sys.executable, "-c", _FIRST_CALL], cwd=ROOT, env=env, capture_output=True,
                             text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _rates(fn, n: int, repeats: int) -> tuple[float, float]:
    """(items/s wall, items/s cpu): medians over repeats of fn() processing n factories."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return n / statistics.median(wall), n / max(statistics.median(cpu), 1e-9)


def _measure(name: str, worlds: list, repeats: int, single: int = 400, parallel: bool = False) -> dict:
    from factorion.sim import simulate, throughput, throughput_batch
    grids = np.stack([w.grid for w in worlds])
    rates = [w.rates for w in worlds]
    totals = throughput_batch(grids, rates=rates)

    def batch():
        for i in range(0, len(worlds), BATCH):
            throughput_batch(grids[i:i + BATCH], rates=rates[i:i + BATCH])
    sub = worlds[:single]
    b_wall, b_cpu = _rates(batch, len(worlds), repeats)
    t_wall, t_cpu = _rates(lambda: [throughput(w) for w in sub], len(sub), repeats)
    s_wall, s_cpu = _rates(lambda: [simulate(w) for w in sub[: single // 4]], len(sub[: single // 4]),
                           max(1, repeats // 2))
    if parallel:
        throughput_batch(grids[:2], rates=rates[:2], parallel=True)   # compile outside the timing
        p_wall, p_cpu = _rates(lambda: [throughput_batch(grids[i:i + BATCH], rates=rates[i:i + BATCH],
                                                         parallel=True)
                                        for i in range(0, len(worlds), BATCH)], len(worlds), repeats)
    out = {"factories": len(worlds), "moving": round(float((totals > 0).mean()), 3),
           "mean_total": round(float(totals.mean()), 3),
           "batch_per_s": round(b_wall), "batch_per_s_cpu": round(b_cpu),
           "throughput_per_s": round(t_wall), "throughput_per_s_cpu": round(t_cpu),
           "simulate_per_s": round(s_wall), "simulate_per_s_cpu": round(s_cpu)}
    print(f"{name:10s} {len(worlds):5d} factories ({out['moving']:.0%} move items): "
          f"batch {b_wall:8.0f}/s (cpu {b_cpu:8.0f}/s) | throughput() {t_wall:7.0f}/s "
          f"(cpu {t_cpu:7.0f}/s) | simulate() {s_wall:6.0f}/s")
    if parallel:
        out["batch_parallel_per_s"] = round(p_wall)
        print(f"{'':10s} batch over {os.cpu_count()} threads: {p_wall:8.0f}/s")
    return out


def _task_worlds(n: int) -> list:
    from factorion import tasks
    worlds, seed = [], 0
    while len(worlds) < n:
        for fam in tasks.FAMILIES:
            for level in tasks.LEVELS:
                try:
                    worlds.append(tasks.make_task(fam, level, size=11, seed=seed).world)
                    worlds.append(tasks.make_task(fam, level, size=11, seed=seed).solution)
                except Exception:  # noqa: BLE001 -- a family that cannot build at this seed
                    pass
        seed += 1
    return worlds[:n]


def _fed(world):
    """Belts entering the window at its edge start at a source, belts leaving it end in a sink."""
    from factorion.core import gamedata as gd
    from factorion.core.world import WorldError
    H, W = world.shape
    beltlike = set(gd.BELTS) | set(gd.SPLITTERS) | set(gd.UNDERGROUNDS)
    for e in list(world.entities()):
        if e.name not in beltlike or (e.name in gd.UNDERGROUNDS and e.io == 1):
            continue
        dy, dx = gd.DIR_OFFSETS[e.direction]
        w, h = e.size
        for (y, x) in [(e.y + i, e.x + j) for i in range(h) for j in range(w)]:
            fy, fx = y + dy, x + dx
            by, bx = y - dy, x - dx
            for (cy, cx), role in (((fy, fx), "sink"), ((by, bx), "source")):
                inside = 0 <= cy < H and 0 <= cx < W
                if not inside and world.entity_at(y, x) is not None and e.name in gd.BELTS:
                    # the belt leaves (enters) the window: replace it with a sink (source)
                    try:
                        world.remove(y, x)
                        world.place(role, y, x, item="iron-plate")
                    except WorldError:
                        pass
    return world


def _windows(n: int, rng) -> tuple[list, list]:
    from factorion.core import blueprint_world as BW
    from factorion.core.blueprint import load_blueprints
    from factorion.core.world import WorldError
    files = sorted(SHARED.glob("**/*.txt"))
    rng.shuffle(files)
    cut, fed = [], []
    for f in files:
        if len(cut) >= n:
            break
        try:
            bps = load_blueprints(f.read_text())
        except Exception:  # noqa: BLE001 -- a file the decoder refuses
            continue
        for bp in bps[:3]:
            ents = bp.raw.get("entities") or []
            if len(ents) < 20:
                continue
            try:
                full = BW.from_blueprint(bp.raw)
            except WorldError:
                continue
            top = int(rng.integers(0, max(1, full.height - 31)))
            left = int(rng.integers(0, max(1, full.width - 31)))
            try:
                w = BW.from_blueprint(bp.raw, window=(top, left, 32, 32))
            except (WorldError, ValueError):  # ValueError: a window no entity touches (rasterise bug)
                continue
            cut.append(w)
            fed.append(_fed(w.copy()))
    return cut, fed


def run(n_tasks: int = 2048, n_fuzz: int = 2048, n_windows: int = 512, repeats: int = 5,
        cold_compile: bool = True, parallel: bool = False) -> dict:
    """All figures above; ``parallel=True`` also times ``throughput_batch(parallel=True)`` on the
    task factories (compiles the threaded loop first, ~30 s once)."""
    from factorion.sim.fuzz import random_factory
    results: dict = {"target_per_s": TARGET, "cpu_count": os.cpu_count(),
                     "load_avg": [round(x, 2) for x in os.getloadavg()]}
    print(f"machine: {os.cpu_count()} cores, load average {results['load_avg']} (wall-clock figures "
          "suffer when other processes share the cores; *_cpu figures less)")
    comp = {"warm_first_call_s": round(_first_call(cold=False), 2)}
    if cold_compile:
        comp["cold_s"] = round(_first_call(cold=True), 1)
    results["compile"] = comp
    print(f"first call: {comp.get('cold_s', '-')} s with an empty numba cache (compiling), "
          f"{comp['warm_first_call_s']} s with the cache warm (import + load + solve)")
    rng = np.random.default_rng(0)
    try:
        results["tasks11"] = _measure("tasks11", _task_worlds(n_tasks), repeats, parallel=parallel)
    except ImportError:
        print("factorion.tasks not available: tasks11 skipped")
    results["fuzz11"] = _measure("fuzz11", [random_factory(i, 11, 11) for i in range(n_fuzz)], repeats)
    if SHARED.is_dir():
        cut, fed = _windows(n_windows, rng)
        results["windows32"] = _measure("windows32", cut, repeats, single=200)
        results["windows32_fed"] = _measure("win32 fed", fed, repeats, single=200)
    else:
        print(f"{SHARED} not found: windows32 skipped")
    head = results.get("tasks11", results["fuzz11"])
    results["meets_target"] = head["batch_per_s"] >= TARGET
    results["meets_target_cpu"] = head["batch_per_s_cpu"] >= TARGET
    print(f"target {TARGET}/s on 11x11 task factories: batch {head['batch_per_s']}/s wall, "
          f"{head['batch_per_s_cpu']}/s cpu")
    return results


if __name__ == "__main__":
    run()
