"""Belt routing: :func:`route` (A* over cells and travel directions, with underground jumps) and the
goals and constraints it respects (:class:`Goal`, :func:`enter_pred`, :class:`_Ctx`)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import (
    BELT_KINDS,
    DIR,
    INSERTER_KINDS,
    IO,
    IO_INPUT,
    IO_OUTPUT,
    K_SOURCE,
    KIND,
    KINDS,
    PART,
    SINK,
    SPLITTER_KINDS,
    UNDERGROUND_KINDS,
    Entity,
    World,
)
from factorion.tasks.base import (
    BELT_NAMES,
    BELTLIKE,
    INSERTER_NAMES,
    OFF,
    SPLITTER_NAMES,
    UGS,
    in_bounds,
    inserter_cells,
    step,
    ug_partner,
)


class Goal:
    """Where a route may end. ``enter[cell](din, flag)``: whether the route may end by moving
    into ``cell`` (a sink or the first entity of an existing line) travelling ``din``, ``flag``
    telling that the last thing placed was an underground output (so only a straight entry
    works; see :func:`enter_pred`). ``end``: cells where the route ends with a dead-end belt
    (an inserter picks up there)."""

    def __init__(self, enter: dict | None = None, end: Iterable[tuple[int, int]] = ()):
        self.enter: dict[tuple[int, int], Callable[[int, bool], bool]] = dict(enter or {})
        self.end = set(end)

    def __bool__(self) -> bool:
        return bool(self.enter or self.end)

    def cells(self) -> list[tuple[int, int]]:
        return [*self.enter, *self.end]


def _path_ok(path) -> bool:
    """No cell used twice, and no underground passes under another underground of the path."""
    seen = set()
    for e in path:
        c = (e.y, e.x)
        if c in seen:
            return False
        seen.add(c)
    ug_cells = {(e.y, e.x) for e in path if e.name in UGS}
    for i, e in enumerate(path):
        if e.name in UGS and e.io == IO_INPUT:
            o = path[i + 1]
            k = abs(o.y - e.y) + abs(o.x - e.x)
            for j in range(1, k):
                if step((e.y, e.x), e.direction, j) in ug_cells:
                    return False
    return True


def enter_pred(e: Entity) -> Callable[[int, bool], bool] | None:
    """How a route may enter entity ``e`` (the head of a line) without side-loading."""
    if e.name == SINK:
        return lambda din, flag: not flag
    if e.name in BELT_NAMES:
        dh = e.direction
        return lambda din, flag: din != (dh + 2) % 4 and (not flag or din == dh)
    if e.name in SPLITTER_NAMES or (e.name in UGS and e.io == IO_INPUT):
        dh = e.direction
        return lambda din, flag: din == dh
    return None


class RouteCtx:
    """What the router must respect in a world: occupied cells, cells something already pushes
    into or an inserter reaches (blocked), sources (a belt pointing away from one is fed by it),
    and per belt tier the cells where a new underground would pair wrongly."""

    def __init__(self, world: World):
        H, W = world.shape
        self.H, self.W = H, W
        self.occ = world.grid[PART] != 0
        self.blocked = np.zeros((H, W), dtype=bool)
        self.sources: set[tuple[int, int]] = set()
        self.ug: list[set[tuple[int, int]]] = [set() for _ in gd.UNDERGROUNDS]
        self.tunnel = np.zeros((len(gd.UNDERGROUNDS), H, W), dtype=bool)

        g = world.grid
        kind, part = g[KIND], g[PART]
        ys, xs = np.nonzero((kind == K_SOURCE) & (part == 1))
        self.sources.update(zip(ys.tolist(), xs.tolist(), strict=True))
        # cells a belt, an underground output or a splitter cell pushes into (every splitter cell
        # carries its kind and direction)
        push = _IS_PUSH[kind] | (_IS_UG[kind] & (g[IO] == IO_OUTPUT))
        ys, xs = np.nonzero(push)
        if len(ys):
            d = g[DIR][ys, xs]
            ty, tx = ys + _DY[d], xs + _DX[d]
            ok = (ty >= 0) & (ty < H) & (tx >= 0) & (tx < W)
            self.blocked[ty[ok], tx[ok]] = True
        # inserters (pickup and drop cells) and undergrounds, entity by entity
        ys, xs = np.nonzero(_IS_ONE_BY_ONE[kind] & (part == 1))
        for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
            e = world.entity_at(y, x)
            if e.name in INSERTER_NAMES:
                for c in inserter_cells(e):
                    if 0 <= c[0] < H and 0 <= c[1] < W:
                        self.blocked[c] = True
                continue
            t = gd.tier(e.name)
            self.ug[t].add((e.y, e.x))
            if e.io == IO_INPUT:
                o = ug_partner(world, e)
                reach = (abs(o.y - e.y) + abs(o.x - e.x) - 1) if o else gd.underground_max_distance(e.name)
                for k in range(1, reach + 1):
                    c = step((e.y, e.x), e.direction, k)
                    if 0 <= c[0] < H and 0 <= c[1] < W:
                        self.tunnel[t][c] = True


def _kind_table(*kinds: np.ndarray) -> np.ndarray:
    out = np.zeros(len(KINDS), dtype=bool)
    for k in kinds:
        out[k] = True
    return out


_IS_PUSH = _kind_table(BELT_KINDS, SPLITTER_KINDS)
_IS_UG = _kind_table(UNDERGROUND_KINDS)
_IS_ONE_BY_ONE = _kind_table(INSERTER_KINDS, UNDERGROUND_KINDS)
_DY = np.array([dy for dy, _ in OFF])
_DX = np.array([dx for _, dx in OFF])


# directions a line may leave a cell in, by (din, flag) of the state (see :func:`route`)
_DIRS_FOR = {(din, flag): tuple(d for d in range(4)
                                if not (flag and d != din) and not (din >= 0 and d == (din + 2) % 4))
             for din in range(-1, 4) for flag in (False, True)}


def _pad(a: np.ndarray) -> list:
    """``a`` (H, W) with a one-cell border of zeros, as a flat list."""
    out = np.zeros((a.shape[0] + 2, a.shape[1] + 2), dtype=a.dtype)
    out[1:-1, 1:-1] = a
    return out.ravel().tolist()


class _Tables(NamedTuple):
    """:func:`route`'s precomputed tables over flat cell indices of the world padded by one cell."""
    P: int                 # padded row length: flat index of (y, x) is (y + 1) * P + x + 1
    DF: tuple              # flat offsets of the four directions (OFF)
    free: list             # cell is free for a new entity
    pushable: list         # a line may move into the cell (free, or a free dead-end goal cell)
    gend: set              # dead-end goal cells
    genter: list           # the goal's entry predicate by cell (None: not a goal)
    tunnel: list           # a new underground of this tier would pair wrongly across the cell
    ugcell: list           # an underground of this tier stands on the cell
    srcback: set           # cell * 4 + d where the cell behind (against d) is a source
    hh: list               # heuristic: distance to the nearest goal cell


