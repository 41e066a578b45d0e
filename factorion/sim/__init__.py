"""Steady-state throughput of a factory (the model is documented in docs/sim.md).

>>> from factorion.sim import simulate, throughput, throughput_batch
>>> r = simulate(world)          # SimResult: total, per_sink, flow, bottlenecks, idle, jammed
>>> throughput(world)            # float, the total only (what the RL env calls)
>>> throughput_batch(grids)      # (B,) float64 for an int16 (B, C, H, W) batch of world grids

The solver is compiled with numba (``cache=True``): the first call in a fresh checkout compiles
for ~30 s of CPU; later processes load the cache (~1 s). ``FACTORION_NOJIT=1`` runs it as plain
Python (slow; for debugging).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import DIR, ITEM, K_OBSTACLE, KIND, KINDS, PART, SINK, SOURCE, World
from factorion.sim.graph import ROLE_HUB, njit
from factorion.sim.locality import detached_batch
from factorion.sim.solver import solve
from factorion.sim.tables import C_SPLITTER, tables

__all__ = ["simulate", "SimResult", "throughput", "throughput_batch", "rate_grid", "detached_batch", "MAXIT",
           "TOL"]

MAXIT = 2000      # rate sweeps at most (loops converge geometrically; typical factories take 2-4)
TOL = 1e-12       # items/s: a sweep that changes no link flow by more than this ends the fixpoint
_EPS = 1e-9       # items/s below which an entity counts as carrying nothing


def targs():
    t = tables()
    return (t.kcls, t.lane_cap, t.reach, t.ins_rate, t.pick, t.drop, t.fw, t.speed, t.can_make,
            t.r_energy, t.r_ning, t.r_ing, t.r_ingamt, t.r_nres, t.r_res, t.r_resamt, t.smelt, t.dirs)


def rate_grid(shape: tuple[int, int], rates: Mapping | None) -> np.ndarray:
    """``World.rates`` as a float ``(H, W)`` array of source caps (``inf`` = unlimited; what
    :func:`throughput_batch` takes as ``rates``)."""
    g = np.full(shape, np.inf)
    for (y, x), r in (rates or {}).items():
        if 0 <= y < shape[0] and 0 <= x < shape[1] and r is not None and math.isfinite(r) and r >= 0:
            g[y, x] = float(r)
    return g




def _solve_world(world: World):
    grid = np.ascontiguousarray(world.grid, dtype=np.int16)
    return solve(grid, rate_grid(world.shape, world.rates), *targs(), MAXIT, TOL)


@dataclass
class SimResult:
    """Steady-state rates of a world (items/s). Cells are (y, x) entity anchors."""
    total: float
    per_sink: dict[tuple[int, int], float]
    flow: dict[tuple[int, int], dict[str, float]]
    bottlenecks: list[tuple[int, int]]
    idle: list[tuple[int, int]]
    jammed: list[tuple[int, int]] = field(default_factory=list)
    names: dict[tuple[int, int], str] = field(default_factory=dict)
    iterations: int = 0     # rate sweeps used (MAXIT means the fixpoint did not settle to TOL)

    @property
    def converged(self) -> bool:
        return self.iterations < MAXIT

    def to_dict(self) -> dict:
        """JSON-serialisable: cells become "y,x" strings."""
        def key(c):
            return f"{c[0]},{c[1]}"
        return {
            "total": self.total,
            "per_sink": {key(c): v for c, v in self.per_sink.items()},
            "flow": {key(c): dict(v) for c, v in self.flow.items()},
            "bottlenecks": [key(c) for c in self.bottlenecks],
            "idle": [key(c) for c in self.idle],
            "jammed": [key(c) for c in self.jammed],
            "names": {key(c): n for c, n in self.names.items()},
            "iterations": self.iterations,
            "converged": self.converged,
        }

    def report(self) -> str:
        """Human-readable summary: per-sink rates, total, bottlenecks, jams, idle entities."""
        def where(c):
            return f"{self.names.get(c, '?')} at ({c[0]}, {c[1]})"

        def rates(d):
            return ", ".join(f"{it} {v:.4g}/s" for it, v in sorted(d.items()))
        lines = [f"total: {self.total:.6g} items/s into {len(self.per_sink)} sink(s)"]
        if not self.converged:
            lines.append(f"  (rates did not settle within {self.iterations} sweeps: approximate)")
        for c, v in sorted(self.per_sink.items()):
            items = rates(self.flow.get(c, {})) or "nothing"
            lines.append(f"  sink ({c[0]}, {c[1]}): {v:.6g}/s ({items})")
        lines.append("bottlenecks (at capacity, with more offered than they take):")
        lines += [f"  {where(c)}: {rates(self.flow.get(c, {}))}" for c in self.bottlenecks] or ["  none"]
        if self.jammed:
            lines.append("jammed (a lane or the whole entity holds an item that can never leave: full, "
                         "stopped):")
            shown = ", ".join(where(c) for c in self.jammed[:12])
            more = f" ... and {len(self.jammed) - 12} more" if len(self.jammed) > 12 else ""
            lines.append(f"  {shown}{more}")
        lines.append(f"idle ({len(self.idle)} entities carry nothing):")
        if self.idle:
            shown = ", ".join(where(c) for c in self.idle[:12])
            more = f" ... and {len(self.idle) - 12} more" if len(self.idle) > 12 else ""
            lines.append(f"  {shown}{more}")
        return "\n".join(lines)


def simulate(world: World) -> SimResult:
    """Steady-state rates of ``world`` (see docs/sim.md for the model and its rules)."""
    total, TH, MC, dead, bott, ntype, nrec, loc, iters, _ls, _ld, _F, ncell, nrole, _cap = _solve_world(world)
    H, W = world.shape
    g = world.grid
    kind, part = g[KIND].astype(np.int64), g[PART].astype(np.int64)
    t = tables()
    # anchor cell of every cell (PART counts row-major inside the footprint)
    w = t.fw[kind, g[DIR] % 4]
    q = np.maximum(part - 1, 0)
    ys, xs = np.indices((H, W))
    anchor = ((ys - q // w) * W + (xs - q % w)).ravel()
    modelled = ((part == 1) & (kind != K_OBSTACLE) & (kind != 0)).ravel()
    cells = np.nonzero(modelled)[0]
    item_names = gd.item_names()
    names: dict[tuple[int, int], str] = {}
    for c in cells.tolist():
        y, x = divmod(c, W)
        k = KINDS[kind[y, x]]
        names[(y, x)] = f"{k}[{item_names[g[ITEM, y, x] - 1]}]" if k in (SOURCE, SINK) else k
    # per node -> its entity; a splitter's flow is what passes its hubs (its cells' lanes would
    # count it twice)
    node_anchor = anchor[ncell] if len(ncell) else np.zeros(0, np.int64)
    node_kind = kind.ravel()[ncell] if len(ncell) else np.zeros(0, np.int64)
    is_split = t.kcls[node_kind] == C_SPLITTER
    use = ~is_split | (nrole == ROLE_HUB)
    K = len(loc)
    per = np.zeros((H * W, max(K, 1)))
    if K and len(ncell):
        np.add.at(per, node_anchor[use], TH[use, :K])
    items = [item_names[i - 1] for i in loc]
    flow: dict[tuple[int, int], dict[str, float]] = {}
    for c in cells.tolist():
        y, x = divmod(c, W)
        flow[(y, x)] = {it: float(per[c, k]) for k, it in enumerate(items) if per[c, k] > _EPS}
    jset = {divmod(int(a), W) for a in node_anchor[dead]} if len(ncell) else set()
    bset = {divmod(int(a), W) for a in node_anchor[bott]} if len(ncell) else set()
    per_sink = {c: sum(flow[c].values()) for c, n in names.items() if n.startswith("sink[")}
    idle = sorted(c for c, d in flow.items() if sum(d.values()) <= _EPS)
    return SimResult(total=float(total), per_sink=per_sink, flow=flow,
                     bottlenecks=sorted(c for c in bset if sum(flow[c].values()) > _EPS),
                     idle=idle, jammed=sorted(jset), names=names, iterations=int(iters))


def throughput(world: World) -> float:
    """Items/s into all sinks together (the fast path)."""
    return float(_solve_world(world)[0])


@njit(cache=True)
def batch_solve(grids, rate_grids, kcls, lane_cap, reach, ins_rate, pick, drop, fw, speed, can_make,
           r_energy, r_ning, r_ing, r_ingamt, r_nres, r_res, r_resamt, smelt, dirs, maxit, tol):
    B = grids.shape[0]
    out = np.zeros(B)
    for b in range(B):
        out[b] = solve(grids[b], rate_grids[b], kcls, lane_cap, reach, ins_rate, pick, drop, fw, speed,
                       can_make, r_energy, r_ning, r_ing, r_ingamt, r_nres, r_res, r_resamt, smelt, dirs,
                       maxit, tol)[0]
    return out


_batch_par = None


def _parallel_batch():
    """The batch loop over numba's thread pool, compiled on first use (cached)."""
    global _batch_par
    if _batch_par is None:
        import numba

        @njit(cache=True, parallel=True)
        def batch_par(grids, rate_grids, kcls, lane_cap, reach, ins_rate, pick, drop, fw, speed, can_make,
                      r_energy, r_ning, r_ing, r_ingamt, r_nres, r_res, r_resamt, smelt, dirs, maxit, tol):
            B = grids.shape[0]
            out = np.zeros(B)
            for b in numba.prange(B):
                out[b] = solve(grids[b], rate_grids[b], kcls, lane_cap, reach, ins_rate, pick, drop, fw,
                               speed, can_make, r_energy, r_ning, r_ing, r_ingamt, r_nres, r_res, r_resamt,
                               smelt, dirs, maxit, tol)[0]
            return out
        _batch_par = batch_par
    return _batch_par


