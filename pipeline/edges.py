"""Edge items of the chunk stage: the directed belt links of a full blueprint (:func:`cell_links`) and
the item inferred for every belt cell from the nearest evidence along the belt network
(:func:`infer_items`). The rules are documented once, in the :mod:`pipeline.chunk` module
docstring (fix-ups 2 and 3)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.kinds import (
    IS_ASSEMBLER,
    IS_BELT,
    IS_BELTLIKE,
    IS_FURNACE,
    IS_INSERTER,
    IS_SPLITTER,
    IS_UG,
    OFF_X,
    OFF_Y,
    kind_tables,
)
from factorion.core.world import (
    DIR,
    IO,
    IO_INPUT,
    IO_OUTPUT,
    ITEM,
    K_SINK,
    K_SOURCE,
    KIND,
    KIND_ID,
    PART,
    RECIPE,
)
from pipeline.kinds import (
    known_item,
    recipe_items,
    smelt,
)

DEFAULT_PLACEHOLDER = "iron-plate"


def cell_links(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed belt links of a full grid (flat indices): see the module docstring."""
    _, _, _, _, ug_reach = kind_tables()
    kind, d, io = g[KIND], g[DIR], g[IO]
    H, W = kind.shape
    us, vs = [], []
    bl = IS_BELTLIKE[kind]
    ug_in = IS_UG[kind] & (io == IO_INPUT)
    ys, xs = np.nonzero(bl & ~ug_in)
    dd = d[ys, xs].astype(np.int64)
    ty, tx = ys + OFF_Y[dd], xs + OFF_X[dd]
    ok = (ty >= 0) & (ty < H) & (tx >= 0) & (tx < W)
    ys, xs, dd, ty, tx = ys[ok], xs[ok], dd[ok], ty[ok], tx[ok]
    tk, td, tio = kind[ty, tx], d[ty, tx].astype(np.int64), io[ty, tx]
    back = (dd + 2) % 4
    from_behind = IS_SPLITTER[tk] | (IS_UG[tk] & (tio == IO_INPUT))
    accept = (IS_BELT[tk] & (td != back)) | (from_behind & (td == dd)) | (tk == K_SINK)
    us.append(ys[accept] * W + xs[accept])
    vs.append(ty[accept] * W + tx[accept])
    # underground input -> partner output
    ys, xs = np.nonzero(ug_in)
    if len(ys):
        k, dd = kind[ys, xs], d[ys, xs].astype(np.int64)
        partner = np.full(len(ys), -1, dtype=np.int64)
        open_ = np.ones(len(ys), dtype=bool)
        for step in range(1, int(ug_reach.max()) + 1):
            cy, cx = ys + step * OFF_Y[dd], xs + step * OFF_X[dd]
            live = open_ & (step <= ug_reach[k]) & (cy >= 0) & (cy < H) & (cx >= 0) & (cx < W)
            if not live.any():
                break
            cyl, cxl = np.where(live, cy, 0), np.where(live, cx, 0)
            hit = live & (kind[cyl, cxl] == k) & (d[cyl, cxl] == dd) & (io[cyl, cxl] == IO_OUTPUT)
            partner[hit] = cy[hit] * W + cx[hit]
            open_ &= ~hit  # the nearest same-name output facing the same way (as tasks.ug_partner)
        ok = partner >= 0
        us.append(ys[ok] * W + xs[ok])
        vs.append(partner[ok])
    # a source feeds a belt that starts in front of it (the belt's back faces the source)
    ys, xs = np.nonzero(kind == K_SOURCE)
    for dd in range(4):
        ty, tx = ys + OFF_Y[dd], xs + OFF_X[dd]
        ok = (ty >= 0) & (ty < H) & (tx >= 0) & (tx < W)
        y2, x2, ty, tx = ys[ok], xs[ok], ty[ok], tx[ok]
        tk = kind[ty, tx]
        good = IS_BELTLIKE[tk] & (d[ty, tx] == dd) & ~(IS_UG[tk] & (io[ty, tx] == IO_OUTPUT))
        us.append(y2[good] * W + x2[good])
        vs.append(ty[good] * W + tx[good])
    u, v = np.concatenate(us).astype(np.int64), np.concatenate(vs).astype(np.int64)
    order = np.argsort(u, kind="stable")
    return u[order], v[order]


# --------------------------------------------------------------------------- edge items
def _filter_items(e: dict) -> list[int]:
    """Items of an inserter's whitelist filter (a blacklist says nothing about the belt)."""
    if e.get("filter_mode", "whitelist") != "whitelist":
        return []
    f = e.get("filters")
    items = [known_item(x.get("name")) for x in f if isinstance(x, dict)] if isinstance(f, list) else []
    return [i for i in items if i]


