"""Chunk stage of ``make data``: one rasterised blueprint -> windows -> partial-factory examples.

A blueprint is rasterised ONCE (:meth:`World.from_blueprint`); every window is a numpy slice of that
grid, fixed up as below, so a 1000x1000 blueprint is never rasterised again per window.

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

Fix-ups of a window slice (equal to ``World.from_blueprint(bp, window=...)`` plus the edge rule):

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
   * the other cell of a splitter with one cell converted becomes an obstacle.

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
From each kept window: level 1 (complete, nothing removed), level 3 (one modelled entity removed) and
level 4 (N removed, N uniform in 2..``max_removed``, at most the window's modelled entities). Sources,
sinks and obstacles are never removed. Level 3 prefers an entity whose loss lowers the throughput, as
``factorion.tasks`` defines level 3: up to ``impact_tries`` random entities are tried (one simulation
each) and the first that matters is taken, else the last one tried. The expert actions place the
removed entities in the order of ``factorion.planner.actions_to_build(start, full)`` -- machines,
then inserters, then belt-likes in flow order (BFS from sources and inserters over ``tasks.Flow``
links), the rest row-major -- computed here by :func:`flow_order` on the window grid, ~40x faster
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
from functools import cache

import numpy as np

from factorion import gamedata as gd
from factorion.world import (
    DIR,
    IO,
    IO_INPUT,
    IO_OUTPUT,
    ITEM,
    K_OBSTACLE,
    K_SINK,
    K_SOURCE,
    KIND,
    KIND_ID,
    KINDS,
    N_CHANNELS,
    PART,
    RECIPE,
    Entity,
    World,
    WorldError,
    item_id,
    item_name,
)

__all__ = ["ChunkConfig", "Example", "WindowInfo", "Prepared", "prepare", "iter_windows", "make_examples",
           "default_throughput", "DEFAULT_PLACEHOLDER", "LEVELS"]

DEFAULT_PLACEHOLDER = "iron-plate"
LEVELS = (1, 3, 4)
TP_EPS = 1e-6  # items/s: a throughput above this is > 0; a start this far below the reference is lower


def lowers(tp: float, ref: float) -> bool:
    """Whether throughput ``tp`` is really below ``ref`` (False when either is NaN)."""
    return tp < ref - TP_EPS * max(1.0, ref)
MARGIN = 12  # > the longest underground reach (turbo: 11): links crossing a window start this close

# --------------------------------------------------------------------------- kind lookup tables
NK = len(KINDS)


def _mask(names) -> np.ndarray:
    m = np.zeros(NK, dtype=bool)
    for n in names:
        m[KIND_ID[n]] = True
    return m


IS_BELT, IS_UG, IS_SPLITTER = _mask(gd.BELTS), _mask(gd.UNDERGROUNDS), _mask(gd.SPLITTERS)
IS_INSERTER, IS_ASSEMBLER, IS_FURNACE = _mask(gd.INSERTERS), _mask(gd.ASSEMBLERS), _mask(gd.FURNACES)
IS_BELTLIKE = IS_BELT | IS_UG | IS_SPLITTER
IS_MODELLED = _mask(gd.MODELLED)
OFF_Y = np.array([dy for dy, _ in gd.DIR_OFFSETS], dtype=np.int64)
OFF_X = np.array([dx for _, dx in gd.DIR_OFFSETS], dtype=np.int64)


@cache
def _tables():
    fw = np.ones((NK, 4), dtype=np.int64)
    fh = np.ones((NK, 4), dtype=np.int64)
    pick = np.zeros((NK, 4, 2), dtype=np.int64)
    drop = np.zeros((NK, 4, 2), dtype=np.int64)
    ug_reach = np.zeros(NK, dtype=np.int64)
    for name in gd.MODELLED:
        k = KIND_ID[name]
        for d in range(4):
            fw[k, d], fh[k, d] = gd.footprint(name, d)
            if name in gd.INSERTERS:
                pick[k, d], drop[k, d] = gd.inserter_offsets(name, d)
        if name in gd.UNDERGROUNDS:
            ug_reach[k] = gd.underground_max_distance(name)
    return fw, fh, pick, drop, ug_reach


@cache
def _recipe_items() -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """(product item id per recipe id, solid ingredient item ids per recipe id); index 0 = no recipe."""
    names = gd.recipe_names()
    items = set(gd.item_names())
    product = np.zeros(len(names) + 1, dtype=np.int64)
    ings: list[tuple[int, ...]] = [()]
    for i, n in enumerate(names, 1):
        r = gd.recipe(n)
        res = [it for it, _ in r.results if it in items]
        product[i] = item_id(res[0]) if res else 0
        ings.append(tuple(item_id(it) for it, _ in r.ingredients if it in items))
    return product, ings


@cache
def _smelt(item: int) -> int:
    name = item_name(item)
    rec = gd.smelting_recipe_for(name) if name else None
    if not rec:
        return 0
    res = [it for it, _ in gd.recipe(rec).results if it in gd.item_names()]
    return item_id(res[0]) if res else 0


@cache
def _known_item(name) -> int:
    return item_id(name) if isinstance(name, str) and name in gd.item_names() else 0


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
    expert: str = "flow"  # "flow" (flow_order) or "planner" (factorion.planner.actions_to_build)
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


def _links(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed belt links of a full grid (flat indices): see the module docstring."""
    _, _, _, _, ug_reach = _tables()
    kind, d, io = g[KIND], g[DIR], g[IO]
    H, W = kind.shape
    us, vs = [], []
    bl = IS_BELTLIKE[kind]
    ug_in = IS_UG[kind] & (io == IO_INPUT)
    ys, xs = np.nonzero(bl & ~ug_in)
    dd = d[ys, xs].astype(np.int64)
    ty, tx = ys + OFF_Y[dd], xs + OFF_X[dd]
    ok = (ty >= 0) & (ty < H) & (tx >= 0) & (tx < W)
    ys, xs, dd, ty, tx = ys[ok], xs[ok], dd[ok], ty[ok], tx[ok]
    tk, td, tio = kind[ty, tx], d[ty, tx].astype(np.int64), io[ty, tx]
    back = (dd + 2) % 4
    from_behind = IS_SPLITTER[tk] | (IS_UG[tk] & (tio == IO_INPUT))
    accept = (IS_BELT[tk] & (td != back)) | (from_behind & (td == dd)) | (tk == K_SINK)
    us.append(ys[accept] * W + xs[accept])
    vs.append(ty[accept] * W + tx[accept])
    # underground input -> partner output
    ys, xs = np.nonzero(ug_in)
    if len(ys):
        k, dd = kind[ys, xs], d[ys, xs].astype(np.int64)
        partner = np.full(len(ys), -1, dtype=np.int64)
        open_ = np.ones(len(ys), dtype=bool)
        for step in range(1, int(ug_reach.max()) + 1):
            cy, cx = ys + step * OFF_Y[dd], xs + step * OFF_X[dd]
            live = open_ & (step <= ug_reach[k]) & (cy >= 0) & (cy < H) & (cx >= 0) & (cx < W)
            if not live.any():
                break
            cyl, cxl = np.where(live, cy, 0), np.where(live, cx, 0)
            hit = live & (kind[cyl, cxl] == k) & (d[cyl, cxl] == dd) & (io[cyl, cxl] == IO_OUTPUT)
            partner[hit] = cy[hit] * W + cx[hit]
            open_ &= ~hit  # the nearest same-name output facing the same way (as tasks.ug_partner)
        ok = partner >= 0
        us.append(ys[ok] * W + xs[ok])
        vs.append(partner[ok])
    # a source feeds a belt that starts in front of it (the belt's back faces the source)
    ys, xs = np.nonzero(kind == K_SOURCE)
    for dd in range(4):
        ty, tx = ys + OFF_Y[dd], xs + OFF_X[dd]
        ok = (ty >= 0) & (ty < H) & (tx >= 0) & (tx < W)
        y2, x2, ty, tx = ys[ok], xs[ok], ty[ok], tx[ok]
        tk = kind[ty, tx]
        good = IS_BELTLIKE[tk] & (d[ty, tx] == dd) & ~(IS_UG[tk] & (io[ty, tx] == IO_OUTPUT))
        us.append(y2[good] * W + x2[good])
        vs.append(ty[good] * W + tx[good])
    u, v = np.concatenate(us).astype(np.int64), np.concatenate(vs).astype(np.int64)
    order = np.argsort(u, kind="stable")
    return u[order], v[order]


