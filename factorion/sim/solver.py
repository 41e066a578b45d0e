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
"""

from __future__ import annotations

import numpy as np

from .graph import (
    LK_DELIVER,
    LK_DROP,
    LK_TAKE,
    NT_CHEST,
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
from .tables import C_FURNACE

INF = np.inf
MAXK = 63  # items tracked per world (bitmask width)


@njit
def _bit(k):
    return np.uint64(1) << np.uint64(k)


@njit
def _popcount(m):
    n = 0
    while m:
        m &= m - np.uint64(1)
        n += 1
    return n


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
def _waterfill(v, m, total):
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
def _fair_room(avail, v, m):
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
def _ftot(F, l, K):
    s = 0.0
    for k in range(K):
        s += F[l, k]
    return s


@njit
def _admit(F, K, in_ptr, in_idx, lcls, llive, n, t, fac, scratch):
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
                v = _ftot(F, l, K)
                scratch[m] = v
                m += 1
                s += v
            j += 1
        if s <= remaining:
            for q in range(i, j):
                fac[in_idx[q]] = 1.0
            remaining -= s
        else:
            lam = _waterfill(scratch, np.int64(m), remaining) if remaining > 0 else 0.0
            for q in range(i, j):
                l = in_idx[q]
                if not llive[l]:
                    continue
                v = _ftot(F, l, K)
                fac[l] = min(v, lam) / v if v > 0 else 1.0
            remaining = 0.0
        i = j


@njit
def _lane_ok(F, K, in_ptr, in_idx, out_ptr, out_idx, lcls, llive, lkind, LMb, RL, n, succ, trial, fac,
             scratch):
    """Can lane n pass ``trial`` items/s? What its inserters do not take must fit the successor,
    which must take every such item (a sink takes only its own)."""
    _admit(F, K, in_ptr, in_idx, lcls, llive, n, trial, fac, scratch)
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


@njit
def _universe(ntype, nitem, nrec, nkind, kcls, can_make, r_ning, r_ing, r_nres, r_res, smelt):
    """Items that can exist: source items and, transitively, what machines can make of them.
    Returns (g2l global -> local bit or -1, loc local -> global, K, has_sink)."""
    N = ntype.shape[0]
    NI = smelt.shape[0]
    g2l = np.full(NI, -1, np.int64)
    loc = np.zeros(MAXK, np.int64)
    K = 0
    has_sink = False
    for n in range(N):
        if ntype[n] == NT_SRC and 0 < nitem[n] < NI and g2l[nitem[n]] < 0 and K < MAXK:
            g2l[nitem[n]] = K
            loc[K] = nitem[n]
            K += 1
        elif ntype[n] == NT_SINK:
            has_sink = True
    changed = True
    while changed:
        changed = False
        for n in range(N):
            if ntype[n] != NT_MACH:
                continue
            r = nrec[n]
            if r > 0:
                ok = True
                for j in range(r_ning[r]):
                    if g2l[r_ing[r, j]] < 0:
                        ok = False
                if ok:
                    for j in range(r_nres[r]):
                        g = r_res[r, j]
                        if g2l[g] < 0 and K < MAXK:
                            g2l[g] = K
                            loc[K] = g
                            K += 1
                            changed = True
            elif kcls[nkind[n]] == C_FURNACE:
                for q in range(K):
                    rr = smelt[loc[q]]
                    if rr > 0 and can_make[nkind[n], rr]:
                        for j in range(r_nres[rr]):
                            g = r_res[rr, j]
                            if g2l[g] < 0 and K < MAXK:
                                g2l[g] = K
                                loc[K] = g
                                K += 1
                                changed = True
    return g2l, loc, K, has_sink


@njit
def _masks(ntype, nrec, nkind, nitem, kcls, can_make, r_ning, r_ing, r_nres, r_res, smelt, g2l, loc, K,
           lsrc, ldst, lkind):
    """Per node: recipe ingredient / result masks, what a furnace could smelt, and for inserters
    what their drop target takes (acc)."""
    N = ntype.shape[0]
    L = lsrc.shape[0]
    NI = smelt.shape[0]
    zero64 = np.uint64(0)
    ALL = zero64
    for k in range(K):
        ALL |= _bit(k)
    ingmask = np.zeros(N, np.uint64)
    resmask = np.zeros(N, np.uint64)
    smeltable = np.zeros(N, np.uint64)
    acc = np.zeros(N, np.uint64)      # inserter: items its drop target takes
    for n in range(N):
        if ntype[n] == NT_MACH:
            r = nrec[n]
            if r > 0:
                mk = zero64
                ok = True
                for j in range(r_ning[r]):
                    q = g2l[r_ing[r, j]]
                    if q < 0:
                        ok = False
                    else:
                        mk |= _bit(q)
                if ok:
                    ingmask[n] = mk
                    for j in range(r_nres[r]):
                        q = g2l[r_res[r, j]]
                        if q >= 0:
                            resmask[n] |= _bit(q)
                else:
                    nrec[n] = 0
            elif kcls[nkind[n]] == C_FURNACE:
                for q in range(K):
                    rr = smelt[loc[q]]
                    if rr > 0 and can_make[nkind[n], rr]:
                        smeltable[n] |= _bit(q)
    for l in range(L):
        if lkind[l] == LK_DROP:
            u, v = lsrc[l], ldst[l]
            t = ntype[v]
            if t == NT_SINK:
                acc[u] = _bit(g2l[nitem[v]]) if 0 < nitem[v] < NI and g2l[nitem[v]] >= 0 else zero64
            elif t == NT_MACH:
                acc[u] = ingmask[v] if nrec[v] > 0 else smeltable[v]
            else:
                acc[u] = ALL

    return ingmask, resmask, smeltable, acc


@njit
def _presence(ntype, nitem, nrec, g2l, loc, K, ingmask, resmask, smeltable, acc, out_ptr, out_idx, ldst,
              lkind, smelt, r_nres, r_res):
    """Every item that can reach each node (P; machines: their products) and what reaches each
    machine's input (INP), ignoring rates."""
    N = ntype.shape[0]
    L = ldst.shape[0]
    NI = smelt.shape[0]
    zero64 = np.uint64(0)
    P = np.zeros(N, np.uint64)
    INP = np.zeros(N, np.uint64)
    stack = np.empty(N + L + 1, np.int64)
    sp = 0
    for n in range(N):
        if ntype[n] == NT_SRC and 0 < nitem[n] < NI and g2l[nitem[n]] >= 0:
            P[n] = _bit(g2l[nitem[n]])
            stack[sp] = n
            sp += 1
        elif ntype[n] == NT_MACH and nrec[n] > 0 and ingmask[n] == zero64:
            P[n] = resmask[n]
            stack[sp] = n
            sp += 1
    inq = np.zeros(N, np.bool_)
    while sp > 0:
        sp -= 1
        u = stack[sp]
        inq[u] = False
        for i in range(out_ptr[u], out_ptr[u + 1]):
            l = out_idx[i]
            v = ldst[l]
            lk = lkind[l]
            if lk == LK_DELIVER:
                continue
            if lk == LK_TAKE:
                add = P[u] & acc[v]
            elif lk == LK_DROP:
                if ntype[v] == NT_SINK:
                    continue
                if ntype[v] == NT_MACH:
                    INP[v] |= P[u]
                    add = zero64
                    if nrec[v] > 0:
                        if (INP[v] & ingmask[v]) == ingmask[v]:
                            add = resmask[v]
                    else:
                        sm = INP[v] & smeltable[v]
                        for q in range(K):
                            if sm & _bit(q):
                                rr = smelt[loc[q]]
                                for j in range(r_nres[rr]):
                                    g = g2l[r_res[rr, j]]
                                    if g >= 0:
                                        add |= _bit(g)
                else:
                    add = P[u]
            else:
                add = P[u]
            if (P[v] | add) != P[v]:
                P[v] |= add
                if not inq[v]:
                    inq[v] = True
                    stack[sp] = v
                    sp += 1

    return P, INP


