"""Grid -> lane-level flow graph (compiled with numba; see docs/sim.md for the model).

Nodes are numbered compactly, cell by cell in row-major order from ``base[cell]``:

* belt / underground cell: ``base + s``, lane ``s`` (0 left, 1 right of travel);
* splitter cell: ``base + s`` its *input* lane s, ``base + 2 + s`` its *output* lane s, and on the
  anchor cell ``base + 4 + s`` the hub of lane s (both cells' lanes s merge and split there);
* inserter, machine, chest, source, sink (anchor cell): ``base``.

``ncell[n]`` is the cell of node n (the anchor for hubs and entities), ``nrole[n]`` its role
(ROLE_LANE, ROLE_SOUT, ROLE_HUB, ROLE_ENT).

Links carry items from ``src`` to ``dst``; ``cls`` is the admission priority at ``dst`` (0 from
behind / straight / curve / underground / source push, 1 side-load, 2 inserter drop; equal classes
share fairly).
"""

from __future__ import annotations

import os

import numpy as np

if os.environ.get("FACTORION_NOJIT"):
    def njit(*a, **k):
        if a and callable(a[0]):
            return a[0]
        return lambda f: f
else:
    import hashlib

    import numba
    from numba.core import caching as _caching

    _HERE = os.path.dirname(os.path.abspath(__file__))

    def _package_stamp() -> str:
        """A hash of every source file of this package (memoised on their stat)."""
        names = sorted(n for n in os.listdir(_HERE) if n.endswith(".py"))
        key = tuple((n, os.stat(os.path.join(_HERE, n)).st_mtime_ns) for n in names)
        if _STAMP.get("key") != key:
            h = hashlib.sha256()
            for n in names:
                with open(os.path.join(_HERE, n), "rb") as f:
                    h.update(n.encode() + b"\0" + f.read() + b"\0")
            _STAMP.update(key=key, stamp=h.hexdigest())
        return _STAMP["stamp"]

    _STAMP: dict = {}

    class PackageCacheLocator(_caching.InTreeCacheLocator):
        """numba's in-tree cache, stamped with the whole package's sources. numba stamps a cached
        function with its own file only, so a function that calls a compiled function of another
        file (``_batch`` -> ``solve`` -> ``build``) would keep that callee's stale code after an
        edit there; with this stamp any edit in the package recompiles everything in it."""

        def get_source_stamp(self):
            return _package_stamp()

        @classmethod
        def from_function(cls, py_func, py_file):
            if numba.config.CACHE_DIR or os.path.dirname(os.path.abspath(py_file)) != _HERE:
                return None  # numba's own locators (NUMBA_CACHE_DIR, other packages)
            return super().from_function(py_func, py_file)

    try:
        if PackageCacheLocator not in _caching.CacheImpl._locator_classes:
            _caching.CacheImpl._locator_classes.insert(0, PackageCacheLocator)
    except AttributeError:  # another numba: its default locators (stamp: the function's own file)
        pass

    def njit(*a, **k):
        """numba.njit with this package's defaults: cached (stamped with the package's sources,
        see :class:`PackageCacheLocator`), and numpy's error model (no zero-division checks; the
        solver never divides by a zero it would care about)."""
        k.setdefault("cache", True)
        k.setdefault("error_model", "numpy")
        return numba.njit(*a, **k)

from factorion.sim.tables import (
    C_ASSEMBLER,
    C_BELT,
    C_CHEST,
    C_FURNACE,
    C_INSERTER,
    C_SINK,
    C_SOURCE,
    C_SPLITTER,
    C_UG,
)

# node types
NT_NONE, NT_LANE, NT_HUB, NT_INS, NT_MACH, NT_CHEST, NT_SRC, NT_SINK = range(8)
# link kinds
LK_LANE, LK_SIDE, LK_PUSH, LK_TAKE, LK_DROP, LK_DELIVER, LK_HUBIN, LK_HUBOUT = range(8)
# node roles
ROLE_LANE, ROLE_SOUT, ROLE_HUB, ROLE_ENT = range(4)


@njit(cache=True)
def _inb(y, x, H, W):
    return 0 <= y < H and 0 <= x < W