# --------------------------------------------------------------------------- edge items
def _filter_items(e: dict) -> list[int]:
    """Items of an inserter's whitelist filter (a blacklist says nothing about the belt)."""
    if e.get("filter_mode", "whitelist") != "whitelist":
        return []
    f = e.get("filters")
    items = [_known_item(x.get("name")) for x in f if isinstance(x, dict)] if isinstance(f, list) else []
    return [i for i in items if i]


def _raw_filters(raw_entities: list[dict], g: np.ndarray) -> list[tuple[int, int, list[int]]]:
    """[(flat anchor cell, kind, [item ids])] of filter inserters.

    Raw entities are matched to grid anchors name by name in (y, x) order; a name whose entities do
    not match the anchors one to one by a constant translation gives nothing (never a wrong cell).
    """
    by_name: dict[str, list[dict]] = {}
    with_filter: set[str] = set()
    for e in raw_entities:
        name = e.get("name")
        if name in _FILTERABLE:
            by_name.setdefault(name, []).append(e)
            if "filters" in e:
                with_filter.add(name)
    fw, fh, *_ = _tables()
    W = g.shape[2]
    out = []
    for name in sorted(with_filter):
        raws = by_name[name]
        k = KIND_ID[name]
        ys, xs = np.nonzero((g[KIND] == k) & (g[PART] == 1))  # row-major = (y, x) order
        if len(ys) != len(raws):
            continue
        dirs = [int(e.get("direction", 0) or 0) // 4 % 4 for e in raws]
        tops = np.array([e["position"]["y"] - fh[k, d] / 2 for e, d in zip(raws, dirs, strict=True)])
        lefts = np.array([e["position"]["x"] - fw[k, d] / 2 for e, d in zip(raws, dirs, strict=True)])
        order = np.lexsort((lefts, tops))
        if np.ptp(ys - tops[order]) >= 0.75 or np.ptp(xs - lefts[order]) >= 0.75:
            continue
        for j, i in enumerate(order.tolist()):
            items = _filter_items(raws[i])
            if items:
                out.append((int(ys[j]) * W + int(xs[j]), k, items))
    return out


_FILTERABLE = frozenset(gd.INSERTERS)  # splitter filters are often a trick (an item never on the belt)


def _bfs_labels(n_cells: int, u: np.ndarray, v: np.ndarray, seeds: dict[int, dict[int, float]]) -> np.ndarray:
    """Multi-source BFS over the undirected belt graph; each reached cell gets the item of its nearest
    seed (ties: the stronger seed, then the lower cell index)."""
    labels = np.zeros(n_cells, dtype=np.int16)
    if not seeds:
        return labels
    nodes = np.unique(np.concatenate([u, v, np.fromiter(seeds, dtype=np.int64, count=len(seeds))]))
    a = np.searchsorted(nodes, np.concatenate([u, v]))
    b = np.searchsorted(nodes, np.concatenate([v, u]))
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    indptr = np.searchsorted(a, np.arange(len(nodes) + 1)).tolist()
    nbr = b.tolist()
    lab = [0] * len(nodes)
    init = []
    for cell, votes in seeds.items():
        best = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))
        init.append((-best[1], cell, best[0]))
    init.sort()
    queue = []
    idx_of = np.searchsorted(nodes, np.array([c for _, c, _ in init], dtype=np.int64)).tolist()
    for (_, _, item), i in zip(init, idx_of, strict=True):
        lab[i] = item
        queue.append(i)
    head = 0
    while head < len(queue):
        i = queue[head]
        head += 1
        it = lab[i]
        for j in nbr[indptr[i]:indptr[i + 1]]:
            if not lab[j]:
                lab[j] = it
                queue.append(j)
    labels[nodes] = np.asarray(lab, dtype=np.int16)
    return labels


