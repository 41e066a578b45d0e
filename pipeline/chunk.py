"""Chunk stage of ``make data``: one rasterised blueprint -> windows -> partial-factory examples.

A blueprint is rasterised ONCE (:func:`factorion.core.blueprint_world.from_blueprint`); every
window is a numpy slice of that grid, fixed up as below, so a 1000x1000 blueprint is never
rasterised again per window.

Windows
-------
For each size ``s`` (square), window tops/lefts step by ``stride`` (default ``s // 2``) from 0 to the
last position that fits (a blueprint smaller than ``s`` gets one window, centred, padded with empty
cells). A cheap integral-image pre-filter on the full grid drops windows with fewer than
``min_entities`` modelled anchors or with more than ``max_obstacle_frac`` obstacle cells; the survivors
are visited in a seeded random order until ``max_windows`` per blueprint and size are kept. A window is
then built and kept only if it still has ``min_entities`` modelled entities (sources, sinks and obstacles
do not count), is not a repeat of a window already kept from this blueprint, and -- when a simulator is
available -- its reference throughput is > 0 (``zero_keep`` keeps that fraction of the others).

Fix-ups of a window slice (equal to ``blueprint_world.from_blueprint(bp, window=...)`` plus the edge rule):

1. *Clipped entities*: every cell of a modelled entity that is not wholly inside the window becomes an
   obstacle cell (as ``from_blueprint`` with a window does).
2. *Edge belts* (the edge rule). The full blueprint's belt links are computed once, with the
   conventions of ``factorion.tasks.Flow`` (the simulator's): a belt, underground output or splitter
   cell feeds the cell in front of it when that cell accepts from that side (a belt not facing back; a
   splitter or an underground input facing the same way; a sink); an underground input feeds its
   partner (the nearest same-name output facing the same way within ``max_distance``); a source feeds
   a belt, splitter or underground input that starts in front of it. Counting an entity *inside* only
   when it is wholly inside the window:

   * a belt-like cell inside whose link goes to a cell outside, and that is fed from inside, becomes a
     **sink** (belt leaving the window);
   * a belt-like cell inside fed only from outside, that feeds a cell inside, becomes a **source**
     (belt entering the window). The simulator's source pushes only onto a belt-like whose back faces
     it, so when the entering cell feeds its successor otherwise (a curve; an underground input whose
     output is further in) the source moves down the line, through cells fed by nothing else and
     never into a splitter, to the last cell before a straight push (at most 3 steps); the cells it
     moved past become obstacles (they belong to the world outside). A side-loading entry stays put
     (and feeds nothing in the simulator);
   * the other cell of a splitter with one cell converted (to a source, a sink, or an obstacle the
     source moved past) becomes an obstacle, so no entity is ever left with part of its footprint.

   Undergrounds whose partner is outside the window convert the same way wherever they are. Inserters
   whose pickup or drop cell is outside are left as they are (they idle in the window).
3. *Edge items* (the documented rule, :func:`infer_items`): the item of a converted cell is the item
   inferred for that belt cell in the FULL blueprint. Evidence, strongest first: an infinity
   source/sink on the belt system or an inserter's whitelist filter naming the item (weight 3;
   splitter filters are not used: players set them to items never on the belt, e.g. a deconstruction
   planner, to force a side); an inserter dropping the product of an assembler's recipe (or the
   smelting result of a furnace, found in a second round from the furnace's input belts) onto the
   belt (2); an inserter taking from the belt into an assembler (each of its n solid ingredients,
   1/n); an inserter taking from the belt into a furnace (iron ore, 0.1: a weak prior so that a
   smelting column still smelts). Each belt cell gets the item of the NEAREST evidence along the belt
   network (multi-source BFS over belt links, undirected; stronger evidence first at equal distance),
   so a window's source and sink on the same belt agree. Belt systems with no evidence at all
   (balancers, belts into chests or trains, modded machines) get a placeholder: the most common
   inferred item in that blueprint, else ``iron-plate``; which one does not change a belt-only
   system's throughput as long as all its edges agree, and they do. Each example records how many of
   its edge cells got the placeholder (``n_edge_placeholder``), so they can be filtered.

Examples
--------
From each kept window: level 1 (complete, nothing removed), level 3 (one modelled entity removed),
level 4 (N removed, N uniform in 2..``max_removed``, at most the window's modelled entities) and level 5
(the whole build: every modelled entity removed, only the sources, sinks and obstacles left; its expert
sequence places all of the window's entities in the canonical order below). Sources, sinks and
obstacles are never removed. Level 3 prefers an entity whose loss lowers the throughput, as
``factorion.tasks`` defines level 3: up to ``impact_tries`` random entities are tried (one simulation
each) and the first that matters is taken, else the last one tried. The expert actions place the
removed entities in one canonical order, that of
``factorion.env.planner.actions_to_build(start, full)`` -- machines, then inserters, then belt-likes
in flow order (BFS from sources and inserters over ``tasks.Flow``
links), the rest row-major -- computed by :func:`pipeline.expert.flow_order` on the window grid, ~40x faster
than the planner (which builds a ``tasks.Flow``); a test checks both agree (``expert="planner"``
calls the planner itself). Every draw is seeded by (seed, blueprint id, size, window origin): the
output is the same whatever the number of processes.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from factorion.core.kinds import IS_BELTLIKE, IS_MODELLED, IS_SPLITTER, kind_tables
from factorion.core.world import (
    DIR,
    ITEM,
    K_OBSTACLE,
    K_SINK,
    K_SOURCE,
    KIND,
    N_CHANNELS,
    PART,
    Entity,
    World,
)
from pipeline.edges import DEFAULT_PLACEHOLDER, cell_links, infer_items
from pipeline.expert import expert_actions

__all__ = ["ChunkConfig", "Example", "WindowInfo", "Prepared", "prepare", "iter_windows", "make_examples",
           "default_throughput", "DEFAULT_PLACEHOLDER", "LEVELS"]

LEVELS = (1, 3, 4, 5)
TP_EPS = 1e-6  # items/s: a throughput above this is > 0; a start this far below the reference is lower


def lowers(tp: float, ref: float) -> bool:
    """Whether throughput ``tp`` is really below ``ref`` (False when either is NaN)."""
    return tp < ref - TP_EPS * max(1.0, ref)


MARGIN = 12  # > the longest underground reach (turbo: 11): links crossing a window start this close


# --------------------------------------------------------------------------- config / results
@dataclass(frozen=True)
class ChunkConfig:
    sizes: tuple[int, ...] = (11, 16)
    stride: int | None = None  # None: size // 2 for each size
    min_entities: int = 4  # modelled entities wholly inside the window
    max_obstacle_frac: float = 0.5  # of the window's cells
    max_windows: int = 64  # kept per blueprint and size (0: no cap)
    max_attempts: int = 4  # window builds tried per kept window (bounds the simulator work)
    max_removed: int = 5  # level 4 removes 2..max_removed entities
    impact_tries: int = 8  # level 3: random entities tried for one whose loss lowers the throughput
    zero_keep: float = 0.0  # fraction of zero-throughput windows kept (simulator available)
    levels: tuple[int, ...] = LEVELS
    expert: str = "flow"  # "flow" (flow_order) or "planner" (factorion.env.planner.actions_to_build)
    seed: int = 0

    def stride_for(self, size: int) -> int:
        return max(1, int(self.stride or size // 2))


@dataclass(slots=True)
class WindowInfo:
    size: int
    top: int
    left: int
    grid: np.ndarray  # (C, s, s) int16, after the fix-ups
    world: World
    n_modelled: int
    n_sources: int  # edge cells converted
    n_sinks: int
    n_placeholder: int
    ref_throughput: float


@dataclass(slots=True)
class Example:
    window: WindowInfo
    level: int
    start_grid: np.ndarray
    start_throughput: float
    targets: list[dict]
    actions: list[dict]


@dataclass
class ChunkStats:
    counts: Counter = field(default_factory=Counter)
    sim_s: float = 0.0

    def merge(self, other: ChunkStats) -> None:
        self.counts.update(other.counts)
        self.sim_s += other.sim_s


# --------------------------------------------------------------------------- full-blueprint analysis
@dataclass
class Prepared:
    """A rasterised blueprint plus what every window needs (computed once)."""

    world: World
    ay: np.ndarray  # (H, W) anchor row of the entity covering each cell (the cell itself when empty)
    ax: np.ndarray
    ey: np.ndarray  # (H, W) bottom / right edge (exclusive) of that entity
    ex: np.ndarray
    link_u: np.ndarray  # belt links u -> v, flat cell indices, sorted by u
    link_v: np.ndarray
    item_map: np.ndarray  # (H*W,) inferred item id of belt-like cells (0: none)
    placeholder: int  # item id for belt cells with no inferred item
    anchors_cs: np.ndarray  # integral image of modelled anchors
    obstacle_cs: np.ndarray  # integral image of obstacle cells
    n_feeders: np.ndarray  # (H*W,) links into each cell
    down: np.ndarray  # (H*W,) the one cell a cell feeds (-1: none or several)
    straight: np.ndarray  # (H*W,) bool: feeds one adjacent belt-like whose back faces it (a source works)
    kflat: np.ndarray  # (H*W,) KIND channel, flat

    @property
    def shape(self) -> tuple[int, int]:
        return self.world.shape


def _integral(a: np.ndarray) -> np.ndarray:
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1), dtype=np.int32)
    np.cumsum(np.cumsum(a, axis=0, dtype=np.int32), axis=1, out=s[1:, 1:])
    return s


# --------------------------------------------------------------------------- prepare
def prepare(world: World, raw_entities: list[dict] | None = None) -> Prepared:
    fw, fh, *_ = kind_tables()
    g = world.grid
    kind, d, part = g[KIND], g[DIR].astype(np.int64) % 4, g[PART].astype(np.int64)
    H, W = kind.shape
    Y, X = np.indices((H, W))
    w, h = fw[kind, d], fh[kind, d]
    p0 = np.maximum(part - 1, 0)
    ay, ax = Y - p0 // w, X - p0 % w
    ey, ex = ay + h, ax + w
    u, v = cell_links(g)
    item_map, placeholder = infer_items(g, ay, ax, u, v, raw_entities)
    anchors = (part == 1) & IS_MODELLED[kind]
    n_out = np.bincount(u, minlength=H * W)
    one = n_out[u] == 1
    down = np.full(H * W, -1, dtype=np.int64)
    down[u[one]] = v[one]
    uu, vv = u[one], v[one]
    dy, dx = vv // W - uu // W, vv % W - uu % W
    dflat = d.ravel()
    step_dir = np.select([(dy == -1) & (dx == 0), (dy == 0) & (dx == 1), (dy == 1) & (dx == 0),
                          (dy == 0) & (dx == -1)], [0, 1, 2, 3], -1)
    straight = np.zeros(H * W, dtype=bool)
    straight[uu[(step_dir >= 0) & (dflat[vv] == step_dir)]] = True
    return Prepared(world, ay, ax, ey, ex, u, v, item_map, placeholder, _integral(anchors),
                    _integral(kind == K_OBSTACLE), np.bincount(v, minlength=H * W), down, straight,
                    kind.ravel())


# --------------------------------------------------------------------------- windows
def _positions(n: int, size: int, stride: int) -> np.ndarray:
    if n <= size:
        return np.array([(n - size) // 2])
    pos = list(range(0, n - size + 1, stride))
    if pos[-1] != n - size:
        pos.append(n - size)
    return np.array(pos)


def candidate_windows(prep: Prepared, size: int, cfg: ChunkConfig) -> list[tuple[int, int]]:
    """(top, left) of the windows passing the integral-image pre-filter, row-major."""
    H, W = prep.shape
    tops, lefts = _positions(H, size, cfg.stride_for(size)), _positions(W, size, cfg.stride_for(size))

    def boxsum(cs):
        t, b = np.clip(tops, 0, H), np.clip(tops + size, 0, H)
        lf, r = np.clip(lefts, 0, W), np.clip(lefts + size, 0, W)
        return cs[b][:, r] - cs[t][:, r] - cs[b][:, lf] + cs[t][:, lf]

    good = (boxsum(prep.anchors_cs) >= cfg.min_entities) & \
        (boxsum(prep.obstacle_cs) <= cfg.max_obstacle_frac * size * size)
    ti, li = np.nonzero(good)
    return list(zip(tops[ti].tolist(), lefts[li].tolist(), strict=True))


def _set_cell(win: np.ndarray, wy: int, wx: int, kind: int, item: int | None = None) -> None:
    """Make window cell (wy, wx) a one-cell entity of ``kind`` (an obstacle, source or sink)."""
    win[:, wy, wx] = 0
    win[KIND, wy, wx] = kind
    if item is not None:
        win[ITEM, wy, wx] = item
    win[PART, wy, wx] = 1


def _crop(prep: Prepared, win: np.ndarray, top: int, left: int) -> bool:
    """Copy the blueprint under the window into ``win``; the inside cells of entities crossing its
    edge become obstacles. False when the window misses the blueprint."""
    g = prep.world.grid
    H, W = prep.shape
    s = win.shape[1]
    y0, y1, x0, x1 = max(top, 0), min(top + s, H), max(left, 0), min(left + s, W)
    if y1 <= y0 or x1 <= x0:
        return False
    sub = win[:, y0 - top:y1 - top, x0 - left:x1 - left]
    sub[:] = g[:, y0:y1, x0:x1]
    ay, ax = prep.ay[y0:y1, x0:x1], prep.ax[y0:y1, x0:x1]
    ey, ex = prep.ey[y0:y1, x0:x1], prep.ex[y0:y1, x0:x1]
    clipped = (sub[PART] > 0) & ((ay < top) | (ax < left) | (ey > top + s) | (ex > left + s))
    if clipped.any():
        sub[:, clipped] = 0
        sub[KIND][clipped] = K_OBSTACLE
        sub[PART][clipped] = 1
    return True


def _crossing_links(prep: Prepared, top: int, left: int, size: int):
    """(u, v, u inside, v inside, inside) of the links near the window (u within MARGIN rows /
    cols), ``inside(cells)`` telling which flat cells' entities lie wholly in it; None when no
    link crosses the window's edge."""
    H, W = prep.shape
    bottom, right = top + size, left + size
    u_all, v_all = prep.link_u, prep.link_v
    lo = np.searchsorted(u_all, max(top - MARGIN, 0) * W)
    hi = np.searchsorted(u_all, min(bottom + MARGIN, H) * W)
    if hi <= lo:
        return None
    u, v = u_all[lo:hi], v_all[lo:hi]
    ux = u % W
    sel = (ux >= left - MARGIN) & (ux < right + MARGIN)
    u, v = u[sel], v[sel]
    fay, fax, fey, fex = prep.ay.ravel(), prep.ax.ravel(), prep.ey.ravel(), prep.ex.ravel()

    def inside(c):
        return (fay[c] >= top) & (fax[c] >= left) & (fey[c] <= bottom) & (fex[c] <= right)

    in_u, in_v = inside(u), inside(v)
    if not (in_u ^ in_v).any():
        return None
    return u, v, in_u, in_v, inside


