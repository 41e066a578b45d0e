"""``factorion serve``: the web page and its JSON API (FastAPI, served by uvicorn).

=====================  ============================================================================
``GET /``              the page (``factorion/serve/static``)
``GET /api/config``    limits (sizes, budget), whether a policy checkpoint is loaded
``GET /api/items``     every item name, for the page's searchable list
``POST /api/throughput``  measure a grid or a pasted blueprint: report, per-sink rates, picture
``POST /api/build``    start a build job (202 with its id; 429 when ``max_jobs`` are running)
``GET /api/jobs/{id}`` a job's state, progress and, once done, its result
``GET /docs``          the generated OpenAPI page
=====================  ============================================================================

Bad input answers 4xx with ``{"detail": "one line"}``: 422 for a body the schema rejects (sizes,
rates, budget), 400 for a task the game data rejects (unknown items, malformed strings, a pasted
factory out of the size limits), 404 for an unknown job, 413 for a body over ``MAX_BODY``, 429
when too many builds run. The measuring and building go through
:mod:`factorion.report`, the functions the command line prints from.
"""

from __future__ import annotations

import base64
import threading
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from factorion.core.blueprint import BlueprintError
from factorion.core.world import WorldError
from factorion.serve import tasks as T
from factorion.serve.jobs import JobManager, JobsBusy, page_cell, warm_kernels

STATIC = Path(str(files("factorion.serve") / "static"))


def _one_line(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {e.get('msg', 'invalid')}" if loc else str(e.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


MAX_BODY = 2 * T.MAX_TEXT + 65536  # bytes of a request body (JSON escapes may double the text)


def _errors(app: FastAPI) -> None:
    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        n = request.headers.get("content-length", "")
        if n.isdigit() and int(n) > MAX_BODY:
            return JSONResponse({"detail": f"the request is {int(n)} bytes, over the limit of {MAX_BODY}"},
                                status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    @app.exception_handler(WorldError)
    @app.exception_handler(BlueprintError)
    async def bad_task(_: Request, exc: Exception):
        return JSONResponse({"detail": str(exc).splitlines()[0] if str(exc) else "bad task"}, status_code=400)

    @app.exception_handler(JobsBusy)
    async def busy(_: Request, exc: JobsBusy):
        return JSONResponse({"detail": str(exc)}, status_code=429)


def measure(task: T.TaskIn) -> dict:
    """The throughput report, per-sink rates, bottlenecks, idle entities and picture of a task."""
    from factorion.report import picture, throughput_text
    from factorion.sim import simulate
    world = T.to_world(task, 1, T.MEASURE_MAX)
    sim = simulate(world)

    def cells(cs):
        return [{"y": y, "x": x, "name": sim.names.get((y, x), "?")} for y, x in cs]
    return {"total": sim.total, "height": world.height, "width": world.width, "converged": sim.converged,
            "counts": dict(sorted(world.counts().items(), key=lambda t: (-t[1], t[0]))),
            "per_sink": [{"y": y, "x": x, "rate": v, "items": sim.flow.get((y, x), {})}
                         for (y, x), v in sorted(sim.per_sink.items())],
            "bottlenecks": cells(sim.bottlenecks), "idle": cells(sim.idle), "jammed": cells(sim.jammed),
            "report": throughput_text(world, sim=sim),
            "png": base64.b64encode(picture(world, sim, title=f"{sim.total:.4g} items/s",
                                            cell=page_cell(world))).decode("ascii")}


def _routes(app: FastAPI, jobs: JobManager) -> None:
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/config", summary="Limits and whether builds may use a policy")
    def config():
        return {"size": {"min": T.SIZE_MIN, "max": T.SIZE_MAX}, "measure_max": T.MEASURE_MAX,
                "budget": {"min": T.BUDGET_MIN, "max": T.BUDGET_MAX, "default": T.BUDGET_DEFAULT},
                "max_rate": T.MAX_RATE, "policy": bool(jobs.checkpoint), "max_jobs": jobs.max_jobs,
                "time_limit_s": jobs.time_limit_s}

    @app.get("/api/items", summary="Item names a source or sink may carry")
    def items():
        from factorion.core import gamedata as gd
        from factorion.core.render import abbrev
        names = sorted(gd.item_names())
        return {"items": names, "abbrev": {n: abbrev(n) for n in names}}

    @app.post("/api/throughput", summary="Measure a factory: throughput per sink, bottlenecks, idle entities")
    def throughput(task: T.TaskIn):
        return measure(task)

    @app.post("/api/build", status_code=202, summary="Start a build job (poll GET /api/jobs/{id})")
    def build(req: T.BuildIn):
        from factorion.build import infer_task
        world = T.to_world(req)
        infer_task(world)  # an impossible task is a 400 now, not a failed job later
        try:
            job = jobs.submit(world, req.budget_s, policy=req.policy, seed=req.seed)
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        return job.to_dict()

    @app.get("/api/jobs/{job_id}", summary="A build job: state, progress, result")
    def job(job_id: str):
        try:
            return jobs.get(job_id).to_dict()
        except KeyError:
            raise HTTPException(404, f"no job {job_id[:40]!r} (unknown, or forgotten after "
                                     "many newer ones)") from None


def create_app(checkpoint: str | None = None, max_jobs: int = 2, time_limit_s: float = 180.0,
               warm: bool = False) -> FastAPI:
    """The app; ``warm`` loads the numba kernels in a background thread at start-up."""
    jobs = JobManager(max_jobs=max_jobs, time_limit_s=time_limit_s, checkpoint=checkpoint)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if warm:
            threading.Thread(target=warm_kernels, daemon=True, name="factorion-warm").start()
        yield
        jobs.shutdown()

    app = FastAPI(title="factorion serve", lifespan=lifespan,
                  description="Place sources and sinks, build a factory, copy its blueprint string.")
    app.state.jobs = jobs
    _errors(app)
    _routes(app, jobs)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, checkpoint: str | None = None, max_jobs: int = 2,
          time_limit_s: float = 180.0) -> int:
    """Run the app with uvicorn until interrupted (what ``factorion serve`` does)."""
    import uvicorn
    if checkpoint:
        Path(checkpoint).stat()  # a missing checkpoint is one line now, not a failed job later
    print(f"factorion serve: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)", flush=True)
    uvicorn.run(create_app(checkpoint, max_jobs, time_limit_s, warm=True), host=host, port=port,
                log_level="warning")
    return 0