@njit(cache=True)
def _outputs_into(cls, dr, io, gy, gx, fy, fx, dirs, H, W):
    """Whether cell g is a belt-like whose output goes forward into cell f."""
    if not _inb(gy, gx, H, W):
        return False
    c = cls[gy, gx]
    if c == C_BELT or c == C_SPLITTER or (c == C_UG and io[gy, gx] == 2):
        d = dr[gy, gx]
        return gy + dirs[d, 0] == fy and gx + dirs[d, 1] == fx
    return False


@njit(cache=True)
def _is_curve(cls, dr, io, fy, fx, dirs, H, W):
    """A belt is a curve when it is fed from exactly one side and not from behind."""
    d2 = dr[fy, fx]
    by, bx = fy - dirs[d2, 0], fx - dirs[d2, 1]
    if _outputs_into(cls, dr, io, by, bx, fy, fx, dirs, H, W):
        return False
    if _inb(by, bx, H, W) and cls[by, bx] == C_SOURCE:
        return False
    n = 0
    for side in (3, 1):
        sd = (d2 + side) % 4
        if _outputs_into(cls, dr, io, fy + dirs[sd, 0], fx + dirs[sd, 1], fy, fx, dirs, H, W):
            n += 1
    return n == 1


@njit(cache=True)
def build(grid, rate_grid, kcls, lane_cap, reach, ins_rate, pick, drop, fw, speed, can_make, dirs):
    """Build the flow graph of one world.

    Returns (ntype, ncap, nitem, nrec, nkind, ncell, nrole, lsrc, ldst, lkind, lcls).
    """
    # Kept as one kernel on purpose (measured): split into named steps (_number, _nodes and one link
    # writer per entity class, bit-identical links) it cost ~9% of ``throughput_batch`` as plain
    # calls and still ~10-15% inlined (``inline="always"``) on the benchmark's 32x32 windows
    # (72k -> 62k factories/s of CPU time), where building the graph is most of the work.
    H, W = grid.shape[1], grid.shape[2]
    HW = H * W
    kind = grid[0]
    dr = grid[1]
    itm = grid[2]
    rec = grid[3]
    io = grid[4]
    part = grid[5]
    cls = np.zeros((H, W), np.int64)
    anc = np.full(HW, -1, np.int64)
    base = np.full(HW, -1, np.int64)
    N = 0
    for y in range(H):
        for x in range(W):
            p = part[y, x]
            if p > 0:
                k = kind[y, x]
                c = kcls[k]
                cls[y, x] = c
                w = fw[k, dr[y, x] % 4]
                q = p - 1
                cell = y * W + x
                anc[cell] = (y - q // w) * W + (x - q % w)
                if c == C_BELT or c == C_UG:
                    base[cell] = N
                    N += 2
                elif c == C_SPLITTER:
                    base[cell] = N
                    N += 6 if p == 1 else 4
                elif p == 1 and c != 0:
                    base[cell] = N
                    N += 1

    ntype = np.zeros(N, np.int8)
    ncap = np.zeros(N)
    nitem = np.zeros(N, np.int64)
    nrec = np.zeros(N, np.int64)
    nkind = np.zeros(N, np.int64)
    ncell = np.zeros(N, np.int64)
    nrole = np.zeros(N, np.int8)
    LMAX = 10 * N + 16
    lsrc = np.empty(LMAX, np.int64)
    ldst = np.empty(LMAX, np.int64)
    lkind = np.empty(LMAX, np.int64)
    lcls = np.empty(LMAX, np.int64)
    nl = 0

    # ---- nodes
    for y in range(H):
        for x in range(W):
            cell = y * W + x
            b = base[cell]
            if b < 0:
                continue
            c = cls[y, x]
            k = kind[y, x]
            if c == C_BELT or c == C_UG or c == C_SPLITTER:
                nn = 2 if c != C_SPLITTER else (6 if part[y, x] == 1 else 4)
                for j in range(nn):
                    ntype[b + j] = NT_LANE if j < 4 else NT_HUB
                    ncap[b + j] = lane_cap[k] if j < 4 else 2 * lane_cap[k]
                    nkind[b + j] = k
                    ncell[b + j] = cell
                    nrole[b + j] = ROLE_LANE if j < 2 else (ROLE_SOUT if j < 4 else ROLE_HUB)
                continue
            n = b
            nkind[n] = k
            ncell[n] = cell
            nrole[n] = ROLE_ENT
            if c == C_INSERTER:
                ntype[n] = NT_INS
                ncap[n] = ins_rate[k]
            elif c == C_ASSEMBLER:
                ntype[n] = NT_MACH
                r = rec[y, x]
                if r > 0 and r < can_make.shape[1] and can_make[k, r]:
                    nrec[n] = r
            elif c == C_FURNACE:
                ntype[n] = NT_MACH
            elif c == C_CHEST:
                ntype[n] = NT_CHEST
                ncap[n] = np.inf
            elif c == C_SOURCE:
                ntype[n] = NT_SRC
                nitem[n] = itm[y, x]
                rg = rate_grid[y, x]
                ncap[n] = rg if (rg >= 0 and rg < np.inf) else np.inf
            elif c == C_SINK:
                ntype[n] = NT_SINK
                nitem[n] = itm[y, x]
                ncap[n] = np.inf

    # ---- links
    for y in range(H):
        for x in range(W):
            c = cls[y, x]
            cell = y * W + x
            d = dr[y, x] % 4
            if c == C_BELT or c == C_SPLITTER or (c == C_UG and io[y, x] == 2):
                bo = base[cell] if c != C_SPLITTER else base[cell] + 2
                fy, fx = y + dirs[d, 0], x + dirs[d, 1]
                if not _inb(fy, fx, H, W):
                    pass
                else:
                    fc = cls[fy, fx]
                    fd = dr[fy, fx] % 4
                    f = fy * W + fx
                    if fc == C_BELT:
                        if fd == d or (fd != (d + 2) % 4 and _is_curve(cls, dr, io, fy, fx, dirs, H, W)):
                            for s in range(2):
                                lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = bo + s, base[f] + s, LK_LANE, 0
                                nl += 1
                        elif fd != (d + 2) % 4:  # side-load: both lanes onto the near lane
                            near = 0 if d == (fd + 1) % 4 else 1
                            for s in range(2):
                                lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = bo + s, base[f] + near, LK_SIDE, 1
                                nl += 1
                    elif fc == C_UG:
                        if io[fy, fx] == 1 and fd == d:
                            for s in range(2):
                                lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = bo + s, base[f] + s, LK_LANE, 0
                                nl += 1
                        elif fd != d and fd != (d + 2) % 4:
                            # side-loading an underground: only its open half takes items, so
                            # only the feeder's lane on that half passes (input: back half,
                            # output: front half), onto the near lane
                            near = 0 if d == (fd + 1) % 4 else 1
                            open_side = (fd + 2) % 4 if io[fy, fx] == 1 else fd
                            lane = 0 if (d + 3) % 4 == open_side else 1
                            lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = bo + lane, base[f] + near, LK_SIDE, 1
                            nl += 1
                    elif fc == C_SPLITTER:
                        if fd == d:
                            for s in range(2):
                                lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = bo + s, base[f] + s, LK_LANE, 0
                                nl += 1
                    elif fc == C_SINK:
                        for s in range(2):
                            lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = bo + s, base[f], LK_DELIVER, 0
                            nl += 1
            if c == C_UG and io[y, x] == 1:  # pair with the nearest same-tier output in line
                k = kind[y, x]
                for i in range(1, reach[k] + 1):
                    gy, gx = y + i * dirs[d, 0], x + i * dirs[d, 1]
                    if not _inb(gy, gx, H, W):
                        break
                    if kind[gy, gx] == k and part[gy, gx] > 0 and dr[gy, gx] % 4 == d:
                        if io[gy, gx] == 2:
                            g = gy * W + gx
                            for s in range(2):
                                lsrc[nl], ldst[nl] = base[cell] + s, base[g] + s
                                lkind[nl], lcls[nl] = LK_LANE, 0
                                nl += 1
                        break  # a same-tier input in between takes the pairing
            if c == C_SPLITTER:
                a = anc[cell]
                for s in range(2):
                    lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = base[cell] + s, base[a] + 4 + s, LK_HUBIN, 0
                    nl += 1
                    lsrc[nl], ldst[nl] = base[a] + 4 + s, base[cell] + 2 + s
                    lkind[nl], lcls[nl] = LK_HUBOUT, 0
                    nl += 1
            if c == C_SOURCE:
                for dd in range(4):
                    fy, fx = y + dirs[dd, 0], x + dirs[dd, 1]
                    if not _inb(fy, fx, H, W):
                        continue
                    fc = cls[fy, fx]
                    if dr[fy, fx] % 4 == dd and (fc == C_BELT or fc == C_SPLITTER
                                                 or (fc == C_UG and io[fy, fx] == 1)):
                        f = fy * W + fx
                        for s in range(2):
                            lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = base[cell], base[f] + s, LK_PUSH, 0
                            nl += 1
            if c == C_INSERTER:
                k = kind[y, x]
                me = base[cell]
                qy, qx = y + pick[k, d, 0], x + pick[k, d, 1]
                ry, rx = y + drop[k, d, 0], x + drop[k, d, 1]
                if _inb(qy, qx, H, W) and _inb(ry, rx, H, W):
                    qc = cls[qy, qx]
                    rc = cls[ry, rx]
                    q = qy * W + qx
                    r = ry * W + rx
                    drop_ok = rc == C_BELT or rc == C_UG or rc == C_SPLITTER or rc == C_CHEST \
                        or rc == C_ASSEMBLER or rc == C_FURNACE or rc == C_SINK
                    if drop_ok:
                        if qc == C_BELT or qc == C_UG:
                            for s in range(2):
                                lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = base[q] + s, me, LK_TAKE, 0
                                nl += 1
                        elif qc == C_SPLITTER:
                            for s in range(2):
                                lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = base[q] + 2 + s, me, LK_TAKE, 0
                                nl += 1
                        elif qc == C_CHEST or qc == C_ASSEMBLER or qc == C_FURNACE:
                            lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = base[anc[q]], me, LK_TAKE, 0
                            nl += 1
                        elif qc == C_SOURCE:
                            lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = base[q], me, LK_TAKE, 0
                            nl += 1
                    if rc == C_BELT or rc == C_UG or rc == C_SPLITTER:
                        t = dr[ry, rx] % 4
                        sy, sx = y - ry, x - rx  # from the drop cell towards the inserter
                        sd = 0 if sy < 0 else (2 if sy > 0 else (1 if sx > 0 else 3))
                        far = 1 if sd == (t + 3) % 4 else (0 if sd == (t + 1) % 4 else 1)
                        lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = me, base[r] + far, LK_DROP, 2
                        nl += 1
                    elif rc == C_CHEST or rc == C_ASSEMBLER or rc == C_FURNACE:
                        lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = me, base[anc[r]], LK_DROP, 0
                        nl += 1
                    elif rc == C_SINK:
                        lsrc[nl], ldst[nl], lkind[nl], lcls[nl] = me, base[r], LK_DROP, 0
                        nl += 1
    return ntype, ncap, nitem, nrec, nkind, ncell, nrole, lsrc[:nl], ldst[:nl], lkind[:nl], lcls[:nl]


@njit(cache=True)
def csr(n, keys, order_key):
    """Indices of links grouped by ``keys`` (node ids), stable-sorted by ``order_key`` inside."""
    cnt = np.zeros(n + 1, np.int64)
    for i in range(keys.shape[0]):
        cnt[keys[i] + 1] += 1
    for i in range(n):
        cnt[i + 1] += cnt[i]
    idx = np.empty(keys.shape[0], np.int64)
    pos = cnt[:-1].copy()
    # insertion by class: at most 3 classes, so do a pass per class value present
    maxk = 0
    for i in range(keys.shape[0]):
        if order_key[i] > maxk:
            maxk = order_key[i]
    for kv in range(maxk + 1):
        for i in range(keys.shape[0]):
            if order_key[i] == kv:
                idx[pos[keys[i]]] = i
                pos[keys[i]] += 1
    return cnt, idx
