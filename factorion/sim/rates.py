"""The rate fixpoint's sweeps over the live graph (compiled with numba).

Rule 2 of docs/sim.md: back-pressure with priorities. :func:`_order` gives the depth-first
post-order of the live nodes reachable from sources; :func:`.solver.solve` then alternates

* a *backward* sweep (:func:`_backward`): the room each live in-link has, i.e. how much its target
  would take from it (priorities: from behind > side-load > inserter drop; equal inputs share
  fairly; machines: what the other ingredients and the product room let them craft), and
* a *forward* sweep (:func:`_forward`): each node passes what it receives up to its room and
  capacity (inserters on a lane first, the rest onward; splitter hubs share with overflow; machines
  run at min(speed / energy, ingredients / amount, product room / amount)),

until no link's flow moves. ``O`` carries each link's *potential* (what could arrive if everything
downstream took all), used for machines' supply and for bottleneck flags.
"""

from __future__ import annotations

import numpy as np

from factorion.sim.graph import (
    LK_TAKE,
    NT_CHEST,
    NT_HUB,
    NT_INS,
    NT_LANE,
    NT_MACH,
    NT_SINK,
    NT_SRC,
    njit,
)
from factorion.sim.share import INF, admit, fair_room, ftot, lane_ok, waterfill


@njit
def lane_order(ntype, P, out_ptr, out_idx, ldst, llive):
    """Depth-first post-order of the live nodes reachable from sources (reverse = topological
    for the acyclic parts). Returns (post, npost, state, cyclic)."""
    N = ntype.shape[0]
    zero64 = np.uint64(0)
    state = np.zeros(N, np.int8)
    post = np.empty(N, np.int64)
    npost = 0
    sn = np.empty(N, np.int64)
    si = np.empty(N, np.int64)
    cyclic = False
    for s0 in range(N):
        if ntype[s0] != NT_SRC or P[s0] == zero64 or state[s0] != 0:
            continue
        top = 0
        sn[0] = s0
        si[0] = out_ptr[s0]
        state[s0] = 1
        while top >= 0:
            u = sn[top]
            if si[top] < out_ptr[u + 1]:
                l = out_idx[si[top]]
                si[top] += 1
                if not llive[l]:
                    continue
                v = ldst[l]
                if state[v] == 1:
                    cyclic = True
                elif state[v] == 0:
                    state[v] = 1
                    top += 1
                    sn[top] = v
                    si[top] = out_ptr[v]
            else:
                state[u] = 2
                post[npost] = u
                npost += 1
                top -= 1
    return post, npost, state, cyclic


