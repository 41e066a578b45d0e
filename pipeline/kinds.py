"""Item lookup tables for vectorised code over a world grid (recipe products and ingredients,
smelting results, known item ids), built once from :mod:`factorion.core.gamedata`. Used by
:mod:`pipeline.edges`; the per-kind tables (``IS_BELT[kind]`` ..., footprints, inserter offsets,
underground reach) are :mod:`factorion.core.kinds`."""

from __future__ import annotations

from functools import cache

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import item_id, item_name


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
