"""Build jobs for ``factorion serve``: each build runs in a process of its own.

A job is :func:`factorion.report.build_report` (the search ``factorion build`` runs) in a fresh
``spawn`` process, so the web server stays responsive while builds use the CPUs, and a job that
runs past its time limit is killed, not just abandoned. :class:`JobManager` caps how many jobs
run at once (:class:`JobsBusy` beyond it) and keeps the last finished ones for the page to poll.
A watcher thread per job reads the child's messages (``started`` once its imports are done,
then ``done`` with the result or ``failed`` with a one-line reason) and enforces the limit.
"""

from __future__ import annotations

import base64
import multiprocessing as mp
import threading
import time
import uuid
from dataclasses import dataclass, field

from factorion.core.world import World

STARTING, RUNNING, DONE, FAILED = "starting", "running", "done", "failed"
KEEP_FINISHED = 200  # finished jobs kept for polling (the oldest are forgotten first)


class JobsBusy(Exception):
    """Too many jobs are running; the message says how many."""


@dataclass
class Job:
    id: str
    budget_s: float
    policy: bool
    created: float = field(default_factory=time.monotonic)
    state: str = STARTING
    started: float | None = None    # the child's imports done: the search begins
    finished: float | None = None
    result: dict | None = None
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.state in (STARTING, RUNNING)

    def progress(self, now: float) -> float:
        """0..1: the search's share of its budget used (1 when finished)."""
        if not self.active:
            return 1.0
        if self.started is None:
            return 0.0
        return min(0.99, (now - self.started) / max(self.budget_s, 1e-9))

    def to_dict(self) -> dict:
        now = time.monotonic()
        return {"id": self.id, "state": self.state, "progress": round(self.progress(now), 3),
                "elapsed_s": round((self.finished or now) - self.created, 3), "budget_s": self.budget_s,
                "policy": self.policy, "error": self.error, "result": self.result}


def result_payload(rep) -> dict:
    """A :class:`factorion.report.BuildReport` as JSON for the page and the API."""
    r = rep.result
    return {"throughput": r.throughput, "method": r.method, "candidates": r.candidates,
            "seconds": r.seconds, "cpu_seconds": r.cpu_seconds, "blueprint": r.blueprint,
            "height": r.world.height, "width": r.world.width, "warnings": rep.warnings,
            "summary": rep.lines(), "report": rep.sim.report(),
            "per_sink": [{"y": y, "x": x, "rate": v} for (y, x), v in sorted(rep.sim.per_sink.items())],
            "png": base64.b64encode(rep.png).decode("ascii"),
            "log": [{"seconds": s, "method": m, "throughput": t} for s, m, t in r.log]}


def warm_kernels() -> None:
    """Load the simulator's and the planner's numba kernels (on a fresh clone: compile and cache
    them, ~40 s of CPU once) with a tiny build, so that no build's budget goes to it."""
    from factorion.build import parse_spec
    from factorion.report import build_report
    build_report(parse_spec("size 5 5\nsource 2 0 iron-plate\nsink 2 4 iron-plate"), budget_s=0.5)


def page_cell(world: World) -> int:
    """Pixels per tile of the page's pictures: about 640 pixels wide, 12 to 40 a tile."""
    from factorion.report import picture_cell
    return max(12, picture_cell(world, max_px=640, most=40))


def _child(conn, world: World, checkpoint: str | None, budget_s: float, seed: int) -> None:
    """The job's process: build, then send the result (or a one-line reason) to the watcher."""
    try:
        from factorion.build import load_policy
        from factorion.report import build_report
        warm_kernels()  # numba kernels (compiled once on a fresh clone) and the policy load before
        policy = load_policy(checkpoint)  # the search clock and the page's progress start
        conn.send(("started", None))
        rep = build_report(world, policy, budget_s=budget_s, seed=seed, cell=page_cell(world))
        conn.send(("done", result_payload(rep)))
    except Exception as e:  # everything the build raises goes back as one line
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        conn.send(("failed", f"{type(e).__name__}: {msg}"))
    finally:
        conn.close()


