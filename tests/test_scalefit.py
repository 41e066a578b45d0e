"""Scale-out blocks fitted around obstacles (factorion.env.scalefit)."""

from __future__ import annotations

import pytest

from factorion.build import parse_spec
from factorion.core import gamedata as gd
from factorion.core.world import OBSTACLE, World
from factorion.env import scalefit as SF
from factorion.env import scaleout as SO
from factorion.tasks.scale import Design

sim = pytest.importorskip("factorion.sim")


def _lattice_task() -> World:
    """16x16, unlimited iron plates in, gears out, 1x1 obstacles (poles) every 4 cells: no solid
    block of more than two machines fits anywhere."""
    spec = "size 16 16\nsource 8 0 iron-plate\nsink 8 15 iron-gear-wheel\n"
    spec += "".join(f"obstacle {y} {x} 1 1\n" for y in range(2, 16, 4) for x in range(3, 15, 4))
    return parse_spec(spec)


def _gears(k: int, tier: int = 0) -> Design:
    return Design("iron-gear-wheel", ("iron-plate",), "iron-gear-wheel", "assembling-machine-3",
                  "fast-inserter", tier, k, "one-side")


def _cells(e) -> set:
    w, h = e.size
    return {(e.y + i, e.x + j) for i in range(h) for j in range(w)}


def test_fitted_block_skips_obstacles_and_keeps_what_works():
    world = _lattice_task()
    ents = SF.fit_entities(world, _gears(5), 2, 0)  # input belt on an obstacle row
    assert ents is not None
    taken = {c for e in world.entities() for c in _cells(e)}
    assert all(not (_cells(e) & taken) for e in ents)
    at = {c: e for e in ents for c in _cells(e)}
    for e in ents:
        if e.name in gd.INSERTERS:  # every inserter still moves between kept parts
            pick, drop = _ends(e)
            assert pick in at and drop in at
    ugs = [e for e in ents if e.name in gd.UNDERGROUNDS]
    assert ugs and sum(e.io == 1 for e in ugs) == sum(e.io == 2 for e in ugs)
    machines = [e for e in ents if e.name in gd.ASSEMBLERS]
    assert 1 <= len(machines) < 5  # obstacles in machine rows cost machines


def _ends(e):
    reach = 2 if e.name == "long-handed-inserter" else 1
    dy, dx = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}[e.direction]
    return (e.y + reach * dy, e.x + reach * dx), (e.y - reach * dy, e.x - reach * dx)


def test_obstacle_run_longer_than_the_underground_reach_is_refused():
    world = World(10, 20)
    reach = gd.underground_max_distance(gd.UNDERGROUNDS[0])
    # a wall across the input belt row (row 0 of the block) in the middle of the block
    for x in range(4, 4 + reach + 1):
        world.place(OBSTACLE, 0, x)
    assert SF.fit_entities(world, _gears(5), 0, 0) is None


def test_scale_out_fits_blocks_around_obstacles():
    world = _lattice_task()
    solid = SO.scale_out(world, budget_s=20.0, fit_obstacles=False)
    fitted = SO.scale_out(world, budget_s=20.0)
    n_solid = sum(e.name in gd.ASSEMBLERS for e in solid.world.entities())
    n_fit = sum(e.name in gd.ASSEMBLERS for e in fitted.world.entities())
    assert n_solid <= 2 and solid.throughput == pytest.approx(5.0)
    # measured: 7 machines, 16.92 gears/s (3.4x the solid blocks' 5.0)
    assert n_fit >= 5 and fitted.throughput >= 12.0
    assert "fitted around obstacles" in fitted.label
    assert sim.throughput(fitted.world) == pytest.approx(fitted.throughput)