def throughput_batch(grids: np.ndarray, rates: Sequence[Mapping] | np.ndarray | None = None, *,
                     parallel: bool = False) -> np.ndarray:
    """Total throughput of each world grid in an int16 ``(B, C, H, W)`` batch.

    ``rates``: None (every source unlimited), a sequence of B ``{(y, x): items/s}`` dicts (as
    ``World.rates``), or a float ``(B, H, W)`` array (``inf`` or NaN = unlimited).
    ``parallel``: spread the batch over numba's threads (all cores; compiled on first use). Worth
    it for large batches on otherwise idle cores; the default keeps to the calling thread.
    """
    grids = np.ascontiguousarray(grids, dtype=np.int16)
    if grids.ndim != 4:
        raise ValueError(f"grids must be (B, C, H, W), got shape {grids.shape}")
    B, _, H, W = grids.shape
    if rates is None:
        rg = np.full((B, H, W), np.inf)
    elif isinstance(rates, np.ndarray):
        rg = np.where(np.isnan(rates), np.inf, rates).astype(np.float64).reshape(B, H, W)
    else:
        if len(rates) != B:
            raise ValueError(f"{len(rates)} rate tables for {B} grids")
        rg = np.full((B, H, W), np.inf)
        for b, r in enumerate(rates):
            if r:
                rg[b] = rate_grid((H, W), r)
    fn = _parallel_batch() if parallel and B > 1 else batch_solve
    return fn(grids, rg, *targs(), MAXIT, TOL)
