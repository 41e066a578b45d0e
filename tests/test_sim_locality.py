"""sim.locality: adding or removing a *detached* entity never changes the simulated throughput
(bit for bit), so the vector env may skip re-simulating those edits."""

from __future__ import annotations

import numpy as np
import pytest

from factorion.core import gamedata as gd
from factorion.core.world import KIND, KINDS, PART, World, WorldError
from factorion.env.baselines import RandomAgent
from factorion.env.vector import FactorioVectorEnv
from factorion.sim import throughput, throughput_batch
from factorion.sim.fuzz import random_factory
from factorion.sim.locality import detached_batch

PLACEABLE = gd.BELTS + gd.UNDERGROUNDS + gd.SPLITTERS + gd.INSERTERS + gd.CHESTS


def _detached(world: World, y: int, x: int) -> bool:
    return bool(detached_batch(world.grid[None], np.array([0]), np.array([y * world.width + x]))[0])


def _anchors(world: World):
    ys, xs = np.nonzero((world.grid[PART] == 1) & (world.grid[KIND] > 0))
    return list(zip(ys.tolist(), xs.tolist(), strict=True))


def test_removing_a_detached_entity_keeps_the_throughput_exactly():
    n_detached = n_total = 0
    for seed in range(150):
        world = random_factory(seed, 11, 11)
        t0 = throughput(world)
        for y, x in _anchors(world):
            if KINDS[world.grid[KIND, y, x]] not in gd.MODELLED:
                continue
            n_total += 1
            if not _detached(world, y, x):
                continue
            n_detached += 1
            w = world.copy()
            w.remove(y, x)
            assert throughput(w) == t0, (seed, y, x, KINDS[world.grid[KIND, y, x]])
    assert n_detached >= 20 and n_detached < n_total


def test_placing_a_detached_entity_keeps_the_throughput_exactly():
    rng = np.random.default_rng(0)
    n_detached = 0
    for seed in range(300):
        world = random_factory(seed, 11, 11)
        t0 = throughput(world)
        for _ in range(40):
            name = PLACEABLE[int(rng.integers(len(PLACEABLE)))]
            y, x, d = int(rng.integers(11)), int(rng.integers(11)), int(rng.integers(4))
            w = world.copy()
            try:
                w.place(name, y, x, direction=d, io=int(rng.integers(1, 3)) if name in gd.UNDERGROUNDS else 0)
            except WorldError:
                continue
            if _detached(w, y, x):
                n_detached += 1
                assert throughput(w) == t0, (seed, name, y, x, d)
    assert n_detached >= 200


def test_attached_cases_are_not_detached():
    w = World(7, 9)
    w.place("source", 3, 0, item="iron-plate")
    w.place("sink", 3, 8, item="iron-plate")
    for x in range(1, 8):
        w.place("transport-belt", 3, x, direction=1)
    probe = w.copy()
    probe.place("wooden-chest", 5, 4)                          # two rows off the line
    assert _detached(probe, 5, 4)
    probe.place("long-handed-inserter", 5, 6, direction=0)    # reaches the line: attached...
    assert not _detached(probe, 5, 6)
    assert not _detached(probe, 5, 4)                          # ...and so is the chest near it
    probe = w.copy()
    probe.place("wooden-chest", 4, 4)                          # next to the line
    assert not _detached(probe, 4, 4)
    diag = World(5, 5)
    diag.place("sink", 1, 1, item="iron-plate")
    diag.place("transport-belt", 2, 2, direction=0)            # only diagonal to the sink
    diag.place("wooden-chest", 0, 0)
    assert _detached(diag, 2, 2) and _detached(diag, 0, 0)
    # an underground with a same-kind underground in reach on its axis is never detached
    probe = w.copy()
    probe.place("underground-belt", 0, 1, direction=1, io=1)
    probe.place("underground-belt", 0, 5, direction=1, io=2)
    assert not _detached(probe, 0, 1) and not _detached(probe, 0, 5)
    probe.remove(0, 5)
    probe.place("fast-underground-belt", 0, 5, direction=1, io=2)  # another tier: no pairing
    assert _detached(probe, 0, 1)
    # machines and the task's own sources/sinks never are
    probe = w.copy()
    probe.place("assembling-machine-1", 4 - 4, 4, recipe="iron-gear-wheel")
    assert not _detached(probe, 0, 4) and not _detached(w, 3, 0) and not _detached(w, 0, 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_vector_env_skipping_matches_full_resimulation(seed):
    """Random trajectories (place-heavy, so grids fill up): after every step each sub-env's
    throughput equals a fresh simulation of its grid, and skipping happened."""
    B = 16
    venv = FactorioVectorEnv(B, 11, task_pool=32, task_pool_refresh=0.0, max_steps=60)
    venv.reset(seed=seed)
    agent = RandomAgent(seed, op_weights=(0.7, 0.25, 0.05))
    for _ in range(150):
        venv.step(agent.act(venv.action_masks()))
        full = throughput_batch(venv.grids, rates=venv.rate_grids)
        np.testing.assert_array_equal(venv.thr, full)
    assert venv.n_skipped.sum() > 50


def test_numba_cache_is_stamped_with_the_whole_package():
    """numba stamps a cached function with its own file only; the package's locator stamps every
    compiled function of factorion.sim with all its sources, so editing solver.py also
    recompiles sim.throughput_batch's loop (in __init__.py) instead of keeping stale code."""
    import inspect

    from factorion.sim import batch_solve
    from factorion.sim import graph as G
    from factorion.sim.solver import solve
    if not hasattr(G, "PackageCacheLocator"):
        pytest.skip("FACTORION_NOJIT: nothing is compiled")
    stamps = set()
    for fn in (batch_solve, solve, G.build, detached_batch.__globals__["_detached_batch"]):
        loc = G.PackageCacheLocator.from_function(fn.py_func, inspect.getfile(fn.py_func))
        assert loc is not None
        stamps.add(loc.get_source_stamp())
        assert type(fn._cache._impl._locator) is G.PackageCacheLocator
    assert len(stamps) == 1
