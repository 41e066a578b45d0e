"""Expert actions of the chunk stage's examples: :func:`flow_order` (the build order of
``factorion.env.planner.actions_to_build``, computed on the window grid, ~40x faster) and
:func:`expert_actions` (that order, or the planner itself with ``expert="planner"``)."""

from __future__ import annotations

from collections import Counter
from functools import cache

import numpy as np

from factorion.core.kinds import (
    IS_ASSEMBLER,
    IS_BELT,
    IS_BELTLIKE,
    IS_FURNACE,
    IS_INSERTER,
    IS_SPLITTER,
    IS_UG,
    OFF_X,
    OFF_Y,
    kind_tables,
)
from factorion.core.world import (
    DIR,
    IO,
    IO_INPUT,
    IO_OUTPUT,
    K_OBSTACLE,
    K_SINK,
    K_SOURCE,
    KIND,
    PART,
    Entity,
    World,
    WorldError,
)


@cache
def _planner():
    try:
        from factorion.env.planner import actions_to_build
    except ImportError:
        return None
    return actions_to_build


def _entity_index(grid: np.ndarray) -> tuple[list[tuple[int, int]], np.ndarray]:
    """(anchors of the non-obstacle entities in row-major order, (H, W) cell -> entity index or -1)."""
    fw, *_ = kind_tables()
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


def _flow_links(grid: np.ndarray, anchors: list[tuple[int, int]], at: np.ndarray) -> tuple[list[int], list]:
    """(kind of each entity, entity indices each passes items to): the ``tasks.Flow`` links, in
    the order it makes them."""
    fw, fh, pick, drop, ug_reach = kind_tables()
    kind, dgrid, io = grid[KIND], grid[DIR], grid[IO]
    H, W = kind.shape
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
    return ks, out


def _walk(want_i: list[int], ks: list[int], out: list[list[int]]) -> list[int]:
    """Wanted machines, inserters, then the BFS order from every source and inserter (through
    belt-likes, and wanted entities once reached), then the rest."""
    machines = IS_ASSEMBLER | IS_FURNACE
    n = len(ks)
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
    return order


def flow_order(grid: np.ndarray, want: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The anchors ``want`` in the build order of ``factorion.env.planner.actions_to_build`` for a world
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
    anchors, at = _entity_index(grid)
    ks, out = _flow_links(grid, anchors, at)
    want_i = sorted(int(at[y, x]) for y, x in want)
    order = _walk(want_i, ks, out)
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
                   counts: Counter | None = None) -> list[tuple]:
    """Actions that rebuild ``target`` from ``start`` (= ``target`` less ``removed``): ``flow``
    (default) orders the places with :func:`flow_order`; ``planner`` calls
    ``factorion.env.planner.actions_to_build`` (checked to rebuild ``target``; falls back to ``flow``)."""
    if expert == "planner" and _planner() is not None:
        try:
            acts = list(_planner()(start, target))
            if np.array_equal(_apply(start, acts).grid, target.grid):
                return acts
        except (WorldError, ValueError, KeyError, TypeError, IndexError):
            pass
        if counts is not None:
            counts["planner_fallback"] += 1
    by_cell = {(e.y, e.x): e for e in removed}
    return [("place", by_cell[c]) for c in flow_order(target.grid, list(by_cell))]
