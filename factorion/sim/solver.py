"""Steady state of a flow graph: item liveness (which lanes jam) then the rate fixpoint.

Compiled with numba (``cache=True``); set ``FACTORION_NOJIT=1`` to run it as plain Python.
The model and why this computes it are in docs/sim.md; the short version:

1. *Presence* (forward, bitmasks): every item that can reach a node, ignoring rates. Items follow
   belts, inserters pick what their drop target takes, machines make their products once every
   ingredient can arrive (a furnace: the smelting result of each smeltable item fed).
2. *Escape* (backward): the items that can leave a node towards something that accepts them
   (a sink of that item, a producing machine, ...). A node holding an item that cannot leave
   **jams** and carries nothing -- things that push cannot choose not to. Jams only grow; repeat
   until none is added.
3. *Rates* on what is left: alternate a backward sweep (the *room* each link has: how much its
   target would take from it, with priorities: from behind > side-load > inserter drop, equal
   inputs share fairly) and a forward sweep (each node passes what it receives up to its room and
   capacity, inserters on a lane first, the rest onward; splitters share with overflow; machines
   run at min(speed / energy, ingredients / amount, product room / amount)) until nothing moves.

Layout (one job each): :mod:`.jams` (steps 1-2: item universe, presence, escape, jams, machine
recipes, live links), :mod:`.share` (water-filling, fair room, priority admission), :mod:`.rates`
(step 3's sweep order and its backward / forward sweeps); this module drives them
(:func:`solve`) and reads the result (:func:`_finish`: total into sinks, bottleneck flags).
"""

from __future__ import annotations

import numpy as np

from factorion.sim.graph import (
    NT_HUB,
    NT_INS,
    NT_LANE,
    NT_MACH,
    NT_SINK,
    NT_SRC,
    build,
    csr,
    njit,
)
from factorion.sim.jams import (
    item_masks,
    item_presence,
    item_universe,
    jam_fixpoint,
    link_matrix,
    machine_links,
    popcount,
)
from factorion.sim.rates import backward_pass, forward_pass, lane_order
from factorion.sim.share import INF


@njit
def _finish(ntype, ncap, nrec, dead, state, K, TH, MC, O, RL, llive, in_ptr, in_idx, out_ptr, out_idx, g2l,
            r_ning, r_ing, r_ingamt, bott):
    """Total into sinks; bottleneck flags: entities at their capacity with more offered to them
    than they take (a capped source: emitting its cap while more would be taken)."""
    N = ntype.shape[0]
    # ------------------------------------------------------------ total and bottlenecks
    total = 0.0
    for n in range(N):
        if ntype[n] == NT_SINK:
            for k in range(K):
                total += TH[n, k]
    eps = 1e-9
    for n in range(N):
        t = ntype[n]
        if dead[n] or state[n] == 0:
            continue
        thr = 0.0
        for k in range(K):
            thr += TH[n, k]
        if t == NT_MACH:
            c = MC[n]
            r = nrec[n]
            if c > eps and c >= ncap[n] * (1 - 1e-9):
                for j in range(r_ning[r]):
                    q = g2l[r_ing[r, j]]
                    pot = 0.0
                    for i in range(in_ptr[n], in_ptr[n + 1]):
                        l = in_idx[i]
                        if llive[l]:
                            pot += O[l, q]
                    if pot > c * r_ingamt[r, j] + eps:
                        bott[n] = True
            continue
        if t == NT_SRC:
            if thr > eps and ncap[n] < INF and thr >= ncap[n] * (1 - 1e-9):
                room = 0.0
                for i in range(out_ptr[n], out_ptr[n + 1]):
                    o = out_idx[i]
                    if llive[o]:
                        for k in range(K):
                            room += min(RL[o, k], 1e300)
                if room > thr + eps:
                    bott[n] = True
            continue
        if t == NT_LANE or t == NT_HUB or t == NT_INS:
            if thr > eps and thr >= ncap[n] * (1 - 1e-9):
                pot = 0.0
                for i in range(in_ptr[n], in_ptr[n + 1]):
                    l = in_idx[i]
                    if llive[l]:
                        for k in range(K):
                            pot += O[l, k]
                if pot > thr + eps:
                    bott[n] = True
    return total