@njit
def _jams(ntype, nitem, nrec, g2l, K, P, INP, ingmask, smeltable, acc, in_ptr, in_idx, lsrc, lkind):
    """Nodes holding an item that can never leave jam (dead); jams only grow, so iterate."""
    N = ntype.shape[0]
    NI = g2l.shape[0]
    zero64 = np.uint64(0)
    dead = np.zeros(N, np.bool_)
    stack = np.empty(N + lsrc.shape[0] + 1, np.int64)
    # ------------------------------------------------------------ escape and jams (backward)
    E = np.zeros(N, np.uint64)
    EOUT = np.zeros(N, np.uint64)   # machines: products that can be taken away
    for n in range(N):   # furnaces fed two smeltable items are treated as jammed (docs/sim.md)
        if ntype[n] == NT_MACH and nrec[n] == 0 and _popcount(INP[n] & smeltable[n]) > 1:
            dead[n] = True
    while True:
        for n in range(N):
            E[n] = zero64
            EOUT[n] = zero64
        sp = 0
        for n in range(N):
            if ntype[n] == NT_SINK and 0 < nitem[n] < NI and g2l[nitem[n]] >= 0:
                E[n] = _bit(g2l[nitem[n]])
                stack[sp] = n
                sp += 1
        # machines with nothing to take away still accept (they just never run): none here
        while sp > 0:
            sp -= 1
            v = stack[sp]
            for i in range(in_ptr[v], in_ptr[v + 1]):
                l = in_idx[i]
                u = lsrc[l]
                if dead[u]:
                    continue
                tu = ntype[u]
                lk = lkind[l]
                if tu == NT_SRC:
                    continue
                if tu == NT_MACH:   # v is an output inserter of machine u
                    if lk != LK_TAKE:
                        continue
                    EOUT[u] |= E[v]
                    newe = zero64
                    if P[u] != zero64 and (P[u] & ~EOUT[u]) == zero64:
                        if nrec[u] > 0:
                            newe = ingmask[u]
                        else:
                            newe = INP[u] & smeltable[u]
                    if newe != E[u]:
                        E[u] = newe
                        stack[sp] = u
                        sp += 1
                    continue
                add = E[v]
                if tu == NT_INS:
                    add &= acc[u]
                if (E[u] | add) != E[u]:
                    E[u] |= add
                    stack[sp] = u
                    sp += 1
        newdead = False
        for n in range(N):
            if dead[n]:
                continue
            t = ntype[n]
            if t == NT_LANE or t == NT_HUB or t == NT_CHEST or t == NT_INS:
                if (P[n] & ~E[n]) != zero64:
                    dead[n] = True
                    newdead = True
            elif t == NT_MACH:
                if P[n] != zero64 and (P[n] & ~EOUT[n]) != zero64:
                    dead[n] = True
                    newdead = True
        if not newdead:
            break
    for n in range(N):
        if dead[n]:
            E[n] = zero64

    return dead


