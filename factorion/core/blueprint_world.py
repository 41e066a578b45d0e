"""Blueprint dict <-> World: rasterising entities onto the grid (:func:`from_blueprint`) and
exporting them back (:func:`to_blueprint`, :func:`to_string`).

Positions in a blueprint are entity centres; a w x h footprint has an integer ``x - w/2``.
Some old strings are shifted by half a tile overall: the shift is read off the footprints (the
most common fractional part of ``x - w/2`` / ``y - h/2``) and removed before rounding.
Rasterising is vectorised: entities are classified in one Python pass (memoised per distinct
(name, direction, recipe, type)), then written onto the grid with numpy fancy indexing.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.blueprint import encode, entity_problem, make_blueprint
from factorion.core.world import (
    DIR,
    IO,
    IO_INPUT,
    IO_OUTPUT,
    ITEM,
    K_OBSTACLE,
    K_SINK,
    K_SOURCE,
    KIND,
    KIND_ID,
    KINDS,
    PART,
    RECIPE,
    SINK,
    SOURCE,
    World,
    WorldError,
    check_size,
    item_id,
    item_name,
    obstacle_size,
    raw_box,
    recipe_id,
    recipe_name,
)

_MODELLED = frozenset(gd.MODELLED)
_DIRECTIONAL = frozenset(gd.BELTS + gd.UNDERGROUNDS + gd.SPLITTERS + gd.INSERTERS)


def source_sink_role(e: dict) -> tuple[str, str | None] | None:
    """(role, item) of an infinity chest used as a source or sink, else None (WorldError when its
    tags or infinity filters are malformed, see :func:`factorion.core.blueprint.entity_problem`)."""
    why = entity_problem(e)
    if why:
        raise WorldError(f"entity #{_num(e)} {why}")
    tags = e.get("tags") or {}
    filters = (e.get("infinity_settings") or {}).get("filters") or []
    item = filters[0].get("name") if filters else None
    role = tags.get("factorion")
    if role in (SOURCE, SINK):
        return role, item
    if filters:
        f = filters[0]
        if f.get("mode") == "exactly" and not f.get("count"):
            return SINK, item
        if f.get("mode", "at-least") == "at-least" and (f.get("count") or 0) > 0:
            return SOURCE, item
    return None


def _num(e: object) -> str:
    n = e.get("entity_number") if isinstance(e, dict) else None
    r = repr(n)
    return r if len(r) <= 20 else r[:17] + "..."


def tagged_rate(e: dict) -> float | None:
    """A source's cap or a sink's wanted rate, ``tags.rate`` (items/s): None when absent,
    WorldError unless a finite number > 0."""
    tags = e.get("tags") or {}
    if "rate" not in tags:
        return None
    v = tags["rate"]
    ok = isinstance(v, int | float) and not isinstance(v, bool) and (isinstance(v, int) or math.isfinite(v))
    if not ok or v <= 0:
        r = repr(v)
        raise WorldError(f"entity #{_num(e)}: tags.rate {r if len(r) <= 40 else r[:37] + '...'} "
                         "is not a finite number > 0 (items/s)")
    return float(v)


def _snap(bp: dict) -> tuple[int, int] | None:
    """(x, y) of the blueprint's ``snap-to-grid``, or None; WorldError when malformed."""
    snap = bp.get("snap-to-grid")
    if snap is None:
        return None
    xs = snap.get("x") if isinstance(snap, dict) else None
    ys = snap.get("y") if isinstance(snap, dict) else None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (xs, ys)):
        r = repr(snap)
        raise WorldError(f"snap-to-grid {r if len(r) <= 60 else r[:57] + '...'} is not "
                         "{'x': int >= 0, 'y': int >= 0}")
    return xs, ys


def _bad_entity(ents: list) -> WorldError:
    """The error for the first malformed entity (the slow path after the fast one failed)."""
    for i, e in enumerate(ents):
        why = entity_problem(e)
        if why:
            return WorldError(f"entity #{_num(e) if isinstance(e, dict) and 'entity_number' in e else i + 1} "
                              f"{why}")
    return WorldError("malformed entities")