def _raw_filters(raw_entities: list[dict], g: np.ndarray) -> list[tuple[int, int, list[int]]]:
    """[(flat anchor cell, kind, [item ids])] of filter inserters.

    Raw entities are matched to grid anchors name by name in (y, x) order; a name whose entities do
    not match the anchors one to one by a constant translation gives nothing (never a wrong cell).
    """
    by_name: dict[str, list[dict]] = {}
    with_filter: set[str] = set()
    for e in raw_entities:
        name = e.get("name")
        if name in _FILTERABLE:
            by_name.setdefault(name, []).append(e)
            if "filters" in e:
                with_filter.add(name)
    fw, fh, *_ = kind_tables()
    W = g.shape[2]
    out = []
    for name in sorted(with_filter):
        raws = by_name[name]
        k = KIND_ID[name]
        ys, xs = np.nonzero((g[KIND] == k) & (g[PART] == 1))  # row-major = (y, x) order
        if len(ys) != len(raws):
            continue
        dirs = [int(e.get("direction", 0) or 0) // 4 % 4 for e in raws]
        tops = np.array([e["position"]["y"] - fh[k, d] / 2 for e, d in zip(raws, dirs, strict=True)])
        lefts = np.array([e["position"]["x"] - fw[k, d] / 2 for e, d in zip(raws, dirs, strict=True)])
        order = np.lexsort((lefts, tops))
        if np.ptp(ys - tops[order]) >= 0.75 or np.ptp(xs - lefts[order]) >= 0.75:
            continue
        for j, i in enumerate(order.tolist()):
            items = _filter_items(raws[i])
            if items:
                out.append((int(ys[j]) * W + int(xs[j]), k, items))
    return out


_FILTERABLE = frozenset(gd.INSERTERS)  # splitter filters are often a trick (an item never on the belt)


def _bfs_labels(n_cells: int, u: np.ndarray, v: np.ndarray, seeds: dict[int, dict[int, float]]) -> np.ndarray:
    """Multi-source BFS over the undirected belt graph; each reached cell gets the item of its nearest
    seed (ties: the stronger seed, then the lower cell index)."""
    labels = np.zeros(n_cells, dtype=np.int16)
    if not seeds:
        return labels
    nodes = np.unique(np.concatenate([u, v, np.fromiter(seeds, dtype=np.int64, count=len(seeds))]))
    a = np.searchsorted(nodes, np.concatenate([u, v]))
    b = np.searchsorted(nodes, np.concatenate([v, u]))
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    indptr = np.searchsorted(a, np.arange(len(nodes) + 1)).tolist()
    nbr = b.tolist()
    lab = [0] * len(nodes)
    init = []
    for cell, votes in seeds.items():
        best = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))
        init.append((-best[1], cell, best[0]))
    init.sort()
    queue = []
    idx_of = np.searchsorted(nodes, np.array([c for _, c, _ in init], dtype=np.int64)).tolist()
    for (_, _, item), i in zip(init, idx_of, strict=True):
        lab[i] = item
        queue.append(i)
    head = 0
    while head < len(queue):
        i = queue[head]
        head += 1
        it = lab[i]
        for j in nbr[indptr[i]:indptr[i + 1]]:
            if not lab[j]:
                lab[j] = it
                queue.append(j)
    labels[nodes] = np.asarray(lab, dtype=np.int16)
    return labels


def _vote(seeds: dict[int, dict[int, float]], cell: int, it: int, w: float) -> None:
    """Add weight ``w`` for item ``it`` (0: no vote) on flat cell ``cell``."""
    if it:
        d = seeds.setdefault(int(cell), {})
        d[int(it)] = d.get(int(it), 0.0) + w


def _inserter_votes(g: np.ndarray, ay: np.ndarray, ax: np.ndarray, seeds: dict) -> tuple[dict, dict]:
    """Votes of what inserters move between belt-likes and sources, sinks, assemblers and
    furnaces; returns the belt cells feeding and fed by each furnace (by flat anchor cell)."""
    _, _, pick, drop, _ = kind_tables()
    product, ings = recipe_items()
    kind, item, rec = g[KIND], g[ITEM], g[RECIPE]
    H, W = kind.shape
    furnace_in: dict[int, list[int]] = {}
    furnace_out: dict[int, list[int]] = {}
    ys, xs = np.nonzero(IS_INSERTER[kind])
    if not len(ys):
        return furnace_in, furnace_out
    k, d = kind[ys, xs], g[DIR][ys, xs].astype(np.int64)
    py, px = ys + pick[k, d, 0], xs + pick[k, d, 1]
    qy, qx = ys + drop[k, d, 0], xs + drop[k, d, 1]
    ok = (py >= 0) & (py < H) & (px >= 0) & (px < W) & (qy >= 0) & (qy < H) & (qx >= 0) & (qx < W)
    py, px, qy, qx = py[ok], px[ok], qy[ok], qx[ok]
    pk, qk = kind[py, px], kind[qy, qx]
    pb, qb = IS_BELTLIKE[pk], IS_BELTLIKE[qk]
    pf, qf = py * W + px, qy * W + qx
    for i in np.nonzero(qb & IS_ASSEMBLER[pk])[0].tolist():
        _vote(seeds, qf[i], product[rec[py[i], px[i]]], 2.0)
    for i in np.nonzero(qb & (pk == K_SOURCE))[0].tolist():
        _vote(seeds, qf[i], item[py[i], px[i]], 3.0)
    for i in np.nonzero(pb & (qk == K_SINK))[0].tolist():
        _vote(seeds, pf[i], item[qy[i], qx[i]], 3.0)
    for i in np.nonzero(pb & IS_ASSEMBLER[qk])[0].tolist():
        its = ings[rec[qy[i], qx[i]]]
        for it in its:
            _vote(seeds, pf[i], it, 1.0 / len(its))
    ore = known_item("iron-ore")
    for i in np.nonzero(pb & IS_FURNACE[qk])[0].tolist():
        _vote(seeds, pf[i], ore, 0.1)
        furnace_in.setdefault(int(ay[qy[i], qx[i]]) * W + int(ax[qy[i], qx[i]]), []).append(int(pf[i]))
    for i in np.nonzero(qb & IS_FURNACE[pk])[0].tolist():
        furnace_out.setdefault(int(ay[py[i], px[i]]) * W + int(ax[py[i], px[i]]), []).append(int(qf[i]))
    return furnace_in, furnace_out


