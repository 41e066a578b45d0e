"""Random factories that mostly work, for property tests and benchmarks.

:func:`random_factory` lays belt walks from sources to sinks (random tiers, curves, underground
jumps, splitters with a second branch), taps them with inserters into sinks or chests, drops onto
them from sources, optionally builds a machine (source -> inserter -> assembler/furnace ->
inserter -> sink) and finally scatters a few random entities as noise. Nothing here is physics:
it only places entities; the simulator decides what flows.
"""

from __future__ import annotations

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import World, WorldError

OFF = gd.DIR_OFFSETS
ITEMS = ("iron-plate", "copper-plate")
MACHINE_SETUPS = (("assembling-machine-1", "iron-gear-wheel", ("iron-plate",), "iron-gear-wheel"),
                  ("assembling-machine-2", "copper-cable", ("copper-plate",), "copper-cable"),
                  ("assembling-machine-1", "electronic-circuit", ("iron-plate", "copper-cable"),
                   "electronic-circuit"),
                  ("stone-furnace", None, ("iron-ore",), "iron-plate"))


def _free(w: World, y: int, x: int) -> bool:
    return 0 <= y < w.height and 0 <= x < w.width and w.grid[5, y, x] == 0


def _try(w: World, *a, **k) -> bool:
    try:
        w.place(*a, **k)
        return True
    except WorldError:
        return False


def _walk(w: World, rng, y, x, d, item, length, path, items, depth=0):
    """Belts from (y, x) heading d; ends in a sink of ``item`` (usually). Appends belt cells."""
    tier = int(rng.integers(0, 3))
    for _ in range(length):
        if not _free(w, y, x):
            return
        r = rng.random()
        if r < 0.12:  # underground jump (sometimes out of reach)
            name = gd.UNDERGROUNDS[tier]
            gap = int(rng.integers(2, gd.underground_max_distance(name) + 2))
            ty, tx = y + OFF[d][0] * gap, x + OFF[d][1] * gap
            if _free(w, ty, tx):
                w.place(name, y, x, direction=d, io=1)
                w.place(name, ty, tx, direction=d, io=2)
                path.append((y, x))
                y, x = ty + OFF[d][0], tx + OFF[d][1]
                continue
        if r > 0.93 and depth < 2:  # splitter: the walk goes on from one output, maybe from both
            side = (d + (1 if rng.random() < 0.5 else 3)) % 4
            oy, ox = y + OFF[side][0], x + OFF[side][1]
            if _free(w, oy, ox):
                ay, ax = min(y, oy), min(x, ox)
                if _try(w, gd.SPLITTERS[tier], ay, ax, direction=d):
                    path.append((y, x))
                    if rng.random() < 0.7:
                        _walk(w, rng, oy + OFF[d][0], ox + OFF[d][1], d, item, int(rng.integers(1, 5)),
                              path, items, depth + 1)
                    y, x = y + OFF[d][0], x + OFF[d][1]
                    continue
        nd = d if rng.random() < 0.6 else (d + (1 if rng.random() < 0.5 else 3)) % 4
        w.place(gd.BELTS[tier] if rng.random() < 0.85 else gd.BELTS[int(rng.integers(0, 3))], y, x,
                direction=nd)
        path.append((y, x))
        d = nd
        y, x = y + OFF[d][0], x + OFF[d][1]
    if rng.random() < 0.85:
        _try(w, "sink", y, x, item=item if rng.random() < 0.9 else items[int(rng.integers(0, len(items)))])