@njit
def _machines(ntype, nrec, nkind, ncap, kcls, dead, INP, ingmask, resmask, smeltable, g2l, loc, K, smelt,
              r_nres, r_res, speed, r_energy):
    """Furnaces take the recipe of the one smeltable item they are fed; machines get their
    crafts/s (0 when an ingredient can never arrive)."""
    N = ntype.shape[0]
    zero64 = np.uint64(0)
    # furnaces: the recipe of the one smeltable item they are fed
    for n in range(N):
        if ntype[n] == NT_MACH and not dead[n]:
            if nrec[n] == 0 and kcls[nkind[n]] == C_FURNACE:
                sm = INP[n] & smeltable[n]
                if _popcount(sm) == 1:
                    for q in range(K):
                        if sm & _bit(q):
                            nrec[n] = smelt[loc[q]]
                            ingmask[n] = sm
                            resmask[n] = zero64
                            for j in range(r_nres[nrec[n]]):
                                g = g2l[r_res[nrec[n], j]]
                                if g >= 0:
                                    resmask[n] |= _bit(g)
            if nrec[n] > 0 and (INP[n] & ingmask[n]) == ingmask[n]:
                ncap[n] = speed[nkind[n]] / r_energy[nrec[n]]
            else:
                ncap[n] = 0.0



@njit
def _links(ntype, nitem, ncap, dead, P, acc, ingmask, g2l, lsrc, ldst, lkind):
    """Items each link can carry (LM) and whether it is live."""
    L = lsrc.shape[0]
    NI = g2l.shape[0]
    zero64 = np.uint64(0)
    LM = np.zeros(L, np.uint64)
    llive = np.zeros(L, np.bool_)
    for l in range(L):
        u, v = lsrc[l], ldst[l]
        if dead[u] or dead[v]:
            continue
        lk = lkind[l]
        if lk == LK_TAKE:
            mk = P[u] & acc[v]
        elif lk == LK_DELIVER:
            mk = P[u] & (_bit(g2l[nitem[v]]) if 0 < nitem[v] < NI and g2l[nitem[v]] >= 0 else zero64)
        elif lk == LK_DROP and ntype[v] == NT_MACH:
            mk = P[u] & ingmask[v]
        else:
            mk = P[u]
        if lk == LK_TAKE and ntype[u] == NT_MACH and ncap[u] <= 0.0:
            mk = zero64
        if lk == LK_DROP and ntype[v] == NT_MACH and ncap[v] <= 0.0:
            mk = zero64
        LM[l] = mk
        llive[l] = mk != zero64

    return LM, llive


@njit
def _order(ntype, P, out_ptr, out_idx, ldst, llive):
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
def _backward(post, npost, ntype, ncap, nrec, K, Pb, LMb, llive, nin, in_ptr, in_idx, out_ptr, out_idx,
              lcls, F, O, RL, TH, Rk, scratch, g2l, r_ning, r_ing, r_ingamt, r_nres, r_res, r_resamt):
    """One backward sweep: the room of every live in-link (how much its target takes from it)."""
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
                    RL[l, qx] = _fair_room(demand, scratch, np.int64(m))
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
                            scratch[m] = _ftot(F, l2, K)
                            m += 1
                    for k in range(K):
                        if LMb[l, k]:
                            RL[l, k] = _fair_room(Rk[k] - higher, scratch, np.int64(m))
                    gsum += _ftot(F, l, K)
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
                        scratch[m] = _ftot(F, l2, K)
                        m += 1
                for k in range(K):
                    if LMb[l, k]:
                        RL[l, k] = _fair_room(Rk[k], scratch, np.int64(m))
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
                    RL[l, k] = _fair_room(Rk[k], scratch, np.int64(m))



