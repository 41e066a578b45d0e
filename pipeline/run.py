"""``make data``: download -> decode -> chunk -> write, plus the dataset card.

    python -m pipeline.run [--blueprints DIR] [--out data/out] [--sizes 11,16] [--stride N]
                           [--workers 2] [--max-removed 5] [--seed 0] [--no-network] ...

Stages (module docs say what each does):

1. :mod:`pipeline.download` -- the sources of ``data/sources.toml`` (network ones fail fast, with one
   line, when offline; ``--no-network`` skips them), the embedded ``factorion/samples`` folder, and
   every ``--blueprints DIR`` (``*.txt`` strings, recursive).
2. :mod:`pipeline.decode` -- every blueprint of every book, 2.0-normalised, content-hashed.
3. :mod:`pipeline.chunk` -- rasterise once, windows, edge sources/sinks and their items, reference
   throughput (``factorion.sim`` when installed), level 1 / 3 / 4 examples with expert actions.
4. :mod:`pipeline.write` -- the schema, split by blueprint, atomic Parquet; :mod:`pipeline.card`.

Stages 2-3 run in ``--workers`` processes, one raw string (file / book) per task, largest first (the
long tasks start early); results are consumed in that same order with a bounded number in flight, so the
output is the same for any worker count and memory stays bounded. Deduplication is global and
deterministic in that order: a blueprint id (content hash) seen before is dropped with a ``duplicate``
reject (so a blueprint in a big book and again alone keeps the book's provenance), and so is a window
whose complete grid was already written from another blueprint (no identical window in two splits).
Workers are told the ids already seen when a task is sent, and skip those blueprints early.

Output (``--out``, default ``data/out``): ``examples/{train,val,test}/part-*.parquet``,
``blueprints.parquet``, ``rejects.parquet``, ``card.md``, ``samples.png``, ``stats.json`` -- the layout
and the schema are documented in :mod:`pipeline.write`. ``stats.json`` holds the run's figures (rows per
split / level, windows/s, CPU seconds per stage, peak memory of the main process and of the workers).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import heapq
import json
import logging
import math
import multiprocessing as mp
import os
import resource
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from factorion.core import blueprint_world as BW
from factorion.core.world import (
    ITEM,
    K_SINK,
    K_SOURCE,
    KIND,
    PART,
    RECIPE,
    World,
    WorldError,
    item_name,
    max_cells,
    recipe_name,
    set_max_cells,
)
from pipeline import chunk as C
from pipeline import decode as D
from pipeline import write as W
from pipeline.decode import RejectRow, decode_record
from pipeline.download import DEFAULT_CONFIG, Config, fetch_all, load_config

log = logging.getLogger("pipeline.run")

__all__ = ["RunConfig", "run", "main", "process_record"]


@dataclass
class RunConfig:
    out: str = "data/out"
    blueprints: tuple[str, ...] = ()
    config: str = DEFAULT_CONFIG
    network: bool = True
    limit: int | None = None  # items per source
    workers: int = 2
    chunk: C.ChunkConfig = field(default_factory=C.ChunkConfig)
    fractions: tuple[float, ...] = W.DEFAULT_FRACTIONS
    simulate: bool = True
    progress: bool = True
    n_samples: int = 12  # windows in samples.png
    rows_per_group: int = 2048
    rows_per_file: int = 100_000
    in_flight: int = 0  # tasks in flight (0: 3 x workers)


# --------------------------------------------------------------------------- worker side
@dataclass(slots=True)
class BPResult:
    meta: dict  # a BLUEPRINT_SCHEMA row without n_windows / n_examples
    windows: list[tuple[bytes, list[dict]]]  # (window key, example rows)


@dataclass(slots=True)
class RecordResult:
    blueprints: list[BPResult]
    rejects: list[RejectRow]
    counts: Counter
    times: Counter


_STATE: dict[str, Any] = {}


def _init_worker(cfg: C.ChunkConfig, fractions: tuple[float, ...], simulate: bool) -> None:
    gc.disable()  # decoded JSON is millions of acyclic objects: collections only cost time
    _STATE.update(cfg=cfg, fractions=fractions, throughput=C.default_throughput() if simulate else None,
                  tasks=0)


def _items_recipes(grid: np.ndarray) -> tuple[list[str], list[str]]:
    k = grid[KIND]
    items = np.unique(grid[ITEM][(k == K_SOURCE) | (k == K_SINK)])
    recs = np.unique(grid[RECIPE][grid[PART] == 1])
    return ([item_name(int(i)) for i in items if i], [recipe_name(int(r)) for r in recs if r])


def _rows(win: C.WindowInfo, examples: list[C.Example], prov: dict, shape: tuple[int, int]) -> list[dict]:
    gbytes = win.grid.astype("<i2", copy=False).tobytes()
    items, recs = _items_recipes(win.grid)
    k = win.grid[KIND]
    common = {**prov, "bp_height": shape[0], "bp_width": shape[1], "window_top": win.top,
              "window_left": win.left, "window_size": win.size, "grid_shape": list(win.grid.shape),
              "grid": gbytes, "reference_throughput": win.ref_throughput, "n_entities": win.n_modelled,
              "n_sources": int((k == K_SOURCE).sum()), "n_sinks": int((k == K_SINK).sum()),
              "n_edge_placeholder": win.n_placeholder, "items": items, "recipes": recs}
    rows = []
    for ex in examples:
        sbytes = gbytes if ex.level == 1 else ex.start_grid.astype("<i2", copy=False).tobytes()
        rows.append({**common,
                     "example_id": f"{prov['bp_id']}-{win.size}-{win.top}-{win.left}-L{ex.level}",
                     "start_grid": sbytes, "level": ex.level, "n_removed": len(ex.targets),
                     "targets": ex.targets, "actions": ex.actions, "start_throughput": ex.start_throughput})
    return rows


def _chunk_blueprint(bp, meta: dict, rec: dict, times: Counter, stats: C.ChunkStats) -> BPResult:
    cfg: C.ChunkConfig = _STATE["cfg"]
    throughput = _STATE["throughput"]
    t1 = time.process_time()
    world = BW.from_blueprint(bp.raw)
    t2 = time.process_time()
    prep = C.prepare(world, bp.raw.get("entities"))
    t3 = time.process_time()
    times["rasterise_s"] += t2 - t1
    times["prepare_s"] += t3 - t2
    meta["height"], meta["width"] = world.shape
    prov = {k: meta[k] for k in ("bp_id", "split", "source", "key", "bp_path", "label", "title", "author",
                                 "url", "version")}
    wins = []
    for win in C.iter_windows(prep, bp.bp_id, cfg, throughput, stats):
        exs = C.make_examples(win, bp.bp_id, cfg, throughput, stats)
        wins.append((C.window_key(win.grid), _rows(win, exs, prov, world.shape)))
    times["windows_s"] += time.process_time() - t3
    return BPResult(meta, wins)


def process_record(task: tuple[dict, frozenset]) -> RecordResult:
    """Decode one raw string and chunk every blueprint not in ``known`` (runs in a worker)."""
    rec, known = task
    cfg: C.ChunkConfig = _STATE["cfg"]
    counts, times = Counter(), Counter()
    stats = C.ChunkStats()
    t0 = time.process_time()
    try:
        bps, rejects = decode_record(rec["text"], rec["source"], rec["key"])
    except Exception as e:  # noqa: BLE001 - one bad string must not stop the run
        log.debug("internal error decoding %s %s", rec["source"], rec["key"], exc_info=True)
        bps, rejects = [], [RejectRow(rec["source"], rec["key"], "", "decode", "internal",
                                      f"{type(e).__name__}: {e}"[:300])]
    times["decode_s"] += time.process_time() - t0
    out: list[BPResult] = []
    while bps:
        bp = bps.pop(0)  # each decoded blueprint is freed (reference counting) once chunked
        meta = {"bp_id": bp.bp_id, "split": W.split_of(bp.bp_id, cfg.seed, _STATE["fractions"]),
                "source": rec["source"], "key": rec["key"], "bp_path": bp.path, "label": bp.label,
                "book_labels": list(bp.book_labels), "title": rec["title"], "author": rec["author"],
                "url": rec["url"], "version": bp.version, "n_entities": bp.n_entities,
                "height": 0, "width": 0}
        if bp.bp_id in known:  # a duplicate of one already kept: no work (main records the reject)
            out.append(BPResult(meta, []))
            continue
        try:
            out.append(_chunk_blueprint(bp, meta, rec, times, stats))
        except WorldError as e:
            rejects.append(RejectRow(rec["source"], rec["key"], bp.path, "chunk", "rasterise", str(e),
                                     bp.bp_id))
        except Exception as e:  # noqa: BLE001 - one bad blueprint must not stop the run
            log.debug("internal error on %s %s %s", rec["source"], rec["key"], bp.path, exc_info=True)
            rejects.append(RejectRow(rec["source"], rec["key"], bp.path, "chunk", "internal",
                                     f"{type(e).__name__}: {e}"[:300], bp.bp_id))
        del bp
    counts.update(stats.counts)
    times["sim_s"] += stats.sim_s
    _STATE["tasks"] = _STATE.get("tasks", 0) + 1
    if _STATE["tasks"] % 64 == 0:  # the rare cycles (exception tracebacks); cheap with the JSON freed
        gc.collect()
    return RecordResult(out, rejects, counts, times)


# --------------------------------------------------------------------------- ordered, bounded pool map
def die_with_parent(poll_s: float = 1.0) -> None:
    """Make this (worker) process exit when its parent dies, even when it is blocked waiting for work:
    ``PR_SET_PDEATHSIG`` = SIGKILL on Linux, and on any POSIX a daemon thread that polls the parent id
    (it changes when the parent dies and the worker is re-parented)."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _worker_init(initializer: Callable, initargs: tuple) -> None:
    die_with_parent()
    initializer(*initargs)


