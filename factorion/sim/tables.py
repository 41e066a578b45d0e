"""Game numbers as flat numpy tables the compiled solver indexes by kind / item / recipe id.

Every number comes from :mod:`factorion.core.gamedata` (belt speed, inserter rotation, crafting
speed, recipes) or its per-kind tables in :mod:`factorion.core.kinds` (underground reach,
pickup/drop offsets, footprints); nothing is typed by hand.
Built once per process (~10 ms) and cached.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.kinds import kind_tables
from factorion.core.world import KINDS, SINK, SOURCE

# entity classes the solver switches on (values of Tables.kcls)
C_NONE, C_BELT, C_UG, C_SPLITTER, C_INSERTER, C_ASSEMBLER, C_FURNACE, C_CHEST, C_SOURCE, C_SINK = range(10)


class Tables(NamedTuple):
    kcls: np.ndarray       # int64[NK]      class of each kind id
    lane_cap: np.ndarray   # float64[NK]    items/s of ONE lane (belt_rate / 2) for belt-likes
    reach: np.ndarray      # int64[NK]      underground max distance
    ins_rate: np.ndarray   # float64[NK]    inserter items/s (chest to chest, hand size 1)
    pick: np.ndarray       # int64[NK,4,2]  inserter pickup (dy, dx) by direction
    drop: np.ndarray       # int64[NK,4,2]  inserter drop (dy, dx) by direction
    fw: np.ndarray         # int64[NK,4]    footprint width by direction
    speed: np.ndarray      # float64[NK]    crafting speed of machines
    can_make: np.ndarray   # bool[NK,NR+1]  machine kind can run recipe id (1-based, 0 = none)
    r_energy: np.ndarray   # float64[NR+1]  seconds per craft at speed 1
    r_ning: np.ndarray     # int64[NR+1]
    r_ing: np.ndarray      # int64[NR+1,MI] ingredient item ids (1-based)
    r_ingamt: np.ndarray   # float64[NR+1,MI]
    r_nres: np.ndarray     # int64[NR+1]
    r_res: np.ndarray      # int64[NR+1,MR]
    r_resamt: np.ndarray   # float64[NR+1,MR]
    smelt: np.ndarray      # int64[NI+1]    recipe id a furnace runs when fed item id (0 = none)
    dirs: np.ndarray       # int64[4,2]     (dy, dx) of N E S W


@cache
def tables() -> Tables:
    nk = len(KINDS)
    recipes = gd.recipe_names()
    items = gd.item_names()
    nr, ni = len(recipes), len(items)
    rid = {r: i + 1 for i, r in enumerate(recipes)}
    iid = {it: i + 1 for i, it in enumerate(items)}

    kcls = np.zeros(nk, np.int64)
    lane_cap = np.zeros(nk)
    ins_rate = np.zeros(nk)
    kt = kind_tables()
    speed = np.zeros(nk)
    can_make = np.zeros((nk, nr + 1), np.bool_)
    groups = ((gd.BELTS, C_BELT), (gd.UNDERGROUNDS, C_UG), (gd.SPLITTERS, C_SPLITTER),
              (gd.INSERTERS, C_INSERTER), (gd.ASSEMBLERS, C_ASSEMBLER), (gd.FURNACES, C_FURNACE),
              (gd.CHESTS, C_CHEST))
    for k, name in enumerate(KINDS):
        for names, c in groups:
            if name in names:
                kcls[k] = c
        if name == SOURCE:
            kcls[k] = C_SOURCE
        elif name == SINK:
            kcls[k] = C_SINK
        if kcls[k] in (C_BELT, C_UG, C_SPLITTER):
            lane_cap[k] = gd.belt_rate(name) / 2
        if kcls[k] == C_INSERTER:
            ins_rate[k] = gd.inserter_rate(name)
        if kcls[k] in (C_ASSEMBLER, C_FURNACE):
            speed[k] = gd.crafting_speed(name)
            for r in recipes:
                can_make[k, rid[r]] = gd.machine_can_make(name, r)

    recs = [gd.recipe(r) for r in recipes]
    mi = max(len(r.ingredients) for r in recs)
    mr = max(len(r.results) for r in recs)
    r_energy = np.ones(nr + 1)
    r_ning = np.zeros(nr + 1, np.int64)
    r_ing = np.zeros((nr + 1, mi), np.int64)
    r_ingamt = np.zeros((nr + 1, mi))
    r_nres = np.zeros(nr + 1, np.int64)
    r_res = np.zeros((nr + 1, mr), np.int64)
    r_resamt = np.zeros((nr + 1, mr))
    for i, r in enumerate(recs, start=1):
        r_energy[i] = r.energy
        # only items in the vocabulary can move (fluids never appear: such recipes are not makeable)
        ing = [(iid[n], a) for n, a in r.ingredients if n in iid]
        res = [(iid[n], a) for n, a in r.results if n in iid and a > 0]
        r_ning[i] = len(ing)
        r_nres[i] = len(res)
        for j, (n, a) in enumerate(ing):
            r_ing[i, j], r_ingamt[i, j] = n, a
        for j, (n, a) in enumerate(res):
            r_res[i, j], r_resamt[i, j] = n, a
    smelt = np.zeros(ni + 1, np.int64)
    for it, i in iid.items():
        s = gd.smelting_recipe_for(it)
        if s is not None and s in rid:
            smelt[i] = rid[s]
    dirs = np.array(gd.DIR_OFFSETS, np.int64)
    return Tables(kcls, lane_cap, kt.ug_reach, ins_rate, kt.pick, kt.drop, kt.fw, speed, can_make, r_energy,
                  r_ning, r_ing, r_ingamt, r_nres, r_res, r_resamt, smelt, dirs)