def _route_tables(ctx: RouteCtx, goal: Goal, tier: int, exclude: set) -> _Tables:
    H, W = ctx.H, ctx.W
    P = W + 2
    N = (H + 2) * P
    DF = (-P, 1, P, -1)

    free = ~ctx.occ & ~ctx.blocked
    for ey, ex in exclude:
        if 0 <= ey < H and 0 <= ex < W:
            free[ey, ex] = False
    endok = np.zeros((H, W), dtype=bool)
    gend = set()
    for gy, gx in goal.end:
        gend.add((gy + 1) * P + gx + 1)
        endok[gy, gx] = not ctx.occ[gy, gx]
    genter: list = [None] * N
    for (gy, gx), pred in goal.enter.items():
        genter[(gy + 1) * P + gx + 1] = pred
    ugcell = [False] * N
    for uy, ux in ctx.ug[tier]:
        ugcell[(uy + 1) * P + ux + 1] = True
    srcback = set()
    for sy, sx in ctx.sources:
        for d in range(4):
            srcback.add(((sy + 1) * P + sx + 1 + DF[d]) * 4 + d)
    gy_, gx_ = np.array(goal.cells()).T
    hh = (np.abs(np.arange(-1, H + 1)[:, None, None] - gy_)
          + np.abs(np.arange(-1, W + 1)[None, :, None] - gx_)).min(-1).ravel().tolist()
    return _Tables(P, DF, _pad(free), _pad(free | endok), gend, genter, _pad(ctx.tunnel[tier]), ugcell,
                   srcback, hh)