def ordered_map(fn: Callable, tasks: Iterable, workers: int, in_flight: int,
                initializer: Callable, initargs: tuple) -> Iterator:
    """``map(fn, tasks)`` over ``workers`` processes, results in task order, at most ``in_flight``
    tasks submitted and not yet consumed (``tasks`` is read lazily, so it may depend on what the
    consumer has seen). Workers exit when this process dies (:func:`die_with_parent`)."""
    if workers <= 1:
        initializer(*initargs)
        try:
            for t in tasks:
                yield fn(t)
        finally:
            gc.enable()
        return
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else methods[0])
    it = iter(tasks)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(initializer, initargs)) as ex:
        pending: deque = deque()
        for t in it:
            pending.append(ex.submit(fn, t))
            if len(pending) >= in_flight:
                break
        while pending:
            res = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(ex.submit(fn, nxt))
            yield res


# --------------------------------------------------------------------------- main side
def _folder_config(cfg: Config) -> Config:
    """Network sources dropped (``--no-network``)."""
    return Config(cfg.download, [s for s in cfg.sources if s.get("kind") == "folder"])


def _resolve_folders(cfg: Config) -> Config:
    """A relative folder source missing from the working directory is looked up from the repo root."""
    root = Path(__file__).resolve().parents[1]
    sources = []
    for s in cfg.sources:
        if s.get("kind") == "folder" and s.get("path") and not Path(s["path"]).is_absolute() \
                and not Path(s["path"]).exists() and (root / s["path"]).exists():
            s = {**s, "path": str(root / s["path"])}
        sources.append(s)
    return Config(cfg.download, sources)


