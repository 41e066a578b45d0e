"""Per-kind lookup tables over a world grid's ``KIND`` channel, indexed ``[kind id]`` or
``[kind id, direction]``: class masks (``IS_BELT[kind]`` ...), footprints, inserter pickup / drop
offsets and underground reach (and ``OFF_Y`` / ``OFF_X``, the step of each direction). Every
number comes from :mod:`factorion.core.gamedata`; kinds that are not modelled (empty, obstacle,
source, sink) are 1x1 with no offsets and no reach.

The one table of these facts: the simulator (:mod:`factorion.sim.tables`,
:mod:`factorion.sim.locality`), the env masks (:mod:`factorion.env.masks`) and the data pipeline
(:mod:`pipeline.edges`, :mod:`pipeline.chunk`, :mod:`pipeline.expert`) all read it. The cached
arrays are shared between them: read them, never write to them.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import KIND_ID, KINDS

NK = len(KINDS)


def kind_mask(names) -> np.ndarray:
    """``bool[NK]``: True at the kind id of each name."""
    m = np.zeros(NK, dtype=bool)
    for n in names:
        m[KIND_ID[n]] = True
    return m


IS_BELT, IS_UG, IS_SPLITTER = kind_mask(gd.BELTS), kind_mask(gd.UNDERGROUNDS), kind_mask(gd.SPLITTERS)
IS_INSERTER, IS_ASSEMBLER = kind_mask(gd.INSERTERS), kind_mask(gd.ASSEMBLERS)
IS_FURNACE = kind_mask(gd.FURNACES)
IS_BELTLIKE = IS_BELT | IS_UG | IS_SPLITTER
IS_MODELLED = kind_mask(gd.MODELLED)
OFF_Y = np.array([dy for dy, _ in gd.DIR_OFFSETS], dtype=np.int64)  # (dy, dx) of N E S W
OFF_X = np.array([dx for _, dx in gd.DIR_OFFSETS], dtype=np.int64)


class KindTables(NamedTuple):
    fw: np.ndarray        # int64[NK,4]    footprint width by direction
    fh: np.ndarray        # int64[NK,4]    footprint height by direction
    pick: np.ndarray      # int64[NK,4,2]  inserter pickup (dy, dx) by direction
    drop: np.ndarray      # int64[NK,4,2]  inserter drop (dy, dx) by direction
    ug_reach: np.ndarray  # int64[NK]      underground max distance


@cache
def kind_tables() -> KindTables:
    """The footprint, inserter-offset and underground-reach tables (built once, shared)."""
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
    return KindTables(fw, fh, pick, drop, ug_reach)