def _filter_votes(raw_entities: list[dict], g: np.ndarray, seeds: dict) -> None:
    """Whitelist filters of inserters: the item is on the belt they take from or drop onto."""
    _, _, pick, drop, _ = kind_tables()
    kind = g[KIND]
    H, W = kind.shape
    for cell, k, items in _raw_filters(raw_entities, g):
        y, x = divmod(cell, W)
        dd = int(g[DIR, y, x])
        for off in (pick[k, dd], drop[k, dd]):
            yy, xx = y + int(off[0]), x + int(off[1])
            if 0 <= yy < H and 0 <= xx < W and IS_BELTLIKE[kind[yy, xx]]:
                for it in items:
                    _vote(seeds, yy * W + xx, it, 3.0 / len(items))


def _with_splitter_links(g: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The undirected links plus one between the two cells of each splitter."""
    sy, sx = np.nonzero(IS_SPLITTER[g[KIND]] & (g[PART] == 1))
    if not len(sy):
        return u, v
    W = g.shape[2]
    d = g[DIR][sy, sx].astype(np.int64)
    # footprint 2 wide (N/S) or 2 high (E/W): the second cell is right of / below the anchor
    oy, ox = (d % 2 == 1).astype(np.int64), (d % 2 == 0).astype(np.int64)
    bu, bv = sy * W + sx, (sy + oy) * W + (sx + ox)
    return np.concatenate([u, bu]), np.concatenate([v, bv])


def _furnace_votes(labels: np.ndarray, furnace_in: dict, furnace_out: dict, seeds: dict) -> bool:
    """Round 2: each furnace's output belts get what it smelts from the items on its input belts
    (the most voted result, ties to the lower id); whether any vote was added."""
    added = False
    for anchor, outs in furnace_out.items():
        results = Counter(smelt(int(labels[c])) for c in furnace_in.get(anchor, ()))
        results.pop(0, None)
        if results:
            it = min(results, key=lambda r: (-results[r], r))
            for c in outs:
                _vote(seeds, c, it, 2.0)
            added = True
    return added


def infer_items(g: np.ndarray, ay: np.ndarray, ax: np.ndarray, u: np.ndarray, v: np.ndarray,
                raw_entities: list[dict] | None = None) -> tuple[np.ndarray, int]:
    """(item id per flat cell for belt-like cells, placeholder item id): the edge-item rule."""
    kind = g[KIND]
    n = kind.size
    flat_kind, flat_item = kind.ravel(), g[ITEM].ravel()
    seeds: dict[int, dict[int, float]] = {}
    # infinity sources / sinks on the belt system
    for a, b in zip(u.tolist(), v.tolist(), strict=True):
        if flat_kind[a] == K_SOURCE:
            _vote(seeds, b, flat_item[a], 3.0)
        elif flat_kind[b] == K_SINK:
            _vote(seeds, a, flat_item[b], 3.0)
    furnace_in, furnace_out = _inserter_votes(g, ay, ax, seeds)
    if raw_entities:
        _filter_votes(raw_entities, g, seeds)
    uu, vv = _with_splitter_links(g, u, v)
    labels = _bfs_labels(n, uu, vv, seeds)
    if furnace_out and _furnace_votes(labels, furnace_in, furnace_out, seeds):
        labels = _bfs_labels(n, uu, vv, seeds)
    belt_labels = labels[IS_BELTLIKE[flat_kind] & (labels > 0)]
    if len(belt_labels):
        vals, cnt = np.unique(belt_labels, return_counts=True)
        placeholder = int(vals[np.argmax(cnt)])
    else:
        placeholder = known_item(DEFAULT_PLACEHOLDER)
    return labels, placeholder