def _edge_cells(prep: Prepared, u, v, in_u, in_v) -> tuple[list[int], list[int]]:
    """(sources, sinks): belt-like cells entered from outside (fed by nothing inside, feeding
    something inside) and belt-like cells leaving the window (fed from inside)."""
    kflat = prep.kflat
    internal = in_u & in_v
    fed_inside = set(v[internal].tolist())
    feeds_inside = set(u[internal].tolist())
    sinks = sorted(c for c in set(u[in_u & ~in_v].tolist()) if IS_BELTLIKE[kflat[c]] and c in fed_inside)
    sources = sorted(c for c in set(v[~in_u & in_v].tolist())
                     if IS_BELTLIKE[kflat[c]] and c not in fed_inside and c in feeds_inside)
    return sources, sinks


def _convert(prep: Prepared, win: np.ndarray, top: int, left: int, sources: list[int], sinks: list[int],
             inside) -> int:
    """Turn the edge cells into sources and sinks of their inferred item (else the placeholder;
    returns how many took it), the cells a source moved past into obstacles, and the other cell of
    a splitter cut that way into an obstacle too."""
    W = prep.shape[1]
    gk = prep.kflat
    fay, fax, fey, fex = prep.ay.ravel(), prep.ax.ravel(), prep.ey.ravel(), prep.ex.ravel()
    n_ph = 0
    outside_world: list[int] = []
    placed = []
    for c in sources:
        c, walked = _source_cell(prep, c, inside, W)
        outside_world += walked
        placed.append((c, K_SOURCE))
    placed += [(c, K_SINK) for c in sinks]
    for c in outside_world:  # cells the source moved past: part of the world outside the window
        y, x = divmod(c, W)
        _set_cell(win, y - top, x - left, K_OBSTACLE)
    for c, k in placed:
        it = int(prep.item_map[c])
        if not it:
            it, n_ph = prep.placeholder, n_ph + 1
        y, x = divmod(c, W)
        _set_cell(win, y - top, x - left, k, it)
    # a splitter with one cell converted (or walked past): its other cell becomes an obstacle
    for c in [c for c, _ in placed] + outside_world:
        if IS_SPLITTER[gk[c]]:
            for yy in range(int(fay[c]), int(fey[c])):
                for xx in range(int(fax[c]), int(fex[c])):
                    if IS_SPLITTER[win[KIND, yy - top, xx - left]]:
                        _set_cell(win, yy - top, xx - left, K_OBSTACLE)
    return n_ph