def _end_path(world: World, ctx: RouteCtx, exclude: set, c: tuple[int, int], din: int, flag: bool,
              src_behind: Callable[[int], bool], belt: str,
              chain: Callable[[list], list]) -> list[Entity] | None:
    """The line ending with a dead-end belt on goal cell ``c`` (reached travelling ``din``): its
    direction is the first that works of: into an entity that is no belt-like or sink, straight
    on, a turn (never back, never away from a source but its own, never into a blocked or
    excluded cell). ``chain(last)`` is the whole line ending in ``last``."""
    dirs = [din] if flag else [d for d in range(4) if din < 0 or d != (din + 2) % 4]
    options = []
    for d in dirs:
        if src_behind(d) and not (flag and din == d):
            continue
        f = step(c, d)
        if 0 <= f[0] < ctx.H and 0 <= f[1] < ctx.W:
            fe = world.entity_at(*f)
            if fe is not None and (fe.name in BELTLIKE or fe.name == SINK):
                continue
            if fe is None and (ctx.blocked[f] or f in exclude):
                continue
            rank = 0 if fe is not None else (1 if d == din else 2)
        else:
            rank = 0
        options.append((rank, d))
    for _, d in sorted(options):
        path = chain([Entity(belt, c[0], c[1], d)])
        f = step(c, d)
        if _path_ok(path) and all((e.y, e.x) != f for e in path):
            return path
    return None


def _seed(starts, goal: Goal, ctx: RouteCtx, exclude: set, P: int, hh: list) -> tuple | None:
    """:func:`route`'s A* heap, best costs (by state ``(cell * 5 + din + 1) * 2 + flag``), parents
    and tie counter after pushing the start states; None when a start already enters the goal."""
    H, W = ctx.H, ctx.W
    tie = 0
    heap: list = []
    inf = float("inf")
    best = [inf] * ((H + 2) * P * 10)
    parent: dict = {}
    for y, x, din, flag in starts:
        c = (y, x)
        if c in goal.enter and goal.enter[c](din, flag):
            return None
        if not (0 <= y < H and 0 <= x < W) or ctx.occ[c] or c in exclude:
            continue
        cf = (y + 1) * P + x + 1
        flag = bool(flag)
        s = (cf * 5 + din + 1) * 2 + flag
        if best[s] == inf:
            best[s] = 0.0
            parent[s] = None
            heapq.heappush(heap, (hh[cf], tie, 0.0, s, cf, din, flag))
            tie += 1
    return heap, best, parent, tie