def gather(rc: RunConfig) -> tuple[list[dict], list[RejectRow], list[str]]:
    """Raw strings from every source (as plain dicts, for cheap pickling), download rejects, errors."""
    cfg = _resolve_folders(load_config(rc.config))
    if not rc.network:
        cfg = _folder_config(cfg)
    res = fetch_all(cfg, limit=rc.limit, progress=rc.progress, folders=list(rc.blueprints))
    recs = [{"source": r.source, "key": r.key, "text": r.text, "title": r.title, "author": r.author,
             "url": r.url} for r in res.records]
    rejects = [RejectRow(r.source, r.key, "", "download", "download", r.reason) for r in res.rejects]
    return recs, rejects, list(res.errors)


class _Samples:
    """A deterministic sample of complete windows for samples.png: the smallest hashes of example ids."""

    def __init__(self, n: int):
        self.n, self.heap = n, []

    def offer(self, row: dict) -> None:
        if self.n <= 0 or row["level"] != 1:
            return
        h = -int.from_bytes(hashlib.blake2b(row["example_id"].encode(), digest_size=8).digest(), "big")
        item = (h, row["example_id"], row["grid"], tuple(row["grid_shape"]), row["label"] or row["title"],
                row["reference_throughput"])
        if len(self.heap) < self.n:
            heapq.heappush(self.heap, item)
        elif h > self.heap[0][0]:
            heapq.heapreplace(self.heap, item)

    def worlds(self) -> tuple[list[World], list[str]]:
        worlds, titles = [], []
        for _, _eid, g, shape, label, tp in sorted(self.heap, key=lambda t: t[1]):
            w = World(shape[1], shape[2])
            w.grid = np.frombuffer(g, dtype="<i2").reshape(shape).astype(np.int16)
            worlds.append(w)
            tps = "n/a" if tp is None or math.isnan(tp) else f"{tp:.3g}/s"
            titles.append(f"{(label or '')[:18]} {shape[1]}x{shape[2]} {tps}")
        return worlds, titles