@njit
def backward_pass(post, npost, ntype, ncap, nrec, K, Pb, LMb, llive, nin, in_ptr, in_idx, out_ptr, out_idx,
              lcls, F, O, RL, TH, Rk, scratch, g2l, r_ning, r_ing, r_ingamt, r_nres, r_res, r_resamt):
    """One backward sweep: the room of every live in-link (how much its target takes from it)."""
    # Kept as one kernel on purpose (measured): split into per-node-type numba helpers (bit-identical
    # results), ``throughput_batch`` on 2,000 fuzz factories fell from ~74k to ~36k factories/s of CPU
    # time (the calls pass ~20 arrays each), and to ~53k/s with the helpers inlined
    # (``inline="always"``); the same holds for :func:`forward_pass`.
    # -------- backward: rooms of in-links
    for pi in range(npost):
        n = post[pi]
        t = ntype[n]
        if t == NT_SINK:
            for i in range(in_ptr[n], in_ptr[n + 1]):
                l = in_idx[i]
                for k in range(K):
                    RL[l, k] = INF if LMb[l, k] else 0.0
            continue
        if t == NT_SRC:
            continue
        if t == NT_MACH:
            r = nrec[n]
            c_out = ncap[n]
            for j in range(r_nres[r]):
                q = g2l[r_res[r, j]]
                if q < 0:
                    continue
                room = 0.0
                for i in range(out_ptr[n], out_ptr[n + 1]):
                    o = out_idx[i]
                    if llive[o] and LMb[o, q]:
                        room += RL[o, q]
                c_out = min(c_out, room / r_resamt[r, j])
            for j in range(r_ning[r]):
                qx = g2l[r_ing[r, j]]
                cx = c_out
                for j2 in range(r_ning[r]):
                    if j2 == j:
                        continue
                    qy = g2l[r_ing[r, j2]]
                    sup = 0.0
                    for i in range(in_ptr[n], in_ptr[n + 1]):
                        l = in_idx[i]
                        if llive[l] and LMb[l, qy]:
                            sup += O[l, qy]
                    cx = min(cx, sup / r_ingamt[r, j2])
                demand = cx * r_ingamt[r, j]
                for i in range(in_ptr[n], in_ptr[n + 1]):
                    l = in_idx[i]
                    if not llive[l] or not LMb[l, qx]:
                        continue
                    m = 0
                    for i2 in range(in_ptr[n], in_ptr[n + 1]):
                        l2 = in_idx[i2]
                        if l2 != l and llive[l2] and LMb[l2, qx]:
                            scratch[m] = F[l2, qx]
                            m += 1
                    RL[l, qx] = fair_room(demand, scratch, np.int64(m))
            continue
        # lanes, hubs, chests, inserters: room per item, then shares of the in-links
        for k in range(K):
            if not Pb[n, k]:
                Rk[k] = 0.0
                continue
            if t == NT_INS:
                other = 0.0
                for j in range(K):
                    if j != k:
                        other += TH[n, j]
                room = 0.0
                for i in range(out_ptr[n], out_ptr[n + 1]):
                    o = out_idx[i]
                    if llive[o]:
                        room += RL[o, k]
                Rk[k] = max(0.0, min(ncap[n] - other, room))
            else:
                room = 0.0
                for i in range(out_ptr[n], out_ptr[n + 1]):
                    o = out_idx[i]
                    if llive[o] and LMb[o, k]:
                        room += RL[o, k]
                Rk[k] = min(ncap[n], room)
        if t == NT_LANE and nin[n] == 1:
            for q in range(in_ptr[n], in_ptr[n + 1]):
                l = in_idx[q]
                if llive[l]:
                    for k in range(K):
                        if LMb[l, k]:
                            RL[l, k] = Rk[k]
        elif t == NT_LANE:
            higher = 0.0
            i = in_ptr[n]
            end = in_ptr[n + 1]
            while i < end:
                c = lcls[in_idx[i]]
                j = i
                gsum = 0.0
                while j < end and lcls[in_idx[j]] == c:
                    j += 1
                for q in range(i, j):
                    l = in_idx[q]
                    if not llive[l]:
                        continue
                    m = 0
                    for q2 in range(i, j):
                        l2 = in_idx[q2]
                        if l2 != l and llive[l2]:
                            scratch[m] = ftot(F, l2, K)
                            m += 1
                    for k in range(K):
                        if LMb[l, k]:
                            RL[l, k] = fair_room(Rk[k] - higher, scratch, np.int64(m))
                    gsum += ftot(F, l, K)
                higher += gsum
                i = j
        elif t == NT_HUB:
            for q in range(in_ptr[n], in_ptr[n + 1]):
                l = in_idx[q]
                if not llive[l]:
                    continue
                m = 0
                for q2 in range(in_ptr[n], in_ptr[n + 1]):
                    l2 = in_idx[q2]
                    if l2 != l and llive[l2]:
                        scratch[m] = ftot(F, l2, K)
                        m += 1
                for k in range(K):
                    if LMb[l, k]:
                        RL[l, k] = fair_room(Rk[k], scratch, np.int64(m))
        else:  # inserter, chest: per item, fair among the in-links carrying it
            for q in range(in_ptr[n], in_ptr[n + 1]):
                l = in_idx[q]
                if not llive[l]:
                    continue
                for k in range(K):
                    if not LMb[l, k]:
                        continue
                    m = 0
                    for q2 in range(in_ptr[n], in_ptr[n + 1]):
                        l2 = in_idx[q2]
                        if l2 != l and llive[l2] and LMb[l2, k]:
                            scratch[m] = F[l2, k]
                            m += 1
                    RL[l, k] = fair_room(Rk[k], scratch, np.int64(m))