def infer_items(g: np.ndarray, ay: np.ndarray, ax: np.ndarray, u: np.ndarray, v: np.ndarray,
                raw_entities: list[dict] | None = None) -> tuple[np.ndarray, int]:
    """(item id per flat cell for belt-like cells, placeholder item id): the edge-item rule."""
    _, _, pick, drop, _ = _tables()
    product, ings = _recipe_items()
    kind, item, rec = g[KIND], g[ITEM], g[RECIPE]
    H, W = kind.shape
    n = H * W
    flat_kind, flat_item = kind.ravel(), item.ravel()
    seeds: dict[int, dict[int, float]] = {}

    def vote(cell: int, it: int, w: float) -> None:
        if it:
            d = seeds.setdefault(int(cell), {})
            d[int(it)] = d.get(int(it), 0.0) + w

    # infinity sources / sinks on the belt system
    for a, b in zip(u.tolist(), v.tolist(), strict=True):
        if flat_kind[a] == K_SOURCE:
            vote(b, flat_item[a], 3.0)
        elif flat_kind[b] == K_SINK:
            vote(a, flat_item[b], 3.0)
    # inserters
    ys, xs = np.nonzero(IS_INSERTER[kind])
    furnace_in: dict[int, list[int]] = {}
    furnace_out: dict[int, list[int]] = {}
    if len(ys):
        k, d = kind[ys, xs], g[DIR][ys, xs].astype(np.int64)
        py, px = ys + pick[k, d, 0], xs + pick[k, d, 1]
        qy, qx = ys + drop[k, d, 0], xs + drop[k, d, 1]
        ok = (py >= 0) & (py < H) & (px >= 0) & (px < W) & (qy >= 0) & (qy < H) & (qx >= 0) & (qx < W)
        py, px, qy, qx = py[ok], px[ok], qy[ok], qx[ok]
        pk, qk = kind[py, px], kind[qy, qx]
        pb, qb = IS_BELTLIKE[pk], IS_BELTLIKE[qk]
        pf, qf = py * W + px, qy * W + qx
        for i in np.nonzero(qb & IS_ASSEMBLER[pk])[0].tolist():
            vote(qf[i], product[rec[py[i], px[i]]], 2.0)
        for i in np.nonzero(qb & (pk == K_SOURCE))[0].tolist():
            vote(qf[i], item[py[i], px[i]], 3.0)
        for i in np.nonzero(pb & (qk == K_SINK))[0].tolist():
            vote(pf[i], item[qy[i], qx[i]], 3.0)
        for i in np.nonzero(pb & IS_ASSEMBLER[qk])[0].tolist():
            its = ings[rec[qy[i], qx[i]]]
            for it in its:
                vote(pf[i], it, 1.0 / len(its))
        ore = _known_item("iron-ore")
        for i in np.nonzero(pb & IS_FURNACE[qk])[0].tolist():
            vote(pf[i], ore, 0.1)
            furnace_in.setdefault(int(ay[qy[i], qx[i]]) * W + int(ax[qy[i], qx[i]]), []).append(int(pf[i]))
        for i in np.nonzero(qb & IS_FURNACE[pk])[0].tolist():
            furnace_out.setdefault(int(ay[py[i], px[i]]) * W + int(ax[py[i], px[i]]), []).append(int(qf[i]))
    # whitelist filters of inserters: the item is on the belt they take from or drop onto
    if raw_entities:
        _, _, pk_, dr_, _ = _tables()
        for cell, k, items in _raw_filters(raw_entities, g):
            y, x = divmod(cell, W)
            dd = int(g[DIR, y, x])
            for off in (pk_[k, dd], dr_[k, dd]):
                yy, xx = y + int(off[0]), x + int(off[1])
                if 0 <= yy < H and 0 <= xx < W and IS_BELTLIKE[kind[yy, xx]]:
                    for it in items:
                        vote(yy * W + xx, it, 3.0 / len(items))
    # undirected links, plus the two cells of each splitter
    sy, sx = np.nonzero(IS_SPLITTER[kind] & (g[PART] == 1))
    if len(sy):
        d = g[DIR][sy, sx].astype(np.int64)
        # footprint 2 wide (N/S) or 2 high (E/W): the second cell is right of / below the anchor
        oy, ox = (d % 2 == 1).astype(np.int64), (d % 2 == 0).astype(np.int64)
        bu, bv = sy * W + sx, (sy + oy) * W + (sx + ox)
        uu, vv = np.concatenate([u, bu]), np.concatenate([v, bv])
    else:
        uu, vv = u, v
    labels = _bfs_labels(n, uu, vv, seeds)
    if furnace_out:  # round 2: what the furnaces smelt, from the items on their input belts
        added = False
        for anchor, outs in furnace_out.items():
            results = Counter(_smelt(int(labels[c])) for c in furnace_in.get(anchor, ()))
            results.pop(0, None)
            if results:
                it = min(results, key=lambda r: (-results[r], r))
                for c in outs:
                    vote(c, it, 2.0)
                added = True
        if added:
            labels = _bfs_labels(n, uu, vv, seeds)
    belt_labels = labels[IS_BELTLIKE[flat_kind] & (labels > 0)]
    if len(belt_labels):
        vals, cnt = np.unique(belt_labels, return_counts=True)
        placeholder = int(vals[np.argmax(cnt)])
    else:
        placeholder = _known_item(DEFAULT_PLACEHOLDER)
    return labels, placeholder