def _peak_mb() -> dict[str, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"peak_rss_main_mb": round(me.ru_maxrss / 1024, 1),
            "peak_rss_worker_mb": round(kids.ru_maxrss / 1024, 1),
            "cpu_main_s": round(me.ru_utime + me.ru_stime, 2),
            "cpu_workers_s": round(kids.ru_utime + kids.ru_stime, 2)}


class RunError(Exception):
    """A run that must not replace the dataset (no records, no examples, an --out that is no dataset)."""


def run(rc: RunConfig) -> dict:
    """Build the dataset; return the figures (also written to ``<out>/stats.json``).

    Everything is written into a staging folder beside ``--out`` and swapped in whole at the end
    (:func:`pipeline.write.swap_in`): a run that fails, is killed, or yields no records or no
    examples (:class:`RunError`) leaves the previous dataset exactly as it was."""
    t_start = time.perf_counter()
    out = Path(rc.out)
    W.prepare_out(out)  # refuses a folder that is no dataset; clears stale staging of dead runs
    recs, rejects, errors = gather(rc)
    for e in errors:
        print(e, file=sys.stderr)
    if not recs:
        raise RunError(f"no blueprint strings from any source ({len(errors)} source error(s), {len(rejects)} "
                       f"rejected); {out} left as it was")
    staging = W.staging_path(out)
    try:
        stats = _build(rc, staging, recs, rejects, errors, t_start)
        if stats["rows"] == 0:
            raise RunError(f"{stats['records']} records gave no examples ({stats['rejects_by_reason']}); "
                           f"{out} left as it was")
        W.swap_in(staging, out)
    finally:
        import shutil
        shutil.rmtree(staging, ignore_errors=True)
    return stats