@njit
def forward_pass(post, npost, ntype, ncap, nrec, nitem, K, LMb, llive, nin, in_ptr, in_idx, out_ptr, out_idx,
             lcls, lkind, F, O, RL, TH, MC, ak, afree, rem, inb, scratch, scratch2, fac, g2l, r_ning, r_ing,
             r_ingamt, r_nres, r_res, r_resamt):
    """One forward sweep: flows from sources on, each node passing what it receives up to its
    rooms and capacity."""
    # Kept as one kernel on purpose: splitting it (with :func:`backward_pass`) into per-node-type
    # helpers measured 2x slower, ~30% slower with them inlined (see the note there).
    # -------- forward: flows
    for pi in range(npost - 1, -1, -1):
        n = post[pi]
        t = ntype[n]
        if t == NT_SRC:
            q = g2l[nitem[n]]
            m = 0
            for i in range(out_ptr[n], out_ptr[n + 1]):
                o = out_idx[i]
                if llive[o]:
                    scratch[m] = RL[o, q]
                    m += 1
            lam = waterfill(scratch, np.int64(m), ncap[n])
            tot = 0.0
            for i in range(out_ptr[n], out_ptr[n + 1]):
                o = out_idx[i]
                if llive[o]:
                    F[o, q] = min(RL[o, q], lam)
                    tot += F[o, q]
            for i in range(out_ptr[n], out_ptr[n + 1]):
                o = out_idx[i]
                if llive[o]:
                    O[o, q] = INF if ncap[n] == INF else ncap[n] - (tot - F[o, q])
            TH[n, q] = tot
            continue
        if t == NT_SINK:
            for k in range(K):
                TH[n, k] = 0.0
            for i in range(in_ptr[n], in_ptr[n + 1]):
                l = in_idx[i]
                if llive[l]:
                    for k in range(K):
                        TH[n, k] += F[l, k]
            continue
        if t == NT_INS:
            drop_l = -1
            for i in range(out_ptr[n], out_ptr[n + 1]):
                if llive[out_idx[i]]:
                    drop_l = out_idx[i]
            tot = 0.0
            for k in range(K):
                x = 0.0
                pot = 0.0
                for i in range(in_ptr[n], in_ptr[n + 1]):
                    l = in_idx[i]
                    if llive[l]:
                        x += F[l, k]
                        pot += O[l, k]
                lim = RL[drop_l, k] if drop_l >= 0 else 0.0
                if x > lim:
                    s = lim / x
                    for i in range(in_ptr[n], in_ptr[n + 1]):
                        F[in_idx[i], k] *= s
                    x = lim
                ak[k] = x
                afree[k] = pot
                tot += x
            if tot > ncap[n]:
                s = ncap[n] / tot
                for k in range(K):
                    ak[k] *= s
                    for i in range(in_ptr[n], in_ptr[n + 1]):
                        F[in_idx[i], k] *= s
            for k in range(K):
                TH[n, k] = ak[k]
                if drop_l >= 0:
                    F[drop_l, k] = ak[k]
                    O[drop_l, k] = min(ncap[n], afree[k])
            continue
        if t == NT_MACH:
            r = nrec[n]
            c = ncap[n]
            for j in range(r_ning[r]):
                q = g2l[r_ing[r, j]]
                x = 0.0
                for i in range(in_ptr[n], in_ptr[n + 1]):
                    l = in_idx[i]
                    if llive[l]:
                        x += F[l, q]
                c = min(c, x / r_ingamt[r, j])
            for j in range(r_nres[r]):
                q = g2l[r_res[r, j]]
                if q < 0:
                    continue
                room = 0.0
                for i in range(out_ptr[n], out_ptr[n + 1]):
                    o = out_idx[i]
                    if llive[o] and LMb[o, q]:
                        room += RL[o, q]
                c = min(c, room / r_resamt[r, j])
            c = max(c, 0.0)
            MC[n] = c
            for k in range(K):
                TH[n, k] = 0.0
            for j in range(r_ning[r]):
                q = g2l[r_ing[r, j]]
                need = c * r_ingamt[r, j]
                m = 0
                for i in range(in_ptr[n], in_ptr[n + 1]):
                    l = in_idx[i]
                    if llive[l] and LMb[l, q]:
                        scratch[m] = F[l, q]
                        m += 1
                lam = waterfill(scratch, np.int64(m), need)
                for i in range(in_ptr[n], in_ptr[n + 1]):
                    l = in_idx[i]
                    if llive[l] and LMb[l, q]:
                        F[l, q] = min(F[l, q], lam)
                TH[n, q] += need
            for j in range(r_nres[r]):
                q = g2l[r_res[r, j]]
                if q < 0:
                    continue
                prod = c * r_resamt[r, j]
                m = 0
                for i in range(out_ptr[n], out_ptr[n + 1]):
                    o = out_idx[i]
                    if llive[o] and LMb[o, q]:
                        scratch[m] = RL[o, q]
                        m += 1
                lam = waterfill(scratch, np.int64(m), prod)
                for i in range(out_ptr[n], out_ptr[n + 1]):
                    o = out_idx[i]
                    if llive[o] and LMb[o, q]:
                        F[o, q] = min(RL[o, q], lam)
                        O[o, q] = prod
                TH[n, q] += prod
            continue
        if t == NT_CHEST:
            for k in range(K):
                x = 0.0
                m = 0
                for i in range(in_ptr[n], in_ptr[n + 1]):
                    l = in_idx[i]
                    if llive[l] and LMb[l, k]:
                        x += F[l, k]
                        scratch[m] = F[l, k]
                        m += 1
                room = 0.0
                m2 = 0
                for i in range(out_ptr[n], out_ptr[n + 1]):
                    o = out_idx[i]
                    if llive[o] and LMb[o, k]:
                        room += RL[o, k]
                        scratch2[m2] = RL[o, k]
                        m2 += 1
                tk = min(x, room)
                pot = 0.0
                for i in range(in_ptr[n], in_ptr[n + 1]):
                    l = in_idx[i]
                    if llive[l] and LMb[l, k]:
                        pot += O[l, k]
                if x > tk:
                    lam = waterfill(scratch, np.int64(m), tk)
                    for i in range(in_ptr[n], in_ptr[n + 1]):
                        l = in_idx[i]
                        if llive[l] and LMb[l, k]:
                            F[l, k] = min(F[l, k], lam)
                lam = waterfill(scratch2, np.int64(m2), tk)
                for i in range(out_ptr[n], out_ptr[n + 1]):
                    o = out_idx[i]
                    if llive[o] and LMb[o, k]:
                        F[o, k] = min(RL[o, k], lam)
                        O[o, k] = max(F[o, k], pot)
                TH[n, k] = tk
            continue
        # ---- lanes and hubs
        if t == NT_LANE and nin[n] == 1:
            # fast path: one input, no inserter picking here, one item flowing
            lin = -1
            for i in range(in_ptr[n], in_ptr[n + 1]):
                if llive[in_idx[i]]:
                    lin = in_idx[i]
            succ = -1
            simple = True
            for i in range(out_ptr[n], out_ptr[n + 1]):
                o = out_idx[i]
                if llive[o]:
                    if lkind[o] == LK_TAKE:
                        simple = False
                    else:
                        succ = o
            kk = -1
            for k in range(K):
                if F[lin, k] > 0.0 or O[lin, k] > 0.0:
                    if kk >= 0:
                        simple = False
                    kk = k
            if simple:
                for k in range(K):
                    TH[n, k] = 0.0
                    if succ >= 0:
                        F[succ, k] = 0.0
                        O[succ, k] = 0.0
                if kk < 0:
                    continue
                room = RL[succ, kk] if succ >= 0 and LMb[succ, kk] else 0.0
                tt = min(ncap[n], F[lin, kk], room)
                F[lin, kk] = tt
                TH[n, kk] = tt
                if succ >= 0 and LMb[succ, kk]:
                    F[succ, kk] = tt
                    O[succ, kk] = max(tt, min(ncap[n], O[lin, kk]))
                continue
        tin = 0.0
        nitems = 0
        for k in range(K):
            inb[k] = False
        for i in range(in_ptr[n], in_ptr[n + 1]):
            l = in_idx[i]
            if llive[l]:
                for k in range(K):
                    if F[l, k] > 0.0:
                        tin += F[l, k]
                        if not inb[k]:
                            inb[k] = True
                            nitems += 1
        T0 = min(ncap[n], tin)
        # outlets: takers (lanes only) then the successor(s)
        succ = -1   # a lane has at most one onward link; a hub has two (handled apart)
        for i in range(out_ptr[n], out_ptr[n + 1]):
            o = out_idx[i]
            if llive[o] and lkind[o] != LK_TAKE:
                succ = o
        # potential per item: what could arrive if everything downstream took all (bottlenecks,
        # machines' supply estimates)
        for k in range(K):
            pot = 0.0
            for i in range(in_ptr[n], in_ptr[n + 1]):
                l = in_idx[i]
                if llive[l]:
                    pot += O[l, k]
            afree[k] = min(ncap[n], pot)
        if t == NT_HUB:
            room = 0.0
            m = 0
            for i in range(out_ptr[n], out_ptr[n + 1]):
                o = out_idx[i]
                if llive[o]:
                    ro = INF
                    for k in range(K):
                        if inb[k]:
                            ro = min(ro, RL[o, k])
                    if ro == INF:
                        ro = 0.0
                    scratch2[m] = ro
                    m += 1
                    room += ro
            tt = min(T0, room)
        else:
            # feasibility of passing a total tt: items the takers do not take must fit the
            # successor (a sink takes only its item); the largest feasible tt (bisection,
            # needed only when a lane carries several items)
            tt = T0
            if nitems <= 1:
                for k in range(K):
                    if inb[k]:
                        room = 0.0
                        for i in range(out_ptr[n], out_ptr[n + 1]):
                            o = out_idx[i]
                            if llive[o] and LMb[o, k]:
                                room += RL[o, k]
                        tt = min(T0, room)
            elif not lane_ok(F, K, in_ptr, in_idx, out_ptr, out_idx, lcls, llive, lkind, LMb, RL, n,
                              np.int64(succ), T0, fac, scratch):
                lo = 0.0
                hi = T0
                for _b in range(80):
                    mid = 0.5 * (lo + hi)
                    if lane_ok(F, K, in_ptr, in_idx, out_ptr, out_idx, lcls, llive, lkind, LMb, RL, n,
                                np.int64(succ), mid, fac, scratch):
                        lo = mid
                    else:
                        hi = mid
                    if hi - lo <= 1e-15 * max(1.0, hi):
                        break
                tt = lo
        # admit tt
        admit(F, K, in_ptr, in_idx, lcls, llive, n, tt, fac, scratch)
        for k in range(K):
            ak[k] = 0.0
        for i in range(in_ptr[n], in_ptr[n + 1]):
            l = in_idx[i]
            if llive[l]:
                f = fac[l]
                for k in range(K):
                    F[l, k] *= f
                    ak[k] += F[l, k]
        for k in range(K):
            TH[n, k] = ak[k]
        if t == NT_HUB:
            lam = waterfill(scratch2, np.int64(m), tt)
            for i in range(out_ptr[n], out_ptr[n + 1]):
                o = out_idx[i]
                if llive[o]:
                    ro = INF
                    for k in range(K):
                        if inb[k]:
                            ro = min(ro, RL[o, k])
                    if ro == INF:
                        ro = 0.0
                    share = min(ro, lam)
                    for k in range(K):
                        F[o, k] = share * ak[k] / tt if tt > 0 else 0.0
                        O[o, k] = max(F[o, k], afree[k])
            continue
        # lane: takers first (fair among them, per item), the rest to the successor
        for k in range(K):
            rem[k] = ak[k]
        for k in range(K):
            if ak[k] <= 0.0 and afree[k] <= 0.0:
                for i in range(out_ptr[n], out_ptr[n + 1]):
                    o = out_idx[i]
                    if llive[o]:
                        F[o, k] = 0.0
                        O[o, k] = 0.0
                continue
            m = 0
            troom = 0.0
            for i in range(out_ptr[n], out_ptr[n + 1]):
                o = out_idx[i]
                if llive[o] and lkind[o] == LK_TAKE:
                    v = RL[o, k] if LMb[o, k] else 0.0
                    scratch[m] = v
                    troom += v
                    m += 1
            take = min(ak[k], troom)
            lam = waterfill(scratch, np.int64(m), take)
            got = 0.0
            for i in range(out_ptr[n], out_ptr[n + 1]):
                o = out_idx[i]
                if llive[o] and lkind[o] == LK_TAKE:
                    v = RL[o, k] if LMb[o, k] else 0.0
                    F[o, k] = min(v, lam)
                    got += F[o, k]
            rem[k] = max(0.0, ak[k] - got)
            for i in range(out_ptr[n], out_ptr[n + 1]):
                o = out_idx[i]
                if llive[o] and lkind[o] == LK_TAKE:
                    O[o, k] = max(F[o, k], afree[k] - (got - F[o, k]))
            if succ >= 0:
                F[succ, k] = rem[k] if LMb[succ, k] else 0.0
                O[succ, k] = max(F[succ, k], afree[k] - got)
