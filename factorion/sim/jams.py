"""Which items can exist, reach and leave each node; what jams (compiled with numba).

Rule 1 of docs/sim.md, decided per item and ignoring rates, on item bitmasks (one bit per item
that can exist in the world, at most ``MAXK``):

1. *Universe*: source items and, transitively, what machines can make of them (:func:`_universe`,
   then per-node recipe / furnace / inserter masks, :func:`_masks`).
2. *Presence* (forward): every item that can reach a node (:func:`_presence`).
3. *Escape* (backward) and *jams*: a node holding an item that cannot leave jams and carries
   nothing; jams only grow, so repeat until none is added (:func:`_jams`).

Then what the rate sweeps need: each machine's recipe and crafts/s (:func:`_machines`) and the
items each link can carry, with the live links (:func:`link_matrix`).
"""

from __future__ import annotations

import numpy as np

from factorion.sim.graph import (
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
    njit,
)
from factorion.sim.tables import C_FURNACE

MAXK = 63  # items tracked per world (bitmask width)


@njit
def _bit(k):
    return np.uint64(1) << np.uint64(k)


@njit
def popcount(m):
    n = 0
    while m:
        m &= m - np.uint64(1)
        n += 1
    return n


@njit
def _admit_results(r, r_nres, r_res, g2l, loc, K):
    """Give recipe ``r``'s results a local bit if they have none (while bits are left).
    Returns (K, whether any was added)."""
    added = False
    for j in range(r_nres[r]):
        g = r_res[r, j]
        if g2l[g] < 0 and K < MAXK:
            g2l[g] = K
            loc[K] = g
            K += 1
            added = True
    return K, added


@njit
def item_universe(ntype, nitem, nrec, nkind, kcls, can_make, r_ning, r_ing, r_nres, r_res, smelt):
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
                    K, added = _admit_results(r, r_nres, r_res, g2l, loc, K)
                    changed |= added
            elif kcls[nkind[n]] == C_FURNACE:
                for q in range(K):
                    rr = smelt[loc[q]]
                    if rr > 0 and can_make[nkind[n], rr]:
                        K, added = _admit_results(rr, r_nres, r_res, g2l, loc, K)
                        changed |= added
    return g2l, loc, K, has_sink


@njit
def item_masks(ntype, nrec, nkind, nitem, kcls, can_make, r_ning, r_ing, r_nres, r_res, smelt, g2l, loc, K,
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
def item_presence(ntype, nitem, nrec, g2l, loc, K, ingmask, resmask, smeltable, acc, out_ptr, out_idx, ldst,
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
def jam_fixpoint(ntype, nitem, nrec, g2l, K, P, INP, ingmask, smeltable, acc, in_ptr, in_idx, lsrc, lkind):
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
        if ntype[n] == NT_MACH and nrec[n] == 0 and popcount(INP[n] & smeltable[n]) > 1:
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
def machine_links(ntype, nrec, nkind, ncap, kcls, dead, INP, ingmask, resmask, smeltable, g2l, loc, K, smelt,
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
                if popcount(sm) == 1:
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
def link_matrix(ntype, nitem, ncap, dead, P, acc, ingmask, g2l, lsrc, ldst, lkind):
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