class JobManager:
    """At most ``max_jobs`` builds at once, each stopped after ``time_limit_s`` seconds in all
    (process start, imports and search). ``checkpoint``: the policy jobs with ``policy`` use."""

    def __init__(self, max_jobs: int = 2, time_limit_s: float = 180.0, checkpoint: str | None = None):
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
        if not time_limit_s > 0:
            raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
        self.max_jobs, self.time_limit_s, self.checkpoint = max_jobs, float(time_limit_s), checkpoint
        self._jobs: dict[str, Job] = {}
        self._procs: dict[str, mp.Process] = {}
        self._lock = threading.Lock()
        self._ctx = mp.get_context("spawn")

    def running(self) -> int:
        with self._lock:
            return sum(j.active for j in self._jobs.values())

    def get(self, job_id: str) -> Job:
        """The job ``job_id``; KeyError when there is none (never was, or forgotten)."""
        with self._lock:
            return self._jobs[job_id]

    def submit(self, world: World, budget_s: float, policy: bool = False, seed: int = 0) -> Job:
        """Start a build of ``world``; JobsBusy when ``max_jobs`` are running, ValueError when a
        policy is asked for and the manager has no checkpoint."""
        if policy and not self.checkpoint:
            raise ValueError("no policy checkpoint: start the server with --checkpoint to build with "
                             "the policy")
        with self._lock:
            n = sum(j.active for j in self._jobs.values())
            if n >= self.max_jobs:
                raise JobsBusy(f"{n} builds are running, the most this server runs at once "
                               f"({self.max_jobs}); try again when one is done")
            job = Job(uuid.uuid4().hex[:12], float(budget_s), bool(policy))
            self._jobs[job.id] = job
            self._forget_old()
        recv, send = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=_child, daemon=True, name=f"factorion-build-{job.id}",
                                 args=(send, world, self.checkpoint if policy else None, budget_s, seed))
        proc.start()
        send.close()  # the child holds the sending end: EOF when it dies
        self._procs[job.id] = proc
        threading.Thread(target=self._watch, args=(job, proc, recv), daemon=True,
                         name=f"factorion-watch-{job.id}").start()
        return job

    def _forget_old(self) -> None:
        done = [j for j in self._jobs.values() if not j.active]
        for j in sorted(done, key=lambda j: j.created)[:max(0, len(done) - KEEP_FINISHED)]:
            del self._jobs[j.id]

    def _finish(self, job: Job, result: dict | None = None, error: str | None = None) -> None:
        with self._lock:
            job.result, job.error = result, error
            job.state = DONE if error is None else FAILED
            job.finished = time.monotonic()

    def _watch(self, job: Job, proc, conn) -> None:
        try:
            self._read(job, conn, deadline=job.created + self.time_limit_s)
        except (EOFError, OSError):
            proc.join(timeout=5)
            self._finish(job, error=f"the build process ended without a result (exit code {proc.exitcode})")
        finally:
            conn.close()
            if job.state == FAILED and proc.is_alive():  # past its time limit: stop it now
                proc.kill()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
            self._procs.pop(job.id, None)

    def _read(self, job: Job, conn, deadline: float) -> None:
        """Follow the child's messages until it is done, failed or past the deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self._finish(job, error="stopped: the build ran past the server's time limit of "
                                               f"{self.time_limit_s:g} s")
            if not conn.poll(min(left, 0.25)):
                continue
            kind, data = conn.recv()
            if kind == "started":
                with self._lock:
                    job.started, job.state = time.monotonic(), RUNNING
            else:
                return self._finish(job, **({"result": data} if kind == "done" else {"error": data}))

    def shutdown(self) -> None:
        """Kill every running build (the server is stopping)."""
        for proc in list(self._procs.values()):
            if proc.is_alive():
                proc.kill()
