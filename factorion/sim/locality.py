"""Which edits provably leave a world's throughput unchanged (the env skips re-simulating them).

An entity E is **detached** in a grid that contains it when the flow graph (:func:`graph.build`)
gives E's nodes no link to any other entity's node and E changes no link between other nodes.
Then adding or removing E leaves the total of :func:`solver.solve` bit-for-bit the same:

* E is a belt, underground, splitter, inserter or chest: it brings no item into the world's item
  universe (only sources and machine recipes do) and is never a source, sink or machine;
* its nodes receive no link from outside, so no item reaches them (presence 0): they never jam,
  none of their links (a splitter's own hub links) is live, and they are not in the post-order
  of live nodes the rate sweeps and the total walk;
* every other node keeps its links, in the same relative order (nodes and links are numbered in
  row-major cell order; E's are merely interleaved), so the solver does the same arithmetic in
  the same order on everything that carries flow. (A world whose only links are E's own returns
  0 with or without them: no live link leaves a source.)

The grid conditions that make E detached, from what ``graph.build`` looks at:

* no other entity of a modelled class (anything but empty and obstacle cells) on a cell
  sharing an edge with E's footprint: belts/undergrounds/splitters link to the cell ahead,
  sources push to and belts deliver into edge neighbours, and whether a belt is a curve depends
  on its edge neighbours (a diagonal entity could only matter through an occupied cell between
  them, which this already excludes);
* no other inserter within the inserters' longest reach (pickup/drop offsets, 2 for
  long-handed) of E's footprint: they pick from / drop onto any modelled class;
* E an inserter: its own pickup and drop cells hold nothing modelled (or are off the grid);
* E an underground: no underground of the same kind within its reach along its axis, both
  ways (pairing, and a same-tier underground in between takes the pairing).

``tests/test_sim_locality.py`` checks the claim against full re-simulation on random worlds and
on random env trajectories.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from factorion.core.kinds import kind_tables
from factorion.sim.graph import njit
from factorion.sim.tables import C_BELT, C_CHEST, C_INSERTER, C_SPLITTER, C_UG, tables


@cache
def _largs():
    t = tables()
    rins = int(max(np.abs(t.pick).max(), np.abs(t.drop).max(), 1))
    return t.kcls, t.fw, kind_tables().fh, t.reach, t.pick, t.drop, t.dirs, rins


@njit(cache=True)
def _modelled(kcls, kind, part, y, x, H, W):
    """Class of the entity on (y, x) when it is on the grid and modelled, else 0."""
    if y < 0 or y >= H or x < 0 or x >= W or part[y, x] <= 0:
        return 0
    return kcls[kind[y, x]]


@njit(cache=True)
def detached(grid, cy, cx, kcls, fw, fh, reach, pick, drop, dirs, rins):
    """Whether the entity covering cell (cy, cx) of ``grid`` is detached (module docstring)."""
    H, W = grid.shape[1], grid.shape[2]
    kind = grid[0]
    dr = grid[1]
    part = grid[5]
    p = part[cy, cx]
    if p <= 0:
        return False
    k = kind[cy, cx]
    c = kcls[k]
    if not (c == C_BELT or c == C_UG or c == C_SPLITTER or c == C_INSERTER or c == C_CHEST):
        return False
    d = dr[cy, cx] % 4
    w = fw[k, d]
    h = fh[k, d]
    q = p - 1
    y0 = cy - q // w
    x0 = cx - q % w
    y1 = y0 + h - 1
    x1 = x0 + w - 1
    for yy in range(y0 - rins, y1 + rins + 1):
        for xx in range(x0 - rins, x1 + rins + 1):
            if y0 <= yy <= y1 and x0 <= xx <= x1:
                continue
            cc = _modelled(kcls, kind, part, yy, xx, H, W)
            if cc == 0:
                continue
            if cc == C_INSERTER or (y0 <= yy <= y1 and x0 - 1 <= xx <= x1 + 1) \
                    or (x0 <= xx <= x1 and y0 - 1 <= yy <= y1 + 1):
                return False
    if c == C_INSERTER:
        if _modelled(kcls, kind, part, y0 + pick[k, d, 0], x0 + pick[k, d, 1], H, W) != 0:
            return False
        if _modelled(kcls, kind, part, y0 + drop[k, d, 0], x0 + drop[k, d, 1], H, W) != 0:
            return False
    if c == C_UG:
        for sgn in (-1, 1):
            for i in range(1, reach[k] + 1):
                yy = y0 + sgn * i * dirs[d, 0]
                xx = x0 + sgn * i * dirs[d, 1]
                if yy < 0 or yy >= H or xx < 0 or xx >= W:
                    break
                if part[yy, xx] > 0 and kind[yy, xx] == k:
                    return False
    return True


@njit(cache=True)
def _detached_batch(grids, idx, cells, kcls, fw, fh, reach, pick, drop, dirs, rins):
    n = idx.shape[0]
    W = grids.shape[3]
    out = np.zeros(n, np.bool_)
    for i in range(n):
        c = cells[i]
        out[i] = detached(grids[idx[i]], c // W, c % W, kcls, fw, fh, reach, pick, drop, dirs, rins)
    return out


def detached_batch(grids: np.ndarray, idx: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: the entity covering flat cell ``cells[i]`` of ``grids[idx[i]]`` (an int16
    ``(B, C, H, W)`` batch) is detached, so adding or removing it keeps the throughput."""
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) == 0:
        return np.zeros(0, dtype=bool)
    return _detached_batch(grids, idx, np.asarray(cells, dtype=np.int64), *_largs())