def _spec_entities(spec: tuple, P: int, belt: str, ugname: str) -> list[Entity]:
    """The entities of a search step: (cell, d) a belt; (cell, output cell, d) an underground pair."""
    if len(spec) == 2:
        cf, d = spec
        return [Entity(belt, cf // P - 1, cf % P - 1, d)]
    cf, of, d = spec
    return [Entity(ugname, cf // P - 1, cf % P - 1, d, io=IO_INPUT),
            Entity(ugname, of // P - 1, of % P - 1, d, io=IO_OUTPUT)]


def route(world: World, starts: Sequence[tuple[int, int, int, bool]], goal: Goal, tier: int, *,
          underground: bool = True, rng: np.random.Generator | None = None, ctx: RouteCtx | None = None,
          ug_cost: float = 5.0, exclude: Iterable[tuple[int, int]] = ()) -> list[Entity] | None:
    """A* route of one belt line; the entities to place, or None when there is no route.

    ``starts``: (y, x, din, flag) states: the line's first entity goes on (y, x); items arrive
    there travelling ``din`` (-1: from an inserter, any direction goes); ``flag``: that entity
    must point ``din`` (the cell is in front of a source, an underground output or a splitter).
    Belts turn freely (a belt with one feeder curves, it never side-loads), undergrounds jump
    2..max_distance cells straight ahead (tier ``tier``) and need a straight belt after them.
    A belt is never put where something already pushes into or an inserter reaches (except at
    the starts and goals), never points away from a source other than its own, and never
    points into anything but the next cell of the line or the goal.

    Runs on flat cell indices of the world padded by one cell (precomputed free / goal / cost /
    heuristic tables, integer states); the same search, pops and tie-breaks as
    :func:`_route_simple`, which it hands over to when a goal cell lies outside the world.
    """
    ctx = ctx or RouteCtx(world)
    H, W = ctx.H, ctx.W
    gcells = goal.cells()
    if not gcells:
        return None
    if not all(0 <= gy < H and 0 <= gx < W for gy, gx in gcells):
        return route_simple(world, starts, goal, tier, underground=underground, rng=rng, ctx=ctx,
                             ug_cost=ug_cost, exclude=exclude)
    belt = gd.BELTS[tier]
    ugname = gd.UNDERGROUNDS[tier]
    maxd = gd.underground_max_distance(ugname)
    exclude = set(exclude)
    T = _route_tables(ctx, goal, tier, exclude)
    P, DF, free, pushable, genter, tunnel, ugcell, srcback, hh = (
        T.P, T.DF, T.free, T.pushable, T.genter, T.tunnel, T.ugcell, T.srcback, T.hh)
    dirs_for = _DIRS_FOR

    seeded = _seed(starts, goal, ctx, exclude, P, hh)
    if seeded is None:
        return []
    heap, best, parent, tie = seeded

    def entity(spec) -> list[Entity]:
        return _spec_entities(spec, P, belt, ugname)

    def chain(s, last):
        out = list(last)
        while parent[s] is not None:
            s, spec = parent[s]
            out[:0] = entity(spec)
        return out

    # random cell costs (constructions) vary the routes a seed gives without making them silly
    cost = _pad(1.0 + 0.6 * rng.random((H, W)) if rng is not None else np.ones((H, W)))
    heappush, heappop = heapq.heappush, heapq.heappop

    while heap:
        _, _, g, s, cf, din, flag = heappop(heap)
        if g > best[s]:
            continue
        if cf in T.gend:
            path = _end_path(world, ctx, exclude, (cf // P - 1, cf % P - 1), din, flag,
                             lambda d, cf=cf: (cf * 4 + d) in srcback, belt, lambda last, s=s: chain(s, last))
            if path is not None:
                return path
            continue
        gc = g + cost[cf]
        for d in dirs_for[din, flag]:
            if (cf * 4 + d) in srcback and not (flag and din == d):
                continue
            n = cf + DF[d]
            pred = genter[n]
            if pred is not None and pred(d, False):
                path = chain(s, entity((cf, d)))
                if _path_ok(path):
                    return path
                continue
            if pushable[n]:
                s2 = (n * 5 + d + 1) * 2
                if gc < best[s2]:
                    best[s2] = gc
                    parent[s2] = (s, (cf, d))
                    heappush(heap, (gc + hh[n], tie, gc, s2, n, d, False))
                    tie += 1
        if underground and din >= 0 and not tunnel[cf] and not (
                (cf * 4 + din) in srcback and not flag):
            d = din
            dy, dx = OFF[d]
            y, x = cf // P - 1, cf % P - 1
            step_f = DF[d]
            gu = g + ug_cost * cost[cf]
            for k in range(2, maxd + 1):
                oy, ox = y + k * dy, x + k * dx
                if not (0 <= oy < H and 0 <= ox < W):
                    break
                of = cf + k * step_f
                if ugcell[of]:
                    break
                if not free[of] or tunnel[of]:
                    continue
                n = of + step_f
                pred = genter[n]
                if pred is not None and pred(d, True):
                    path = chain(s, entity((cf, of, d)))
                    if _path_ok(path):
                        return path
                    continue
                if pushable[n]:
                    g2 = gu + 0.01 * k
                    s2 = (n * 5 + d + 1) * 2 + 1
                    if g2 < best[s2]:
                        best[s2] = g2
                        parent[s2] = (s, (cf, of, d))
                        heappush(heap, (g2 + hh[n], tie, g2, s2, n, d, True))
                        tie += 1
    return None


def route_simple(world: World, starts: Sequence[tuple[int, int, int, bool]], goal: Goal, tier: int, *,
          underground: bool = True, rng: np.random.Generator | None = None, ctx: RouteCtx | None = None,
          ug_cost: float = 5.0, exclude: Iterable[tuple[int, int]] = ()) -> list[Entity] | None:
    """:func:`route` as first written: the reference :func:`route` must equal, and what it runs when
    a goal cell lies outside the world (never in the families' constructions).
    """
    ctx = ctx or RouteCtx(world)
    H, W = ctx.H, ctx.W
    belt = gd.BELTS[tier]
    ugname = gd.UNDERGROUNDS[tier]
    maxd = gd.underground_max_distance(ugname)
    exclude = set(exclude)
    gcells = goal.cells()
    if not gcells:
        return None

    def inb(c):
        return 0 <= c[0] < H and 0 <= c[1] < W

    def free(c):
        return inb(c) and not ctx.occ[c] and not ctx.blocked[c] and c not in exclude

    def back_ok(c, d, din, flag):
        b = (c[0] - OFF[d][0], c[1] - OFF[d][1])
        return b not in ctx.sources or (flag and din == d)

    def h(c):
        return min(abs(c[0] - g[0]) + abs(c[1] - g[1]) for g in gcells)

    tie = itertools.count()
    heap: list = []
    best: dict = {}
    parent: dict = {}
    for y, x, din, flag in starts:
        c = (y, x)
        if c in goal.enter and goal.enter[c](din, flag):
            return []
        if not inb(c) or ctx.occ[c] or c in exclude:
            continue
        s = (y, x, din, bool(flag))
        if s not in best:
            best[s] = 0.0
            parent[s] = None
            heapq.heappush(heap, (h(c), next(tie), 0.0, s))

    def chain(s, last):
        out = list(last)
        while parent[s] is not None:
            s, ents = parent[s]
            out[:0] = ents
        return out

    # random cell costs (constructions) vary the routes a seed gives without making them silly
    cost = 1.0 + 0.6 * rng.random((H, W)) if rng is not None else np.ones((H, W))

    def push(s2, g2, s, ents):
        if g2 < best.get(s2, float("inf")):
            best[s2] = g2
            parent[s2] = (s, ents)
            heapq.heappush(heap, (g2 + h((s2[0], s2[1])), next(tie), g2, s2))

    while heap:
        _, _, g, s = heapq.heappop(heap)
        if g > best.get(s, float("inf")):
            continue
        y, x, din, flag = s
        c = (y, x)
        if c in goal.end:
            path = _end_path(world, ctx, exclude, c, din, flag, lambda d, c=c: step(c, d, -1) in ctx.sources,
                             belt, lambda last, s=s: chain(s, last))
            if path is not None:
                return path
            continue
        for d in range(4):
            if flag and d != din:
                continue
            if din >= 0 and d == (din + 2) % 4:
                continue
            if not back_ok(c, d, din, flag):
                continue
            n = step(c, d)
            ents = [Entity(belt, y, x, d)]
            if n in goal.enter and goal.enter[n](d, False):
                path = chain(s, ents)
                if _path_ok(path):
                    return path
                continue
            if free(n) or (n in goal.end and not ctx.occ[n]):
                push((n[0], n[1], d, False), g + cost[c], s, ents)
        if underground and din >= 0 and not ctx.tunnel[tier][c] and back_ok(c, din, din, flag):
            d = din
            for k in range(2, maxd + 1):
                o = step(c, d, k)
                if not inb(o) or o in ctx.ug[tier]:
                    break
                if not free(o) or ctx.tunnel[tier][o]:
                    continue
                n = step(o, d)
                ents = [Entity(ugname, y, x, d, io=IO_INPUT), Entity(ugname, o[0], o[1], d, io=IO_OUTPUT)]
                if n in goal.enter and goal.enter[n](d, True):
                    path = chain(s, ents)
                    if _path_ok(path):
                        return path
                    continue
                if free(n) or (n in goal.end and not ctx.occ[n]):
                    push((n[0], n[1], d, True), g + ug_cost * cost[c] + 0.01 * k, s, ents)
    return None


def place_all(world: World, ents: Iterable[Entity]) -> None:
    for e in ents:
        world.place(e)


def source_starts(world: World, cell: tuple[int, int]) -> list[tuple[int, int, int, bool]]:
    """Route starts in front of a source: the first entity must point away from it (occupied
    cells are kept: a line head right in front of the source joins with no belt at all)."""
    out = []
    for d in range(4):
        c = step(cell, d)
        if in_bounds(world, c):
            out.append((c[0], c[1], d, True))
    return out