def build_window(prep: Prepared, top: int, left: int, size: int) -> tuple[np.ndarray, int, int, int]:
    """(grid, n_sources, n_sinks, n_placeholder) of one window after the fix-ups (module docstring)."""
    win = np.zeros((N_CHANNELS, size, size), dtype=np.int16)
    if not _crop(prep, win, top, left):
        return win, 0, 0, 0
    links = _crossing_links(prep, top, left, size)
    if links is None:
        return win, 0, 0, 0
    u, v, in_u, in_v, inside = links
    sources, sinks = _edge_cells(prep, u, v, in_u, in_v)
    n_ph = _convert(prep, win, top, left, sources, sinks, inside)
    return win, len(sources), len(sinks), n_ph


def _source_cell(prep: Prepared, c: int, inside, W: int, max_steps: int = 3) -> tuple[int, list[int]]:
    """Where the source for entering cell ``c`` goes, and the cells walked past on the way.

    The simulator's source pushes only onto a belt-like whose back faces it. When the entering cell
    feeds its successor otherwise (a curve, an underground input whose output is further in), the
    source moves down the line -- through cells fed by nothing else, never into a splitter, at most
    ``max_steps`` -- to the last cell before a straight push; the cells walked past become obstacles
    (the world outside). When that is impossible (a side-load) the source stays put.
    """
    down, straight = prep.down, prep.straight
    walked: list[int] = []
    cur = c
    for _ in range(max_steps + 1):
        if straight[cur]:
            return cur, walked  # a straight push: the source works here
        nxt = int(down[cur])
        if nxt < 0 or len(walked) == max_steps or IS_SPLITTER[prep.kflat[nxt]] or prep.n_feeders[nxt] != 1 \
                or not bool(inside(nxt)):
            break
        walked.append(cur)
        cur = nxt
    return c, []