def _build(rc: RunConfig, staging: Path, recs: list[dict], rejects: list[RejectRow], errors: list[str],
           t_start: float) -> dict:
    """Decode, chunk and write the whole dataset into ``staging``; return the figures."""
    from pipeline import card as CARD

    recs.sort(key=lambda r: (-len(r["text"]), r["source"], r["key"]))
    t_gathered = time.perf_counter()
    gc.freeze()  # the raw strings live to the end; keep them out of every collection
    staging.mkdir(parents=True)
    writer = W.SplitWriter(staging / "examples", rows_per_group=rc.rows_per_group,
                           rows_per_file=rc.rows_per_file)
    seen_bp: set[str] = set()
    seen_win: set[bytes] = set()
    bp_rows: list[dict] = []
    counts, times = Counter(), Counter()
    card = CARD.CardStats()
    samples = _Samples(rc.n_samples)
    throughput_available = rc.simulate and C.default_throughput() is not None
    if throughput_available and rc.workers > 1:  # compile (or load) the simulator once, before forking
        C.default_throughput()(World(1, 1))

    def tasks():
        for r in recs:
            yield r, frozenset(seen_bp)
    bar = tqdm(total=len(recs), desc="decode+chunk", unit="file", disable=not rc.progress, smoothing=0.05)
    written = 0
    try:
        for res in ordered_map(process_record, tasks(), rc.workers, rc.in_flight or 3 * max(1, rc.workers),
                               _init_worker, (rc.chunk, tuple(rc.fractions), rc.simulate)):
            rejects.extend(res.rejects)
            counts.update(res.counts)
            times.update(res.times)
            for bp in res.blueprints:
                m = bp.meta
                if m["bp_id"] in seen_bp:
                    rejects.append(RejectRow(m["source"], m["key"], m["bp_path"], "dedup", "duplicate",
                                             "same content hash as a blueprint kept earlier", m["bp_id"]))
                    continue
                seen_bp.add(m["bp_id"])
                nw = ne = 0
                for key, rows in bp.windows:
                    if key in seen_win:
                        counts["skip_repeat_across_blueprints"] += 1
                        continue
                    seen_win.add(key)
                    nw += 1
                    for row in rows:
                        writer.add(row)
                        card.add(row)
                        samples.offer(row)
                        ne += 1
                if nw == 0:
                    rejects.append(RejectRow(m["source"], m["key"], m["bp_path"], "chunk", "no-windows",
                                             "no window passed the filters", m["bp_id"]))
                bp_rows.append({**m, "n_windows": nw, "n_examples": ne})
                card.add_blueprint(m, nw)
                written += ne
            bar.update(1)
            bar.set_postfix(bps=len(seen_bp), windows=len(seen_win), rows=written, refresh=False)
        bar.close()
        per_split = writer.close()
    except BaseException:
        bar.close()
        writer.abort()
        raise
    t_chunked = time.perf_counter()

    out = staging  # the tables, the card and the figures go into the staging folder too
    _write_tables(out, bp_rows, rejects)
    t_written = time.perf_counter()

    png = None
    if samples.heap:
        worlds, titles = samples.worlds()
        png = CARD.write_samples_png(worlds, titles, out / "samples.png")
    n_windows = len(seen_win)
    chunk_wall = t_chunked - t_gathered
    stats = {
        "records": len(recs), "blueprints_kept": len(seen_bp), "windows": n_windows,
        "rows": written, "rows_per_split": per_split, "rows_per_level": dict(sorted(card.levels.items())),
        "windows_per_size": dict(sorted(card.sizes_windows.items())),
        "rejects_by_reason": dict(Counter(f"{r.stage}/{r.reason}" for r in rejects).most_common()),
        "source_errors": errors, "simulator": throughput_available,
        "json": "orjson" if D.HAVE_ORJSON else "stdlib",
        "counts": dict(sorted(counts.items())),
        "cpu_s": {k: round(v, 2) for k, v in sorted(times.items())},
        "wall_s": {"gather": round(t_gathered - t_start, 2), "decode_chunk_write": round(chunk_wall, 2),
                   "tables": round(t_written - t_chunked, 2), "total": 0.0},
        "windows_per_s": round(n_windows / chunk_wall, 1) if chunk_wall > 0 else 0.0,
        "config": _config_figures(rc),
    }
    stats["wall_s"]["total"] = round(time.perf_counter() - t_start, 2)
    stats.update(_peak_mb())
    CARD.write_card(out / "card.md", stats, card, rejects, png)
    stats["wall_s"]["total"] = round(time.perf_counter() - t_start, 2)
    W.write_bytes_atomic((json.dumps(stats, indent=2, default=str) + "\n").encode(), out / "stats.json")
    return stats


def _write_tables(out: Path, bp_rows: list[dict], rejects: list[RejectRow]) -> None:
    """Empty parts for empty splits (every split folder holds a readable file), then the tables."""
    import pyarrow as pa
    for s in W.SPLITS:
        folder = out / "examples" / s
        if not any(folder.glob("*.parquet")):
            W.write_table_atomic(W.EXAMPLE_SCHEMA.empty_table(), folder / "part-00000.parquet")
    W.write_table_atomic(pa.Table.from_pylist(bp_rows, schema=W.BLUEPRINT_SCHEMA), out / "blueprints.parquet")
    rej_rows = [{"source": r.source, "key": r.key, "path": r.path, "stage": r.stage, "reason": r.reason,
                 "detail": r.detail, "bp_id": r.bp_id} for r in rejects]
    W.write_table_atomic(pa.Table.from_pylist(rej_rows, schema=W.REJECT_SCHEMA), out / "rejects.parquet")