# --------------------------------------------------------------------------- prepare
def prepare(world: World, raw_entities: list[dict] | None = None) -> Prepared:
    fw, fh, *_ = _tables()
    g = world.grid
    kind, d, part = g[KIND], g[DIR].astype(np.int64) % 4, g[PART].astype(np.int64)
    H, W = kind.shape
    Y, X = np.indices((H, W))
    w, h = fw[kind, d], fh[kind, d]
    p0 = np.maximum(part - 1, 0)
    ay, ax = Y - p0 // w, X - p0 % w
    ey, ex = ay + h, ax + w
    u, v = _links(g)
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


def build_window(prep: Prepared, top: int, left: int, size: int) -> tuple[np.ndarray, int, int, int]:
    """(grid, n_sources, n_sinks, n_placeholder) of one window after the fix-ups (module docstring)."""
    g = prep.world.grid
    H, W = prep.shape
    s = size
    win = np.zeros((N_CHANNELS, s, s), dtype=np.int16)
    y0, y1, x0, x1 = max(top, 0), min(top + s, H), max(left, 0), min(left + s, W)
    if y1 <= y0 or x1 <= x0:
        return win, 0, 0, 0
    sub = win[:, y0 - top:y1 - top, x0 - left:x1 - left]
    sub[:] = g[:, y0:y1, x0:x1]
    bottom, right = top + s, left + s
    ay, ax = prep.ay[y0:y1, x0:x1], prep.ax[y0:y1, x0:x1]
    ey, ex = prep.ey[y0:y1, x0:x1], prep.ex[y0:y1, x0:x1]
    clipped = (sub[PART] > 0) & ((ay < top) | (ax < left) | (ey > bottom) | (ex > right))
    if clipped.any():
        sub[:, clipped] = 0
        sub[KIND][clipped] = K_OBSTACLE
        sub[PART][clipped] = 1
    # links with u within MARGIN rows/cols of the window
    u_all, v_all = prep.link_u, prep.link_v
    lo = np.searchsorted(u_all, max(top - MARGIN, 0) * W)
    hi = np.searchsorted(u_all, min(bottom + MARGIN, H) * W)
    if hi <= lo:
        return win, 0, 0, 0
    u, v = u_all[lo:hi], v_all[lo:hi]
    ux = u % W
    sel = (ux >= left - MARGIN) & (ux < right + MARGIN)
    u, v = u[sel], v[sel]
    fay, fax, fey, fex = prep.ay.ravel(), prep.ax.ravel(), prep.ey.ravel(), prep.ex.ravel()

    def inside(c):
        return (fay[c] >= top) & (fax[c] >= left) & (fey[c] <= bottom) & (fex[c] <= right)

    in_u, in_v = inside(u), inside(v)
    if not (in_u ^ in_v).any():
        return win, 0, 0, 0
    kflat = g[KIND].ravel()
    internal = in_u & in_v
    fed_inside = set(v[internal].tolist())
    feeds_inside = set(u[internal].tolist())
    sinks = sorted(c for c in set(u[in_u & ~in_v].tolist()) if IS_BELTLIKE[kflat[c]] and c in fed_inside)
    sources = sorted(c for c in set(v[~in_u & in_v].tolist())
                     if IS_BELTLIKE[kflat[c]] and c not in fed_inside and c in feeds_inside)
    gk = kflat
    n_ph = 0
    conv = []
    outside_world = []
    placed = []
    for c in sources:
        c, walked = _source_cell(prep, c, inside, W)
        outside_world += walked
        placed.append((c, K_SOURCE))
    placed += [(c, K_SINK) for c in sinks]
    for c in outside_world:  # cells the source moved past: part of the world outside the window
        y, x = divmod(c, W)
        win[:, y - top, x - left] = 0
        win[KIND, y - top, x - left] = K_OBSTACLE
        win[PART, y - top, x - left] = 1
    for c, k in placed:
        it = int(prep.item_map[c])
        if not it:
            it, n_ph = prep.placeholder, n_ph + 1
        y, x = divmod(c, W)
        win[:, y - top, x - left] = 0
        win[KIND, y - top, x - left] = k
        win[ITEM, y - top, x - left] = it
        win[PART, y - top, x - left] = 1
        conv.append(c)
    # a splitter with one cell converted: its other cell becomes an obstacle
    for c in conv:
        if IS_SPLITTER[gk[c]]:
            for yy in range(int(fay[c]), int(fey[c])):
                for xx in range(int(fax[c]), int(fex[c])):
                    wy, wx = yy - top, xx - left
                    if IS_SPLITTER[win[KIND, wy, wx]]:
                        win[:, wy, wx] = 0
                        win[KIND, wy, wx] = K_OBSTACLE
                        win[PART, wy, wx] = 1
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