def window_world(prep: Prepared, grid: np.ndarray, top: int, left: int) -> World:
    w = World.__new__(World)
    w.grid = grid
    w.obstacles = []  # obstacle cells of a window export as walls
    w.rates = {}
    H, W = grid.shape[1:]
    for (y, x), r in prep.world.rates.items():
        wy, wx = y - top, x - left
        if 0 <= wy < H and 0 <= wx < W and grid[KIND, wy, wx] == K_SOURCE:
            w.rates[(wy, wx)] = r
    return w


def n_modelled(grid: np.ndarray) -> int:
    return int(((grid[PART] == 1) & IS_MODELLED[grid[KIND]]).sum())


def window_key(grid: np.ndarray) -> bytes:
    """A stable 8-byte hash of a window grid (dedup across processes and runs)."""
    return hashlib.blake2b(grid.tobytes(), digest_size=8).digest()


def _rng(seed: int, bp_id: str, *parts: int) -> random.Random:
    """A generator seeded by (seed, blueprint id, parts): the same draws on any machine and process."""
    key = f"{seed}:{bp_id}:{':'.join(map(str, parts))}".encode()
    return random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big"))


def iter_windows(prep: Prepared, bp_id: str, cfg: ChunkConfig, throughput: Callable[[World], float] | None,
                 stats: ChunkStats | None = None) -> Iterator[WindowInfo]:
    """Kept windows of a prepared blueprint, size by size (see the module docstring)."""
    stats = stats if stats is not None else ChunkStats()
    c = stats.counts
    for size in cfg.sizes:
        cands = candidate_windows(prep, size, cfg)
        c["windows_candidates"] += len(cands)
        rng = _rng(cfg.seed, bp_id, size)
        order = list(range(len(cands)))
        rng.shuffle(order)
        seen: set[bytes] = set()
        kept = attempts = 0
        cap = cfg.max_windows if cfg.max_windows > 0 else len(cands)
        for i in order:
            if kept >= cap or attempts >= cap * max(1, cfg.max_attempts):
                break
            attempts += 1
            top, left = cands[i]
            grid, n_src, n_snk, n_ph = build_window(prep, top, left, size)
            c["windows_built"] += 1
            nm = n_modelled(grid)
            if nm < cfg.min_entities:
                c["skip_few_entities"] += 1
                continue
            if (grid[KIND] == K_OBSTACLE).sum() > cfg.max_obstacle_frac * size * size:
                c["skip_obstacles"] += 1
                continue
            key = window_key(grid)
            if key in seen:
                c["skip_repeat_in_blueprint"] += 1
                continue
            seen.add(key)
            world = window_world(prep, grid, top, left)
            tp = math.nan
            if throughput is not None:
                if not (grid[KIND] == K_SINK).any():
                    tp = 0.0  # throughput is what sinks take in: none, nothing to simulate
                else:
                    t0 = time.process_time()
                    tp = float(throughput(world))
                    stats.sim_s += time.process_time() - t0
                    c["sim_calls"] += 1
                if not tp > TP_EPS:
                    keep_zero = cfg.zero_keep > 0 \
                        and _rng(cfg.seed, bp_id, size, top, left, 7).random() < cfg.zero_keep
                    if not keep_zero:
                        c["skip_zero_throughput"] += 1
                        continue
            kept += 1
            c[f"windows_kept_{size}"] += 1
            yield WindowInfo(size, top, left, grid, world, nm, n_src, n_snk, n_ph, tp)