@njit
def solve(grid, rate_grid, kcls, lane_cap, reach, ins_rate, pick, drop, fw, speed, can_make,
          r_energy, r_ning, r_ing, r_ingamt, r_nres, r_res, r_resamt, smelt, dirs, maxit, tol):
    """Solve one world. Returns (total, TH, MC, dead, bott, ntype, nrec, loc2glob, iters, lsrc,
    ldst, F, ncell, nrole, ncap): per-node throughput per local item TH, machine crafts/s MC, jammed
    and bottleneck flags, node types, recipes, local item -> global item id, sweeps used, the links
    with their flows F, and each node's cell, role and capacity (machines: crafts/s)."""
    # Kept as one kernel on purpose: split into named steps (inlined numba helpers, bit-identical
    # results) it measured a few % slower in ``throughput_batch``, as graph.build and the rate
    # sweeps did (see the notes there); at ~100 lines it fits on a screen as it is.
    ntype, ncap, nitem, nrec, nkind, ncell, nrole, lsrc, ldst, lkind, lcls = build(
        grid, rate_grid, kcls, lane_cap, reach, ins_rate, pick, drop, fw, speed, can_make, dirs)
    N = ntype.shape[0]
    L = lsrc.shape[0]
    g2l, loc, K, has_sink = item_universe(ntype, nitem, nrec, nkind, kcls, can_make, r_ning, r_ing, r_nres,
                                      r_res, smelt)
    Kd = max(K, 1)
    TH = np.zeros((N, Kd))
    MC = np.zeros(N)
    bott = np.zeros(N, np.bool_)
    F = np.zeros((L, Kd))
    if K == 0 or not has_sink or L == 0:
        dead = np.zeros(N, np.bool_)
        return 0.0, TH, MC, dead, bott, ntype, nrec, loc[:K].copy(), 0, lsrc, ldst, F, ncell, nrole, ncap
    out_ptr, out_idx = csr(N, lsrc, np.zeros(L, np.int64))
    in_ptr, in_idx = csr(N, ldst, lcls)
    ingmask, resmask, smeltable, acc = item_masks(ntype, nrec, nkind, nitem, kcls, can_make, r_ning, r_ing,
                                              r_nres, r_res, smelt, g2l, loc, K, lsrc, ldst, lkind)
    P, INP = item_presence(ntype, nitem, nrec, g2l, loc, K, ingmask, resmask, smeltable, acc, out_ptr,
                           out_idx, ldst, lkind, smelt, r_nres, r_res)
    dead = jam_fixpoint(ntype, nitem, nrec, g2l, K, P, INP, ingmask, smeltable, acc, in_ptr, in_idx, lsrc,
                        lkind)
    machine_links(ntype, nrec, nkind, ncap, kcls, dead, INP, ingmask, resmask, smeltable, g2l, loc, K, smelt,
              r_nres, r_res, speed, r_energy)
    LM, llive = link_matrix(ntype, nitem, ncap, dead, P, acc, ingmask, g2l, lsrc, ldst, lkind)
    post, npost, state, cyclic = lane_order(ntype, P, out_ptr, out_idx, ldst, llive)
    reached = False
    for pi in range(npost):
        if ntype[post[pi]] == NT_SINK:
            reached = True
            break
    if not reached:   # nothing live leads to a sink: every rate is 0
        return 0.0, TH, MC, dead, bott, ntype, nrec, loc[:K].copy(), 0, lsrc, ldst, F, ncell, nrole, ncap
    # item membership as booleans for the rate sweeps
    Pb = np.zeros((N, Kd), np.bool_)
    LMb = np.zeros((L, Kd), np.bool_)
    inb = np.zeros(Kd, np.bool_)
    for k in range(K):
        b = np.uint64(1) << np.uint64(k)
        for n in range(N):
            Pb[n, k] = (P[n] & b) != 0
        for l in range(L):
            LMb[l, k] = (LM[l] & b) != 0
    # ------------------------------------------------------------ rates (fixpoint)
    O = np.full((L, Kd), INF)
    RL = np.full((L, Kd), INF)
    Fprev = np.zeros((L, Kd))
    Rk = np.zeros(Kd)
    ak = np.zeros(Kd)
    afree = np.zeros(Kd)
    rem = np.zeros(Kd)
    maxdeg = 1
    for n in range(N):
        d1 = in_ptr[n + 1] - in_ptr[n]
        d2 = out_ptr[n + 1] - out_ptr[n]
        if d1 > maxdeg:
            maxdeg = d1
        if d2 > maxdeg:
            maxdeg = d2
    scratch = np.zeros(maxdeg + 1)
    scratch2 = np.zeros(maxdeg + 1)
    fac = np.ones(L)
    # a first sweep is already exact when no room depends on a competitor's flow (one live input
    # per node, one item per inserter, one ingredient per machine): then stop after it
    nin = np.zeros(N, np.int64)
    for l in range(L):
        if llive[l]:
            nin[ldst[l]] += 1
    contended = cyclic   # a back edge is read before this sweep computes it
    for pi in range(npost):
        n = post[pi]
        t = ntype[n]
        if t == NT_SINK or t == NT_SRC:
            continue
        if nin[n] > 1 or (t == NT_INS and popcount(P[n]) > 1) or (t == NT_MACH and r_ning[nrec[n]] > 1):
            contended = True
    iters = 0
    for it in range(maxit):
        iters = it + 1
        backward_pass(post, npost, ntype, ncap, nrec, K, Pb, LMb, llive, nin, in_ptr, in_idx, out_ptr,
                      out_idx, lcls, F, O, RL, TH, Rk, scratch, g2l, r_ning, r_ing, r_ingamt, r_nres, r_res,
                      r_resamt)
        forward_pass(post, npost, ntype, ncap, nrec, nitem, K, LMb, llive, nin, in_ptr, in_idx, out_ptr,
                     out_idx, lcls, lkind, F, O, RL, TH, MC, ak, afree, rem, inb, scratch, scratch2, fac, g2l,
                     r_ning, r_ing, r_ingamt, r_nres, r_res, r_resamt)
        # -------- convergence
        diff = 0.0
        for l in range(L):
            if llive[l]:
                for k in range(K):
                    dd = abs(F[l, k] - Fprev[l, k])
                    if dd > diff:
                        diff = dd
                    Fprev[l, k] = F[l, k]
        if (diff <= tol and it > 0) or not contended:
            break

    total = _finish(ntype, ncap, nrec, dead, state, K, TH, MC, O, RL, llive, in_ptr, in_idx, out_ptr, out_idx,
                    g2l, r_ning, r_ing, r_ingamt, bott)
    return total, TH, MC, dead, bott, ntype, nrec, loc[:K].copy(), iters, lsrc, ldst, F, ncell, nrole, ncap
