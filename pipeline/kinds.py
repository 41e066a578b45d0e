"""Lookup tables for vectorised code over a world grid's ``KIND`` channel (``IS_BELT[kind]`` ...,
footprints, inserter pickup / drop offsets, underground reach, recipe products and ingredients,
smelting results), built once from :mod:`factorion.core.gamedata`. Used by :mod:`pipeline.chunk`,
:mod:`pipeline.edges` and :mod:`pipeline.expert`."""

from __future__ import annotations

from functools import cache

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import KIND_ID, KINDS, item_id, item_name

# --------------------------------------------------------------------------- kind lookup tables
NK = len(KINDS)


def _mask(names) -> np.ndarray:
    m = np.zeros(NK, dtype=bool)
    for n in names:
        m[KIND_ID[n]] = True
    return m


IS_BELT, IS_UG, IS_SPLITTER = _mask(gd.BELTS), _mask(gd.UNDERGROUNDS), _mask(gd.SPLITTERS)
IS_INSERTER, IS_ASSEMBLER, IS_FURNACE = _mask(gd.INSERTERS), _mask(gd.ASSEMBLERS), _mask(gd.FURNACES)
IS_BELTLIKE = IS_BELT | IS_UG | IS_SPLITTER
IS_MODELLED = _mask(gd.MODELLED)
OFF_Y = np.array([dy for dy, _ in gd.DIR_OFFSETS], dtype=np.int64)
OFF_X = np.array([dx for _, dx in gd.DIR_OFFSETS], dtype=np.int64)


@cache
def kind_tables():
    fw = np.ones((NK, 4), dtype=np.int64)
    fh = np.ones((NK, 4), dtype=np.int64)
    pick = np.zeros((NK, 4, 2), dtype=np.int64)
    drop = np.zeros((NK, 4, 2), dtype=np.int64)
    ug_reach = np.zeros(NK, dtype=np.int64)
    for name in gd.MODELLED:
        k = KIND_ID[name]
        for d in range(4):
            fw[k, d], fh[k, d] = gd.footprint(name, d)
            if name in gd.INSERTERS:
                pick[k, d], drop[k, d] = gd.inserter_offsets(name, d)
        if name in gd.UNDERGROUNDS:
            ug_reach[k] = gd.underground_max_distance(name)
    return fw, fh, pick, drop, ug_reach


@cache
def recipe_items() -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """(product item id per recipe id, solid ingredient item ids per recipe id); index 0 = no recipe."""
    names = gd.recipe_names()
    items = set(gd.item_names())
    product = np.zeros(len(names) + 1, dtype=np.int64)
    ings: list[tuple[int, ...]] = [()]
    for i, n in enumerate(names, 1):
        r = gd.recipe(n)
        res = [it for it, _ in r.results if it in items]
        product[i] = item_id(res[0]) if res else 0
        ings.append(tuple(item_id(it) for it, _ in r.ingredients if it in items))
    return product, ings


@cache
def smelt(item: int) -> int:
    name = item_name(item)
    rec = gd.smelting_recipe_for(name) if name else None
    if not rec:
        return 0
    res = [it for it, _ in gd.recipe(rec).results if it in gd.item_names()]
    return item_id(res[0]) if res else 0


@cache
def known_item(name) -> int:
    return item_id(name) if isinstance(name, str) and name in gd.item_names() else 0