# --------------------------------------------------------------------------- examples
def entity_struct(e: Entity) -> dict:
    return {"name": e.name, "y": int(e.y), "x": int(e.x), "direction": int(e.direction),
            "recipe": e.recipe, "io": int(e.io), "item": e.item}


def action_struct(a: tuple) -> dict:
    op = a[0]
    if op == "place":
        return {"op": "place", **entity_struct(a[1])}
    if op == "remove":
        return {"op": "remove", "name": None, "y": int(a[1]), "x": int(a[2]), "direction": 0, "recipe": None,
                "io": 0, "item": None}
    return {"op": str(op), "name": None, "y": -1, "x": -1, "direction": 0, "recipe": None, "io": 0,
            "item": None}


def _simulate(throughput: Callable[[World], float] | None, world: World, stats: ChunkStats | None) -> float:
    if throughput is None:
        return math.nan
    t0 = time.process_time()
    tp = float(throughput(world))
    if stats is not None:
        stats.sim_s += time.process_time() - t0
        stats.counts["sim_calls"] += 1
    return tp


def make_examples(win: WindowInfo, bp_id: str, cfg: ChunkConfig, throughput: Callable[[World], float] | None,
                  stats: ChunkStats | None = None) -> list[Example]:
    """The level 1 / 3 / 4 / 5 examples of one window (see the module docstring)."""
    full = win.world
    g = win.grid
    ys, xs = np.nonzero((g[PART] == 1) & IS_MODELLED[g[KIND]])
    cells = list(zip(ys.tolist(), xs.tolist(), strict=True))
    rng = _rng(cfg.seed, bp_id, win.size, win.top, win.left)
    ref = win.ref_throughput
    out = []
    for level in cfg.levels:
        if level == 1:
            out.append(Example(win, level, g, ref, [], []))
            continue
        if level == 3:
            n = 1
        elif level == 4:
            n = rng.randint(2, min(cfg.max_removed, len(cells))) if len(cells) >= 2 else 0
        elif level == 5:
            n = len(cells)
        else:
            raise ValueError(f"unknown level {level}: the pipeline makes levels {LEVELS}")
        if not n or n > len(cells):
            continue
        # level 3 prefers an entity whose loss lowers the throughput (as factorion.tasks' level 3):
        # up to impact_tries random ones, the first that matters, else the last one tried
        if level == 3:
            tries = cfg.impact_tries if throughput is not None and ref > TP_EPS else 1
            candidates = [[i] for i in rng.sample(range(len(cells)), min(len(cells), max(1, tries)))]
        elif level == 4:
            candidates = [sorted(rng.sample(range(len(cells)), n))]
        else:  # level 5: the whole build (no draw, so levels 1/3/4 stay as they were)
            candidates = [list(range(len(cells)))]
        for pick in candidates:
            start = full.copy()
            removed = [start.remove(*cells[i]) for i in pick]
            tp = _simulate(throughput, start, stats)
            if lowers(tp, ref):
                break
        acts = expert_actions(start, full, removed, cfg.expert, stats.counts if stats is not None else None)
        out.append(Example(win, level, start.grid, tp, [entity_struct(e) for e in removed],
                           [action_struct(a) for a in acts]))
    return out


# --------------------------------------------------------------------------- simulator
def default_throughput() -> Callable[[World], float] | None:
    """``factorion.sim.throughput`` when that module is there, else None (throughputs become NaN)."""
    try:
        from factorion.sim import throughput
    except ImportError:
        return None
    return throughput