@njit
def _forward(post, npost, ntype, ncap, nrec, nitem, K, LMb, llive, nin, in_ptr, in_idx, out_ptr, out_idx,
             lcls, lkind, F, O, RL, TH, MC, ak, afree, rem, inb, scratch, scratch2, fac, g2l, r_ning, r_ing,
             r_ingamt, r_nres, r_res, r_resamt):
    """One forward sweep: flows from sources on, each node passing what it receives up to its
    rooms and capacity."""
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
            lam = _waterfill(scratch, np.int64(m), ncap[n])
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
                lam = _waterfill(scratch, np.int64(m), need)
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
                lam = _waterfill(scratch, np.int64(m), prod)
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
                    lam = _waterfill(scratch, np.int64(m), tk)
                    for i in range(in_ptr[n], in_ptr[n + 1]):
                        l = in_idx[i]
                        if llive[l] and LMb[l, k]:
                            F[l, k] = min(F[l, k], lam)
                lam = _waterfill(scratch2, np.int64(m2), tk)
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
            elif not _lane_ok(F, K, in_ptr, in_idx, out_ptr, out_idx, lcls, llive, lkind, LMb, RL, n,
                              np.int64(succ), T0, fac, scratch):
                lo = 0.0
                hi = T0
                for _b in range(80):
                    mid = 0.5 * (lo + hi)
                    if _lane_ok(F, K, in_ptr, in_idx, out_ptr, out_idx, lcls, llive, lkind, LMb, RL, n,
                                np.int64(succ), mid, fac, scratch):
                        lo = mid
                    else:
                        hi = mid
                    if hi - lo <= 1e-15 * max(1.0, hi):
                        break
                tt = lo
        # admit tt
        _admit(F, K, in_ptr, in_idx, lcls, llive, n, tt, fac, scratch)
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
            lam = _waterfill(scratch2, np.int64(m), tt)
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
            lam = _waterfill(scratch, np.int64(m), take)
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
    ntype, ncap, nitem, nrec, nkind, ncell, nrole, lsrc, ldst, lkind, lcls = build(
        grid, rate_grid, kcls, lane_cap, reach, ins_rate, pick, drop, fw, speed, can_make, dirs)
    N = ntype.shape[0]
    L = lsrc.shape[0]
    g2l, loc, K, has_sink = _universe(ntype, nitem, nrec, nkind, kcls, can_make, r_ning, r_ing, r_nres,
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
    ingmask, resmask, smeltable, acc = _masks(ntype, nrec, nkind, nitem, kcls, can_make, r_ning, r_ing,
                                              r_nres, r_res, smelt, g2l, loc, K, lsrc, ldst, lkind)
    P, INP = _presence(ntype, nitem, nrec, g2l, loc, K, ingmask, resmask, smeltable, acc, out_ptr, out_idx,
                       ldst, lkind, smelt, r_nres, r_res)
    dead = _jams(ntype, nitem, nrec, g2l, K, P, INP, ingmask, smeltable, acc, in_ptr, in_idx, lsrc, lkind)
    _machines(ntype, nrec, nkind, ncap, kcls, dead, INP, ingmask, resmask, smeltable, g2l, loc, K, smelt,
              r_nres, r_res, speed, r_energy)
    LM, llive = _links(ntype, nitem, ncap, dead, P, acc, ingmask, g2l, lsrc, ldst, lkind)
    post, npost, state, cyclic = _order(ntype, P, out_ptr, out_idx, ldst, llive)
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
        if nin[n] > 1 or (t == NT_INS and _popcount(P[n]) > 1) or (t == NT_MACH and r_ning[nrec[n]] > 1):
            contended = True
    iters = 0
    for it in range(maxit):
        iters = it + 1
        _backward(post, npost, ntype, ncap, nrec, K, Pb, LMb, llive, nin, in_ptr, in_idx, out_ptr, out_idx,
                  lcls, F, O, RL, TH, Rk, scratch, g2l, r_ning, r_ing, r_ingamt, r_nres, r_res, r_resamt)
        _forward(post, npost, ntype, ncap, nrec, nitem, K, LMb, llive, nin, in_ptr, in_idx, out_ptr, out_idx,
                 lcls, lkind, F, O, RL, TH, MC, ak, afree, rem, inb, scratch, scratch2, fac, g2l, r_ning,
                 r_ing, r_ingamt, r_nres, r_res, r_resamt)
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