def _config_figures(rc: RunConfig) -> dict:
    keys = ("sizes", "stride", "max_windows", "min_entities", "max_obstacle_frac", "max_removed",
            "impact_tries", "zero_keep", "expert", "seed")
    return {**{k: getattr(rc.chunk, k) for k in keys}, "fractions": list(rc.fractions), "workers": rc.workers,
            "network": rc.network, "blueprints": list(rc.blueprints)}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.replace(" ", "").split(",") if x)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.replace(" ", "").split(",") if x)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        print(f"{self.prog}: error: {message} (see '{self.prog} -h')", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv: Sequence[str] | None = None) -> RunConfig:
    p = _Parser(prog="python -m pipeline.run", description=__doc__.split("\n")[0])
    p.add_argument("--blueprints", action="append", default=[], metavar="DIR",
                   help="also read *.txt blueprint strings under DIR (repeatable), e.g. ../shared/blueprints")
    p.add_argument("--out", default="data/out", help="output folder (default: %(default)s)")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="sources file (default: %(default)s)")
    p.add_argument("--no-network", action="store_true", help="skip network sources (folders only)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N strings per source")
    p.add_argument("--sizes", default="11,16", help="window sides, comma-separated (default: %(default)s)")
    p.add_argument("--stride", type=int, default=None, help="window stride (default: size // 2)")
    p.add_argument("--max-windows", type=int, default=64, help="windows kept per blueprint and size (0: all)")
    p.add_argument("--min-entities", type=int, default=4, help="modelled entities a window needs")
    p.add_argument("--max-obstacle-frac", type=float, default=0.5, help="obstacle cells a window may have")
    p.add_argument("--max-removed", type=int, default=5, help="level 4 removes 2..N entities")
    p.add_argument("--zero-keep", type=float, default=0.0,
                   help="fraction of zero-throughput windows kept (default: none)")
    p.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test fractions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--expert", choices=("flow", "planner"), default="flow",
                   help="expert order: flow (fast, same as the planner's) or planner (call it)")
    p.add_argument("--no-sim", action="store_true",
                   help="do not simulate (throughputs NaN, all windows kept)")
    p.add_argument("--samples", type=int, default=12, help="windows drawn in samples.png")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--max-cells", type=int, metavar="N", help="largest blueprint world in cells, height x "
                   "width (default 1048576 = 1024x1024, or $FACTORION_MAX_CELLS); a bigger one is a reject")
    a = p.parse_args(argv)
    if a.max_cells is not None:
        if a.max_cells < 1:
            p.error(f"--max-cells: at least 1, got {a.max_cells}")
        set_max_cells(a.max_cells)  # this process and its (forked) workers
    try:
        sizes, fractions = _ints(a.sizes), _floats(a.split)
    except ValueError:
        p.error(f"--sizes takes integers and --split numbers, comma-separated: {a.sizes!r}, {a.split!r}")
    if not sizes or min(sizes) < 3 or max(sizes) ** 2 > max_cells():
        p.error(f"--sizes: window sides of at least 3 and at most {math.isqrt(max_cells())} "
                "(the world-size limit, FACTORION_MAX_CELLS)")
    if len(fractions) != 3 or not all(math.isfinite(f) and f >= 0 for f in fractions) or sum(fractions) <= 0:
        p.error("--split: three non-negative fractions")
    if a.max_removed < 2:
        p.error("--max-removed: at least 2")
    if a.limit is not None and a.limit < 1:
        p.error(f"--limit: at least 1 string per source, got {a.limit}")
    if a.workers < 1 or (a.stride is not None and a.stride < 1) or a.max_windows < 0 or a.samples < 0:
        p.error("--workers and --stride: at least 1; --max-windows and --samples: at least 0")
    cfg = C.ChunkConfig(sizes=sizes, stride=a.stride, min_entities=a.min_entities,
                        max_obstacle_frac=a.max_obstacle_frac, max_windows=a.max_windows,
                        max_removed=a.max_removed, zero_keep=a.zero_keep, expert=a.expert,
                        seed=a.seed)
    return RunConfig(out=a.out, blueprints=tuple(a.blueprints), config=a.config, network=not a.no_network,
                     limit=a.limit, workers=max(1, a.workers), chunk=cfg, fractions=fractions,
                     simulate=not a.no_sim, progress=not a.no_progress, n_samples=a.samples)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    rc = parse_args(argv)
    try:
        stats = run(rc)
    except (RunError, ValueError, OSError) as e:  # the previous dataset is untouched
        print(f"python -m pipeline.run: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(f"{stats['rows']} rows ({stats['rows_per_split']}) from {stats['windows']} windows of "
          f"{stats['blueprints_kept']} blueprints in {stats['wall_s']['total']} s -> {rc.out}")
    print(f"rows per level {stats['rows_per_level']}; {stats['windows_per_s']} windows/s; "
          f"peak RSS main {stats['peak_rss_main_mb']} MB, worker {stats['peak_rss_worker_mb']} MB")
    if stats["rejects_by_reason"]:
        print("rejects: " + ", ".join(f"{k} {v}" for k, v in stats["rejects_by_reason"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
