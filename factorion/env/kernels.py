"""Compiled per-step passes of the env (numba, cached; compiled on first use).

* :func:`mask_pass` -- the footprint fit maps, removable cells and per-op summaries of a batch of
  grids, on row bit masks (:func:`factorion.env.masks.mask_arrays`; numpy's
  :func:`~factorion.env.masks.fit_maps` is the reference and serves grids wider than 64);
* :func:`edit_pass` -- a vector-env step's actions in one pass: canonicalise each
  (:meth:`ActionLayout.canonical`), check it against the masks
  (:meth:`ActionMasks.valid_canonical`) and place it on its grid (as
  :func:`factorion.env.vector.apply_place`); :func:`remove_pass` removes (``apply_remove``).

Each pass is self-contained: numba's cache would not notice a change in a compiled function
of another file that a pass called.

:func:`compiled` returns None under ``FACTORION_NOJIT=1`` or without numba; the callers then use
their numpy paths, which are the reference the tests compare these with.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_COMPILED: dict[str, Any] = {}


def compiled(name: str):
    """The compiled version of the pass ``name`` of this module, or None (see module doc)."""
    if name not in _COMPILED:
        fn = None
        if not os.environ.get("FACTORION_NOJIT"):
            try:
                import numba
            except ImportError:
                numba = None
            if numba is not None:
                fn = numba.njit(cache=True, nogil=True)(globals()[name])
        _COMPILED[name] = fn
    return _COMPILED[name]


def mask_pass(grids, fpw, fph, fp_any, n_modelled, fit, cell, op):
    """Fill ``fit`` (B, F, HW), ``cell`` (B, 3, HW) and ``op`` (B, 3) (all zeroed bool) for
    ``grids`` (B, C, H, W), W <= 64: each row's free cells as a bit mask, a footprint (w, h) fits
    where w consecutive bits are set in each of h consecutive rows (the same sets as
    ``env_masks.fit_maps``)."""
    B, H, W = grids.shape[0], grids.shape[2], grids.shape[3]
    F = fpw.shape[0]
    one = np.uint64(1)
    free = np.zeros(H, np.uint64)
    place = np.zeros(H, np.uint64)
    for b in range(B):
        any_r = False
        for y in range(H):
            row = np.uint64(0)
            for x in range(W):
                if grids[b, 5, y, x] == 0:
                    row |= one << np.uint64(x)
                k = grids[b, 0, y, x]
                if k >= 1 and k <= n_modelled:
                    cell[b, 1, y * W + x] = True
                    any_r = True
            free[y] = row
            place[y] = 0
        for f in range(F):
            w, h = fpw[f], fph[f]
            for y in range(H - h + 1):
                fits = ~np.uint64(0)
                for dy in range(h):
                    row = free[y + dy]
                    run = row
                    for dx in range(1, w):
                        run &= row >> np.uint64(dx)
                    fits &= run
                if fp_any[b, f]:
                    place[y] |= fits
                for x in range(W):
                    fit[b, f, y * W + x] = (fits >> np.uint64(x)) & one
        any_p = False
        for y in range(H):
            row = place[y]
            if row:
                any_p = True
                for x in range(W):
                    cell[b, 0, y * W + x] = (row >> np.uint64(x)) & one
        cell[b, 2, 0] = True
        op[b, 0] = any_p
        op[b, 1] = any_r
        op[b, 2] = True


def edit_pass(grids, actions, active, fit, cellm, ed_ok, variant, recipe_ids, nvec, e_kind, e_dirl,
              e_hasvar, e_asm, e_ug, fp_index, e_w, e_h, a, valid):
    """For each sub-env b: ``a[b]`` the canonical action, ``valid[b]`` (in range, allowed by the
    masks ``fit`` / ``cellm`` / ``ed_ok`` / ``variant``, and ``active[b]``), and a valid place
    applied to ``grids[b]`` (removes are :func:`remove_pass`, after the locality test)."""
    B, W = grids.shape[0], grids.shape[3]
    for b in range(B):
        ok = True
        for j in range(5):
            t = actions[b, j]
            a[b, j] = t
            if t < 0 or t >= nvec[j]:
                ok = False
        if not ok:
            for j in range(5):
                a[b, j] = 0
        op = a[b, 0]
        if op == 2:
            for j in range(1, 5):
                a[b, j] = 0
        elif op == 1:
            for j in range(2, 5):
                a[b, j] = 0
        else:
            e = a[b, 2]
            if not e_dirl[e]:
                a[b, 3] = 0
            if not e_hasvar[e]:
                a[b, 4] = 0
        cell = a[b, 1]
        if op == 0:
            e, d, v = a[b, 2], a[b, 3], a[b, 4]
            good = fit[b, fp_index[e, d], cell] and ed_ok[b, e, d] and variant[b, e, v]
        elif op == 1:
            good = cellm[b, 1, cell]
        else:
            good = True
        good = good and ok and active[b]
        valid[b] = good
        if not good or op != 0:
            continue
        y, x = cell // W, cell % W
        e, d, v = a[b, 2], a[b, 3], a[b, 4]
        w, h = e_w[e, d], e_h[e, d]
        k = e_kind[e]
        dd = d if e_dirl[e] else 0
        rr = recipe_ids[b, v] if e_asm[e] else 0
        io = v + 1 if e_ug[e] else 0
        p = 0
        for dy in range(h):
            for dx in range(w):
                p += 1
                grids[b, 0, y + dy, x + dx] = k
                grids[b, 1, y + dy, x + dx] = dd
                grids[b, 2, y + dy, x + dx] = 0
                grids[b, 3, y + dy, x + dx] = rr
                grids[b, 4, y + dy, x + dx] = io
                grids[b, 5, y + dy, x + dx] = p


def remove_pass(grids, idx, cells, kind_w, kind_h):
    """Clear every cell of the entity covering flat cell ``cells[i]`` of ``grids[idx[i]]``."""
    C, W = grids.shape[1], grids.shape[3]
    for i in range(idx.shape[0]):
        b = idx[i]
        y, x = cells[i] // W, cells[i] % W
        k = grids[b, 0, y, x]
        d = grids[b, 1, y, x]
        p = grids[b, 5, y, x]
        w, h = kind_w[k, d], kind_h[k, d]
        ay, ax = y - (p - 1) // w, x - (p - 1) % w
        for dy in range(h):
            for dx in range(w):
                for ch in range(C):
                    grids[b, ch, ay + dy, ax + dx] = 0