_CLASS_CACHE: dict[tuple, tuple[int, int, int, int, int, int, int]] = {}


def _classify_modelled(name: str, d16: int, recipe: str | None, ug_type: str | None):
    """(kind, dir, item, recipe, io, w, h) of a modelled entity, or None to keep it as obstacle."""
    key = (name, d16, recipe, ug_type)
    hit = _CLASS_CACHE.get(key)
    if hit is not None or key in _CLASS_CACHE:
        return hit
    out = None
    if d16 % 4 == 0:
        d = d16 // 4 % 4 if name in _DIRECTIONAL else 0
        rec = 0
        ok = True
        if recipe and name in gd.ASSEMBLERS:
            try:
                ok = gd.is_known_recipe(recipe) and gd.machine_can_make(name, recipe)
                rec = recipe_id(recipe) if ok else 0
            except WorldError:
                ok = False  # a recipe we cannot simulate (fluids, mods): kept as an obstacle
        if ok:
            io = (IO_OUTPUT if ug_type == "output" else IO_INPUT) if name in gd.UNDERGROUNDS else 0
            w, h = gd.footprint(name, d)
            out = (KIND_ID[name], d, 0, rec, io, w, h)
    _CLASS_CACHE[key] = out
    return out


def _classify(e: dict) -> tuple[int, int, int, int, int, int, int]:
    name = e["name"]
    d16 = e.get("direction") or 0
    if name in _MODELLED:
        c = _classify_modelled(name, d16, e.get("recipe"), e.get("type"))
        if c is not None:
            return c
    elif name == gd.SOURCE_SINK_ENTITY:
        role = source_sink_role(e)
        if role and role[1] and role[1] in gd.item_names():
            return (KIND_ID[role[0]], 0, item_id(role[1]), 0, 0, 1, 1)
    key = (name, d16)
    hit = _OBSTACLE_CACHE.get(key)
    if hit is None:
        w, h = obstacle_size(name, d16 // 4 % 4 if d16 % 4 == 0 else 0)
        hit = _OBSTACLE_CACHE[key] = (K_OBSTACLE, 0, 0, 0, 0, w, h)
    return hit


_OBSTACLE_CACHE: dict[tuple[str, int], tuple[int, int, int, int, int, int, int]] = {}


def _entities(bp: dict) -> list:
    """The blueprint's entity list (WorldError unless the blueprint is an object and it a list)."""
    if not isinstance(bp, dict):
        raise WorldError(f"blueprint is not an object but {type(bp).__name__}")
    ents = bp.get("entities") or []
    if not isinstance(ents, list):
        raise WorldError(f"'entities' is not a list but {type(ents).__name__}")
    return ents


def _empty(bp: dict, window: tuple[int, int, int, int] | None) -> World:
    """The world of a blueprint with no entities (a window's size, or our own export's)."""
    snap = _snap(bp)
    if window:
        return World(window[2], window[3])
    if snap and snap[0] and snap[1]:  # an empty world of ours
        return World(snap[1], snap[0])
    raise WorldError("blueprint has no entities")


def _read(ents: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(attrs (n, 7): kind, dir, item, recipe, io, w, h; centres (n, 2): x, y) of the entities;
    WorldError naming the first malformed entity."""
    try:
        attrs = np.array([_classify(e) for e in ents], dtype=np.int64)
        pos = np.array([(e["position"]["x"], e["position"]["y"]) for e in ents], dtype=np.float64)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        raise _bad_entity(ents) from None
    if pos.dtype != np.float64 or not np.isfinite(pos).all() or np.abs(pos).max() > 2.0 ** 31:
        raise _bad_entity(ents)
    return attrs, pos


def _place(bp: dict, pos: np.ndarray, w: np.ndarray, h: np.ndarray, window):
    """(ys, xs, window): top-left tiles relative to the window's corner, with the half-tile shift
    read off the footprints removed, and the window (the bounding box, or our export's
    snap-to-grid size, when none is given); WorldError when the window is over the size limit."""
    snap = _snap(bp)
    cx, cy = pos[:, 0], pos[:, 1]
    lefts, tops = cx - w / 2, cy - h / 2
    sx = Counter(np.round(lefts % 1.0, 3).tolist()).most_common(1)[0][0]
    sy = Counter(np.round(tops % 1.0, 3).tolist()).most_common(1)[0][0]
    xs = np.floor(lefts - sx + 0.5).astype(np.int64)
    ys = np.floor(tops - sy + 0.5).astype(np.int64)
    x0, y0 = int(xs.min()), int(ys.min())
    if snap and x0 >= 0 and y0 >= 0:  # our own exports: the snapping grid is the world's size
        sw, sh = snap
        if (xs + w).max() <= sw and (ys + h).max() <= sh:
            x0 = y0 = 0
            window = window or (0, 0, sh, sw)
    what = "window" if window is not None else "blueprint"
    if window is None:
        window = (0, 0, int((ys + h).max()) - y0, int((xs + w).max()) - x0)
    top, left, height, width = window
    check_size(height, width, what)  # before anything that big is allocated
    ys -= y0 + top
    xs -= x0 + left
    return ys, xs, window


def _cells(ys, xs, w, h, touches, height: int, width: int):
    """(entity index, y, x, PART) of every covered cell inside the grid, entity by entity for
    each footprint size; None when the window touches no entity."""
    idx, cy_, cx_, part = [], [], [], []
    for code in np.unique(w[touches] * 1024 + h[touches]).tolist():
        fw, fh = divmod(code, 1024)
        sel = np.nonzero(touches & (w == fw) & (h == fh))[0]
        for dy in range(fh):
            for dx in range(fw):
                idx.append(sel)
                cy_.append(ys[sel] + dy)
                cx_.append(xs[sel] + dx)
                part.append(np.full(len(sel), 1 + dy * fw + dx))
    if not idx:
        return None
    idx, cy_, cx_, part = (np.concatenate(a) for a in (idx, cy_, cx_, part))
    ok = (cy_ >= 0) & (cx_ >= 0) & (cy_ < height) & (cx_ < width)
    return idx[ok], cy_[ok], cx_[ok], part[ok]


def _paint(world: World, ents: list[dict], attrs: np.ndarray, inside: np.ndarray, cells) -> None:
    """Write the covered cells: modelled entities wholly inside with their channels, clipped
    entities and obstacles as 1x1 obstacle cells where nothing modelled stands (a WorldError when
    two modelled entities overlap)."""
    g = world.grid
    height, width = world.shape
    idx, cy_, cx_, part = cells
    as_obstacle = (attrs[idx, 0] == K_OBSTACLE) | ~inside[idx]
    flat = cy_ * width + cx_
    modelled = ~as_obstacle
    cover = np.bincount(flat[modelled], minlength=height * width)
    clash = cover > 1  # modelled on modelled; a modelled entity over an obstacle cell wins the
    if clash.any():    # cell (curved rails' boxes overlap what stands beside them)
        cell = int(np.nonzero(clash)[0][0])
        who = [int(i) for i in idx[flat == cell]]
        names = ", ".join(f"#{ents[i].get('entity_number', i + 1)} {ents[i]['name']}" for i in who[:3])
        raise WorldError(f"entities overlap at tile ({cell // width}, {cell % width}): {names}")
    m = idx[modelled]
    fm = flat[modelled]
    for ch in (KIND, DIR, ITEM, RECIPE, IO):
        g[ch].flat[fm] = attrs[m, ch]
    g[PART].flat[fm] = part[modelled]
    fo = flat[as_obstacle]
    fo = fo[cover[fo] == 0]
    g[KIND].flat[fo] = K_OBSTACLE
    g[PART].flat[fo] = 1


def from_blueprint(bp: dict, window: tuple[int, int, int, int] | None = None) -> World:
    """Rasterise a blueprint (the dict under "blueprint", 2.0-normalised) onto a grid.

    ``window`` = (top, left, height, width) in tiles relative to the blueprint's top-left
    corner; without it the grid is the blueprint's bounding box (or its snap-to-grid size,
    for our own exports). Entities crossing the window's edge leave their inside cells as
    obstacles.
    """
    ents = _entities(bp)
    if not ents:
        return _empty(bp, window)
    attrs, pos = _read(ents)
    kind, w, h = attrs[:, 0], attrs[:, 5], attrs[:, 6]
    ys, xs, (_, _, height, width) = _place(bp, pos, w, h, window)
    world = World(height, width)
    inside = (ys >= 0) & (xs >= 0) & (ys + h <= height) & (xs + w <= width)
    touches = (ys < height) & (xs < width) & (ys + h > 0) & (xs + w > 0)
    cells = _cells(ys, xs, w, h, touches, height, width)
    if cells is None:  # the window touches no entity
        return world
    _paint(world, ents, attrs, inside, cells)
    for i in np.nonzero(inside & (kind == K_OBSTACLE))[0]:
        raw = dict(ents[int(i)])
        raw.pop("entity_number", None)
        raw["position"] = {"x": float(xs[i] + w[i] / 2), "y": float(ys[i] + h[i] / 2)}
        world.obstacles.append(raw)
    for i in np.nonzero(inside & ((kind == K_SOURCE) | (kind == K_SINK)))[0]:  # cap / wanted rate
        rate = tagged_rate(ents[int(i)])
        if rate is not None:
            world.rates[(int(ys[i]), int(xs[i]))] = rate
    return world


def to_blueprint(world: World, label: str | None = None) -> dict:
    """The blueprint dict ({"blueprint": {...}}, version 2.0) of a world; kept obstacles come back
    as they were read."""
    out = []
    g = world.grid
    covered = np.zeros(world.shape, dtype=bool)
    for raw in world.obstacles:  # modded names are not exported: their cells become walls
        if gd.is_known_entity(raw["name"]):
            t, l, w, h = raw_box(raw)
            covered[max(t, 0):t + h, max(l, 0):l + w] = True
            out.append(dict(raw))
    for y, x in zip(*np.nonzero(g[PART] == 1), strict=True):
        y, x = int(y), int(x)
        k = int(g[KIND, y, x])
        name = KINDS[k]
        d = int(g[DIR, y, x])
        pos = {"x": x + 0.5, "y": y + 0.5}
        if k == K_OBSTACLE:
            if not covered[y, x]:
                out.append({"name": gd.FILLER_OBSTACLE, "position": pos})
            continue
        if k in (K_SOURCE, K_SINK):
            item = item_name(int(g[ITEM, y, x]))
            src = k == K_SOURCE
            f = {"index": 1, "name": item, "mode": "at-least" if src else "exactly",
                 "count": gd.stack_size(item) if src else 0}
            tags = {"factorion": SOURCE if src else SINK}
            if (y, x) in world.rates:
                tags["rate"] = world.rates[(y, x)]
            out.append({"name": gd.SOURCE_SINK_ENTITY, "position": pos,
                        "infinity_settings": {"remove_unfiltered_items": False, "filters": [f]},
                        "tags": tags})
            continue
        w, h = gd.footprint(name, d)
        e = {"name": name, "position": {"x": x + w / 2, "y": y + h / 2}}
        if d:
            e["direction"] = d * 4
        if name in gd.UNDERGROUNDS:
            e["type"] = "output" if g[IO, y, x] == IO_OUTPUT else "input"
        if g[RECIPE, y, x]:
            e["recipe"] = recipe_name(int(g[RECIPE, y, x]))
        out.append(e)
    # the snapping grid records the world's size, so empty margins survive the round trip
    return make_blueprint(out, label=label, **{"snap-to-grid": {"x": world.width, "y": world.height}})


def to_string(world: World, label: str | None = None) -> str:
    """The exchange string a player pastes into the game."""
    return encode(to_blueprint(world, label))
