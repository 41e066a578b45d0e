"""How a node shares what it can pass among those who want it (compiled with numba).

The arithmetic of docs/sim.md's rule 2 that the rate sweeps (:mod:`.rates`) apply at every node:
*water-filling* (the level at which a total is shared fairly), the *fair room* one more claimant
gets, *admission* of a node's in-links by priority class (from behind > side-load > inserter drop;
fair inside a class), and whether a lane carrying several items can pass a given total.
"""

from __future__ import annotations

import numpy as np

from factorion.sim.graph import LK_TAKE, njit

INF = np.inf


@njit
def _isort(v, m):
    for i in range(1, m):
        x = v[i]
        j = i - 1
        while j >= 0 and v[j] > x:
            v[j + 1] = v[j]
            j -= 1
        v[j + 1] = x


@njit
def waterfill(v, m, total):
    """Level lam with sum(min(v[i], lam)) == total (inf when everything fits). Sorts v[:m]."""
    s = 0.0
    for i in range(m):
        s += v[i]
    if s <= total:
        return INF
    _isort(v, m)
    rem = total
    cnt = m
    for i in range(m):
        if v[i] * cnt <= rem:
            rem -= v[i]
            cnt -= 1
        else:
            return rem / cnt
    return INF


@njit
def fair_room(avail, v, m):
    """What one more claimant with unlimited demand gets when ``avail`` is shared fairly with
    claimants wanting v[:m] (sorts v[:m])."""
    if avail <= 0.0:
        return 0.0
    if avail == INF:
        return INF
    _isort(v, m)
    rem = avail
    cnt = m + 1
    for i in range(m):
        if v[i] * cnt <= rem:
            rem -= v[i]
            cnt -= 1
        else:
            break
    return rem / cnt


@njit
def ftot(F, l, K):
    s = 0.0
    for k in range(K):
        s += F[l, k]
    return s


@njit
def admit(F, K, in_ptr, in_idx, lcls, llive, n, t, fac, scratch):
    """Per-in-link admission factors of node n when it passes t in total: classes in priority
    order, fair (water-filling) inside a class. Writes fac[l]."""
    remaining = t
    i = in_ptr[n]
    end = in_ptr[n + 1]
    while i < end:
        c = lcls[in_idx[i]]
        j = i
        s = 0.0
        m = 0
        while j < end and lcls[in_idx[j]] == c:
            l = in_idx[j]
            if llive[l]:
                v = ftot(F, l, K)
                scratch[m] = v
                m += 1
                s += v
            j += 1
        if s <= remaining:
            for q in range(i, j):
                fac[in_idx[q]] = 1.0
            remaining -= s
        else:
            lam = waterfill(scratch, np.int64(m), remaining) if remaining > 0 else 0.0
            for q in range(i, j):
                l = in_idx[q]
                if not llive[l]:
                    continue
                v = ftot(F, l, K)
                fac[l] = min(v, lam) / v if v > 0 else 1.0
            remaining = 0.0
        i = j


@njit
def lane_ok(F, K, in_ptr, in_idx, out_ptr, out_idx, lcls, llive, lkind, LMb, RL, n, succ, trial, fac,
             scratch):
    """Can lane n pass ``trial`` items/s? What its inserters do not take must fit the successor,
    which must take every such item (a sink takes only its own)."""
    admit(F, K, in_ptr, in_idx, lcls, llive, n, trial, fac, scratch)
    remsum = 0.0
    sroom = 0.0
    for k in range(K):
        a = 0.0
        for i in range(in_ptr[n], in_ptr[n + 1]):
            l = in_idx[i]
            if llive[l]:
                a += fac[l] * F[l, k]
        tk = 0.0
        for i in range(out_ptr[n], out_ptr[n + 1]):
            o = out_idx[i]
            if llive[o] and lkind[o] == LK_TAKE and LMb[o, k]:
                tk += RL[o, k]
        rk = a - min(a, tk)
        if succ >= 0 and LMb[succ, k]:
            sroom = max(sroom, RL[succ, k])
        if rk > 1e-12 * max(1.0, a):
            if succ < 0 or not LMb[succ, k] or rk > RL[succ, k] * (1 + 1e-12):
                return False
            remsum += rk
    return remsum <= sroom * (1 + 1e-12)
