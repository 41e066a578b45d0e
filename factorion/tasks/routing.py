"""Belt routing: :func:`route` (A* over cells and travel directions, with underground jumps) and the
goals and constraints it respects (:class:`Goal`, :func:`enter_pred`, :class:`_Ctx`)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .. import gamedata as gd
from ..world import IO_INPUT, IO_OUTPUT, PART, SINK, SOURCE, Entity, World
from .base import (
    _BELTLIKE,
    _BELTS,
    _INSERTERS,
    _SPLITTERS,
    _UGS,
    OFF,
    _inb,
    fronts,
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


def enter_pred(e: Entity) -> Callable[[int, bool], bool] | None:
    """How a route may enter entity ``e`` (the head of a line) without side-loading."""
    if e.name == SINK:
        return lambda din, flag: not flag
    if e.name in _BELTS:
        dh = e.direction
        return lambda din, flag: din != (dh + 2) % 4 and (not flag or din == dh)
    if e.name in _SPLITTERS or (e.name in _UGS and e.io == IO_INPUT):
        dh = e.direction
        return lambda din, flag: din == dh
    return None


class _Ctx:
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

        def block(c):
            if 0 <= c[0] < H and 0 <= c[1] < W:
                self.blocked[c] = True

        for e in world.entities():
            if e.name == SOURCE:
                self.sources.add((e.y, e.x))
            elif e.name in _INSERTERS:
                for c in inserter_cells(e):
                    block(c)
            elif e.name in _BELTLIKE:
                for c, _ in fronts(e):
                    block(c)
                if e.name in _UGS:
                    t = gd.tier(e.name)
                    self.ug[t].add((e.y, e.x))
                    if e.io == IO_INPUT:
                        o = ug_partner(world, e)
                        reach = (abs(o.y - e.y) + abs(o.x - e.x) - 1) if o else gd.underground_max_distance(
                            e.name)
                        for k in range(1, reach + 1):
                            c = step((e.y, e.x), e.direction, k)
                            if 0 <= c[0] < H and 0 <= c[1] < W:
                                self.tunnel[t][c] = True


def route(world: World, starts: Sequence[tuple[int, int, int, bool]], goal: Goal, tier: int, *,
          underground: bool = True, rng: np.random.Generator | None = None, ctx: _Ctx | None = None,
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
    """
    ctx = ctx or _Ctx(world)
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

    def valid(path):
        seen = set()
        for e in path:
            c = (e.y, e.x)
            if c in seen:
                return False
            seen.add(c)
        ug_cells = {(e.y, e.x) for e in path if e.name in _UGS}
        for i, e in enumerate(path):
            if e.name in _UGS and e.io == IO_INPUT:
                o = path[i + 1]
                k = abs(o.y - e.y) + abs(o.x - e.x)
                for j in range(1, k):
                    if step((e.y, e.x), e.direction, j) in ug_cells:
                        return False
        return True

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
            dirs = [din] if flag else [d for d in range(4) if din < 0 or d != (din + 2) % 4]
            options = []
            for d in dirs:
                if not back_ok(c, d, din, flag):
                    continue
                f = step(c, d)
                if inb(f):
                    fe = world.entity_at(*f)
                    if fe is not None and (fe.name in _BELTLIKE or fe.name == SINK):
                        continue
                    if fe is None and (ctx.blocked[f] or f in exclude):
                        continue
                    rank = 0 if fe is not None else (1 if d == din else 2)
                else:
                    rank = 0
                options.append((rank, d))
            for _, d in sorted(options):
                path = chain(s, [Entity(belt, y, x, d)])
                f = step(c, d)
                if valid(path) and all((e.y, e.x) != f for e in path):
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
                if valid(path):
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
                    if valid(path):
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
        if _inb(world, c):
            out.append((c[0], c[1], d, True))
    return out