def _taps(w: World, rng, path, item, items):
    """Inserters beside belt cells: picking into a sink / chest, or dropping from a source."""
    for (y, x) in path:
        if rng.random() > 0.25:
            continue
        side = int(rng.integers(0, 4))
        iy, ix = y + OFF[side][0], x + OFF[side][1]
        ty, tx = iy + OFF[side][0], ix + OFF[side][1]
        if not (_free(w, iy, ix) and _free(w, ty, tx)):
            continue
        name = ("inserter", "fast-inserter", "long-handed-inserter", "burner-inserter")[int(rng.integers(4))]
        reach = 2 if name == "long-handed-inserter" else 1
        if reach == 2:
            ty, tx = ty + OFF[side][0], tx + OFF[side][1]
            if not _free(w, ty, tx):
                continue
        pick = rng.random() < 0.6
        # an inserter with direction d picks from -d... from offsets: pick = offsets[0]
        for d in range(4):
            (py, px), (qy, qx) = gd.inserter_offsets(name, d)
            src, dst = ((y, x), (ty, tx)) if pick else ((ty, tx), (y, x))
            if (iy + py, ix + px) == src and (iy + qy, ix + qx) == dst:
                w.place(name, iy, ix, direction=d)
                break
        else:
            continue
        other = item if rng.random() < 0.85 else items[int(rng.integers(0, len(items)))]
        if pick:
            if rng.random() < 0.8:
                w.place("sink", ty, tx, item=other)
            else:
                w.place("iron-chest", ty, tx)
        else:
            w.place("source", ty, tx, item=other)
            if rng.random() < 0.3:
                w.rates[(ty, tx)] = float(rng.choice([0.3, 1.0, 3.0]))


def _machine(w: World, rng):
    machine, recipe, ings, product = MACHINE_SETUPS[int(rng.integers(0, len(MACHINE_SETUPS)))]
    size = gd.footprint(machine)[0]
    for _ in range(20):
        y = int(rng.integers(2, max(3, w.height - size - 1)))
        x = int(rng.integers(1, max(2, w.width - size)))
        if not all(_free(w, y + i, x + j) for i in range(size) for j in range(size)):
            continue
        w.place(machine, y, x, recipe=recipe)
        # inputs from the north side, output to the south
        for k, item in enumerate(ings):
            cx = x + k
            ins = "inserter" if rng.random() < 0.6 else "fast-inserter"
            if _free(w, y - 1, cx) and _free(w, y - 2, cx):
                w.place(ins, y - 1, cx, direction=0)
                w.place("source", y - 2, cx, item=item)
        cx = x + int(rng.integers(0, size))
        if _free(w, y + size, cx) and _free(w, y + size + 1, cx):
            w.place("inserter", y + size, cx, direction=0)
            if rng.random() < 0.7:
                w.place("sink", y + size + 1, cx, item=product)
            elif _free(w, y + size + 2, cx):
                w.place(gd.BELTS[0], y + size + 1, cx, direction=2)
                w.place("sink", y + size + 2, cx, item=product)
        return


def random_factory(rng: np.random.Generator | int | None = None, h: int = 11, w: int = 11, *,
                   items=ITEMS, machines: bool = True, noise: int = 3) -> World:
    """A random factory on an ``h`` x ``w`` grid that usually moves something."""
    rng = np.random.default_rng(rng)
    world = World(h, w)
    for _ in range(int(rng.integers(1, 4))):
        item = items[int(rng.integers(0, len(items)))]
        for _ in range(10):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            d = int(rng.integers(0, 4))
            by, bx = y + OFF[d][0], x + OFF[d][1]
            if _free(world, y, x) and _free(world, by, bx):
                world.place("source", y, x, item=item)
                if rng.random() < 0.15:
                    world.rates[(y, x)] = float(rng.choice([1.0, 4.0, 10.0]))
                path: list = []
                _walk(world, rng, by, bx, d, item, int(rng.integers(2, h + w)), path, items)
                _taps(world, rng, path, item, items)
                break
    if machines and rng.random() < 0.4:
        _machine(world, rng)
    kinds = ("belt", "belt", "ug", "inserter", "splitter")
    for _ in range(int(rng.integers(0, noise + 1))):
        y, x, d = int(rng.integers(0, h)), int(rng.integers(0, w)), int(rng.integers(0, 4))
        k = kinds[int(rng.integers(0, len(kinds)))]
        if k == "belt":
            _try(world, gd.BELTS[int(rng.integers(0, 3))], y, x, direction=d)
        elif k == "ug":
            _try(world, gd.UNDERGROUNDS[int(rng.integers(3))], y, x, direction=d, io=int(rng.integers(1, 3)))
        elif k == "inserter":
            _try(world, "inserter", y, x, direction=d)
        else:
            _try(world, gd.SPLITTERS[int(rng.integers(0, 3))], y, x, direction=d)
    return world
