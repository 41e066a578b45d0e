"""Blocks that live with obstacles: a scale-out block fitted around occupied cells.

:func:`factorion.tasks.scale.place_design` places a block only where every cell of it is free.
Where the area holds obstacles (power poles kept as obstacles, walls) that leaves no place, so
:func:`fit_entities` builds the block from its parts instead: a machine whose footprint is not
free is left out, with the inserters that served it; an inserter whose cell is taken, or whose
pickup or drop cell is no longer a kept machine or plain belt, is left out; a machine no inserter
feeds or empties any more is left out; a belt row hops the taken cells of its run with a pair of
undergrounds of its tier (the cells before and after the run become the input and output), its
taken head or tail cells are trimmed. What is left is placed when it still holds a machine; the
simulator then says what it is worth.
"""

from __future__ import annotations

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import KIND, KINDS, OBSTACLE, Entity, World
from factorion.tasks.scale import Design, design_entities, layout

MACHINES = gd.ASSEMBLERS + gd.FURNACES
OBSTACLE_KIND = KINDS.index(OBSTACLE)
STEP = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}


def _free(world: World, e: Entity) -> bool:
    w, h = e.size
    if e.y < 0 or e.x < 0 or e.y + h > world.height or e.x + w > world.width:
        return False
    return not (world.grid[:, e.y:e.y + h, e.x:e.x + w] != 0).any()


def _cells(e: Entity) -> list[tuple[int, int]]:
    w, h = e.size
    return [(e.y + i, e.x + j) for i in range(h) for j in range(w)]


def _ends(e: Entity) -> tuple[tuple[int, int], tuple[int, int]]:
    """(pickup, drop) cells of an inserter (north-facing picks up from the north)."""
    reach = 2 if e.name == "long-handed-inserter" else 1
    dy, dx = STEP[e.direction]
    return (e.y + reach * dy, e.x + reach * dx), (e.y - reach * dy, e.x - reach * dx)


def _belt_row(world: World, row: list[Entity], tier: int) -> list[Entity] | None:
    """One belt row with its taken cells hopped by undergrounds and taken ends trimmed; None when
    a run of taken cells is longer than the undergrounds reach (or no cell is free)."""
    dr = row[0].direction
    row = sorted(row, key=lambda e: e.x, reverse=dr == 3)
    ok = [_free(world, e) for e in row]
    while row and not ok[0]:
        row, ok = row[1:], ok[1:]
    while row and not ok[-1]:
        row, ok = row[:-1], ok[:-1]
    if not row:
        return None
    # a free cell alone between two taken runs cannot be both an underground's output and input
    for i in range(1, len(row) - 1):
        if ok[i] and not ok[i - 1] and not ok[i + 1]:
            ok[i] = False
    ug = gd.UNDERGROUNDS[tier]
    reach = gd.underground_max_distance(ug)
    out: list[Entity] = []
    i = 0
    while i < len(row):
        if ok[i]:
            out.append(row[i])
            i += 1
            continue
        j = i
        while not ok[j]:
            j += 1
        if abs(row[j].x - row[i - 1].x) > reach:
            return None
        out[-1] = Entity(ug, row[i - 1].y, row[i - 1].x, dr, io=1)
        out.append(Entity(ug, row[j].y, row[j].x, dr, io=2))
        i = j + 1
    return out


def fit_entities(world: World, d: Design, y0: int, x0: int) -> list[Entity] | None:
    """The parts of block ``d`` at (y0, x0) that fit ``world`` around its taken cells (see the
    module docstring), or None when no machine is left or a belt row cannot hop its obstacles."""
    ents = design_entities(d, y0, x0)
    rows: dict[tuple[int, int], list[Entity]] = {}
    for e in ents:
        if e.name in gd.BELTS:
            rows.setdefault((e.y, e.direction), []).append(e)
    belts: list[Entity] = []
    for row in rows.values():
        got = _belt_row(world, row, d.tier)
        if got is None:
            return None
        belts += got
    plain = {(e.y, e.x) for e in belts if e.name in gd.BELTS}
    machines = [e for e in ents if e.name in MACHINES and _free(world, e)]
    inserters = [e for e in ents if e.name in gd.INSERTERS and _free(world, e)]
    while True:
        at = {c: m for m in machines for c in _cells(m)}
        keep = [e for e in inserters if all(c in plain or c in at for c in _ends(e))]
        fed = {id(at[_ends(e)[1]]) for e in keep if _ends(e)[1] in at}
        drained = {id(at[_ends(e)[0]]) for e in keep if _ends(e)[0] in at}
        kept = [m for m in machines if id(m) in fed and id(m) in drained]
        if len(keep) == len(inserters) and len(kept) == len(machines):
            break
        inserters, machines = keep, kept
    if not machines:
        return None
    return machines + inserters + belts


def fit_design(world: World, d: Design, y0: int, x0: int) -> tuple[list, list] | None:
    """Place what :func:`fit_entities` keeps of block ``d``; returns (input ends, output ends)
    as :func:`factorion.tasks.scale.input_ends` / ``output_ends`` give them for the placed belts,
    or None (``world`` unchanged) when nothing fits."""
    ents = fit_entities(world, d, y0, x0)
    if ents is None:
        return None
    for e in ents:
        world.place(e)
    _, belts, rows = layout(d)
    ins = {y0 + r for r in belts}
    outs = {y0 + r.out_belt for r in rows}
    last: dict[int, Entity] = {}
    for e in ents:
        if e.name in gd.BELTS or e.name in gd.UNDERGROUNDS:
            prev = last.get(e.y)
            if prev is None or (e.x > prev.x) == (e.direction == 1):
                last[e.y] = e
    ends_in = [(y, e.x + STEP[e.direction][1]) for y, e in last.items() if y in ins]
    ends_out = [(y, e.x + STEP[e.direction][1], e.direction) for y, e in last.items() if y in outs]
    return ends_in, ends_out


def obstacle_positions(grid: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the top-left corners where ``mask`` covers at least one obstacle cell and no
    other taken cell (the places :func:`fit_design` may use that a solid block cannot)."""
    h, w = mask.shape
    H, W = grid.shape[1:]
    if h > H or w > W:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    kind = grid[KIND]
    obst = np.lib.stride_tricks.sliding_window_view(kind == OBSTACLE_KIND, (h, w))
    other = np.lib.stride_tricks.sliding_window_view((kind != 0) & (kind != OBSTACLE_KIND), (h, w))
    ok = ~(other & mask).any(axis=(2, 3)) & (obst & mask).any(axis=(2, 3))
    return np.nonzero(ok)