@cache
def _planner():
    try:
        from factorion.planner import actions_to_build
    except ImportError:
        return None
    return actions_to_build


def _entity_index(grid: np.ndarray) -> tuple[list[tuple[int, int]], np.ndarray]:
    """(anchors of the non-obstacle entities in row-major order, (H, W) cell -> entity index or -1)."""
    fw, *_ = _tables()
    kind, part = grid[KIND], grid[PART].astype(np.int64)
    d = grid[DIR].astype(np.int64) % 4
    occ = (part > 0) & (kind != K_OBSTACLE)
    ys, xs = np.nonzero(occ & (part == 1))
    ids = np.full(kind.shape, -1, dtype=np.int64)
    ids[ys, xs] = np.arange(len(ys))
    cy, cx = np.nonzero(occ)
    w = fw[kind[cy, cx], d[cy, cx]]
    p0 = part[cy, cx] - 1
    at = np.full(kind.shape, -1, dtype=np.int64)
    at[cy, cx] = ids[cy - p0 // w, cx - p0 % w]
    return list(zip(ys.tolist(), xs.tolist(), strict=True)), at


def flow_order(grid: np.ndarray, want: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The anchors ``want`` in the build order of ``factorion.planner.actions_to_build`` for a world
    ``grid`` that holds them: machines, inserters (row-major), then what a BFS over the
    ``tasks.Flow`` links from every source and inserter reaches (belt-likes are walked through,
    wanted or not; other wanted entities are walked through once reached), then the rest, row-major.
    Links are made in the order ``tasks.Flow`` makes them, which fixes the BFS order."""
    kind = grid[KIND]
    machines = IS_ASSEMBLER | IS_FURNACE
    want = sorted(want)
    first = [c for c in want if machines[kind[c]]] + [c for c in want if IS_INSERTER[kind[c]]]
    rest = [c for c in want if not (machines[kind[c]] or IS_INSERTER[kind[c]])]
    if len(rest) <= 1:  # the flow walk only orders the rest among themselves
        return first + rest
    fw, fh, pick, drop, ug_reach = _tables()
    dgrid, io = grid[DIR], grid[IO]
    H, W = kind.shape
    anchors, at = _entity_index(grid)
    n = len(anchors)
    ks = [int(kind[y, x]) for y, x in anchors]
    ds = [int(dgrid[y, x]) % 4 for y, x in anchors]
    ios = [int(io[y, x]) for y, x in anchors]
    out: list[list[int]] = [[] for _ in range(n)]

    def ent(y: int, x: int) -> int:
        return int(at[y, x]) if 0 <= y < H and 0 <= x < W else -1

    def accepts(t: int, d: int) -> bool:
        k = ks[t]
        if IS_BELT[k]:
            return ds[t] != (d + 2) % 4
        if IS_SPLITTER[k] or (IS_UG[k] and ios[t] == IO_INPUT):
            return ds[t] == d
        return k == K_SINK

    for i, (y, x) in enumerate(anchors):
        k, d = ks[i], ds[i]
        if k == K_SOURCE:
            for dd in range(4):
                t = ent(y + int(OFF_Y[dd]), x + int(OFF_X[dd]))
                if t >= 0 and ds[t] == dd and (IS_BELT[ks[t]] or IS_SPLITTER[ks[t]]
                                               or (IS_UG[ks[t]] and ios[t] == IO_INPUT)):
                    out[i].append(t)
        elif IS_BELTLIKE[k]:
            if IS_SPLITTER[k]:
                cells = [(y + a, x + b) for a in range(int(fh[k, d])) for b in range(int(fw[k, d]))]
            elif IS_BELT[k] or ios[i] == IO_OUTPUT:
                cells = [(y, x)]
            else:
                cells = []
            for cy, cx in cells:
                t = ent(cy + int(OFF_Y[d]), cx + int(OFF_X[d]))
                if t >= 0 and accepts(t, d):
                    out[i].append(t)
            if IS_UG[k] and ios[i] == IO_INPUT:
                for step in range(1, int(ug_reach[k]) + 1):
                    cy, cx = y + step * int(OFF_Y[d]), x + step * int(OFF_X[d])
                    if not (0 <= cy < H and 0 <= cx < W):
                        break
                    t = ent(cy, cx)
                    if t >= 0 and ks[t] == k and ios[t] == IO_OUTPUT and ds[t] == d:
                        out[i].append(t)
                        break
        elif IS_INSERTER[k]:
            pe = ent(y + int(pick[k, d, 0]), x + int(pick[k, d, 1]))
            qe = ent(y + int(drop[k, d, 0]), x + int(drop[k, d, 1]))
            if pe >= 0 and not IS_INSERTER[ks[pe]] and ks[pe] != K_SINK:
                out[pe].append(i)
            if qe >= 0 and not IS_INSERTER[ks[qe]] and ks[qe] != K_SOURCE:
                out[i].append(qe)
    want_i = sorted(int(at[y, x]) for y, x in want)
    wanted = set(want_i)
    order = [i for i in want_i if machines[ks[i]]] + [i for i in want_i if IS_INSERTER[ks[i]]]
    seen = set(order)
    frontier = [i for i in range(n) if ks[i] == K_SOURCE or IS_INSERTER[ks[i]]]
    while frontier:
        nxt = []
        for e in frontier:
            for t in out[e]:
                if t in wanted and t not in seen:
                    seen.add(t)
                    order.append(t)
                    nxt.append(t)
                elif t not in seen and IS_BELTLIKE[ks[t]]:
                    seen.add(t)
                    nxt.append(t)
        frontier = nxt
    order += [i for i in want_i if i not in seen]
    return [anchors[i] for i in order]


def _apply(world: World, actions: list[tuple]) -> World:
    w = world.copy()
    for a in actions:
        if a[0] == "place":
            w.place(a[1])
        elif a[0] == "remove":
            w.remove(int(a[1]), int(a[2]))
    return w


def expert_actions(start: World, target: World, removed: list[Entity], expert: str = "flow",
                   stats: ChunkStats | None = None) -> list[tuple]:
    """Actions that rebuild ``target`` from ``start`` (= ``target`` less ``removed``): ``flow``
    (default) orders the places with :func:`flow_order`; ``planner`` calls
    ``factorion.planner.actions_to_build`` (checked to rebuild ``target``; falls back to ``flow``)."""
    if expert == "planner" and _planner() is not None:
        try:
            acts = list(_planner()(start, target))
            if np.array_equal(_apply(start, acts).grid, target.grid):
                return acts
        except (WorldError, ValueError, KeyError, TypeError, IndexError):
            pass
        if stats is not None:
            stats.counts["planner_fallback"] += 1
    by_cell = {(e.y, e.x): e for e in removed}
    return [("place", by_cell[c]) for c in flow_order(target.grid, list(by_cell))]


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
    """The level 1 / 3 / 4 examples of one window (see the module docstring)."""
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
        else:
            raise ValueError(f"unknown level {level}: the pipeline makes levels {LEVELS}")
        if not n or n > len(cells):
            continue
        # level 3 prefers an entity whose loss lowers the throughput (as factorion.tasks' level 3):
        # up to impact_tries random ones, the first that matters, else the last one tried
        if level == 3:
            tries = cfg.impact_tries if throughput is not None and ref > TP_EPS else 1
            candidates = [[i] for i in rng.sample(range(len(cells)), min(len(cells), max(1, tries)))]
        else:
            candidates = [sorted(rng.sample(range(len(cells)), n))]
        for pick in candidates:
            start = full.copy()
            removed = [start.remove(*cells[i]) for i in pick]
            tp = _simulate(throughput, start, stats)
            if lowers(tp, ref):
                break
        acts = expert_actions(start, full, removed, cfg.expert, stats)
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
