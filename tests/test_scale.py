"""Scale tasks (factorion.tasks.scale): k parallel machines that fill the area."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from factorion import tasks as T
from factorion.core import gamedata as gd
from factorion.core.world import SINK, SOURCE, Entity, World
from factorion.tasks import scale as S

sim = pytest.importorskip("factorion.sim")


@pytest.mark.parametrize("size", [16, 20, 24, 32])
def test_every_reference_reaches_its_stated_throughput(size):
    made = 0
    for seed in range(8):
        f = S.scale_factory(size, np.random.default_rng([seed, size]))
        if f is None:
            continue
        made += 1
        res = sim.simulate(f.world)
        assert res.total == pytest.approx(f.stated, rel=1e-9), (size, seed, f.designs[0][0])
        assert not res.jammed
        # as many machines as the designs say, each of them working
        d = f.designs[0][0]
        machines = [e for e in f.world.entities() if e.name == d.machine]
        assert len(machines) == d.machines * len(f.designs)
        assert all(sum(res.flow[(m.y, m.x)].values()) > 0 for m in machines)
    assert made >= 6


def test_stated_rate_from_game_numbers():
    # gears in assembling-machine-2 (0.75 / 0.5 s = 1.5 crafts/s) need 3 plates/s: two fast
    # inserters (2 x 2.308/s) feed it, one takes the gears out
    d = S.Design("iron-gear-wheel", ("iron-plate",), "iron-gear-wheel", "assembling-machine-2",
                 "fast-inserter", 1, 4, "shared-input")
    ins, n_out, c = S.machine_plan(d, 0)
    assert (len(ins), n_out, c) == (2, 1, pytest.approx(1.5))
    assert S.stated_rate(d) == pytest.approx(8 * 1.5)
    # red belt: 30 plates/s feed 10 such machines (two rows of 5), an output lane takes 15 gears/s
    assert S.largest_k(d, 30) == 5
    assert gd.belt_rate("fast-transport-belt") == 30


def test_circuit_plan_uses_long_inserters_on_the_far_belt():
    d = S.Design("electronic-circuit", ("copper-cable", "iron-plate"), "electronic-circuit",
                 "assembling-machine-2", "fast-inserter", 2, 2, "one-side")
    ins, n_out, c = S.machine_plan(d, 1)  # near belt: iron (index 1)
    names = Counter(name for _, name in ins)
    assert names[S.LONG] >= 1 and len(ins) <= 3 and n_out >= 1
    # fast inserters on iron (1 per craft), long-handed (1.2/s) on cable (3 per craft)
    assert c == pytest.approx(min(1.5, names["fast-inserter"] * gd.inserter_rate("fast-inserter"),
                                  names[S.LONG] * 1.2 / 3))


@pytest.mark.parametrize("size", [16, 32])
def test_make_task_scale_levels(size):
    for level in T.LEVELS:
        t = T.make_task("scale", level, size=size, seed=3)
        assert t.family == "scale" and t.reference > 0 and t.world.shape == (size, size)
        assert sim.throughput(t.solution) == pytest.approx(t.reference)
        if level == 5:
            assert {e.name for e in t.world.entities()} <= set(T.FIXED)
            assert any(e.name == SOURCE for e in t.world.entities())
            assert any(e.name == SINK for e in t.world.entities())
        else:
            assert sim.throughput(t.world) <= t.reference * (1 + 1e-9)


def test_scale_is_named_only():
    assert "scale" not in T.FAMILIES
    with pytest.raises(ValueError, match="size"):
        T.make_task("scale", 5, size=11, seed=0)
    with pytest.raises(ValueError, match="scale_factory"):
        T.solved_factory("scale", 16, 0)
    cur = T.Curriculum(families=("scale", "belt"))
    fam, level = cur.sample(np.random.default_rng(0))
    assert fam in ("scale", "belt") and level == 1


def test_env_offers_scale_tasks():
    from factorion.env.factorio_env import FactorioEnv
    env = FactorioEnv(size=16, family="scale", level=5)
    obs, info = env.reset(seed=0)
    assert info["family"] == "scale" and info["level"] == 5


@pytest.mark.parametrize(("pre", "recipe"), S.TWO_STEP)
@pytest.mark.parametrize("machine", ["assembling-machine-2", "assembling-machine-3"])
def test_pairs_reach_their_stated_throughput(pre, recipe, machine):
    """Two-step recipes: the first machine hands its product straight to the second."""
    d = S.pair_design(pre, recipe, machine, "fast-inserter", 1, k=2)
    assert S.fits_belts(d)
    w = World(12, 19)
    assert S.place_design(w, d, 1, 1)
    w.place(Entity(SOURCE, 1, 0, item=d.ingredients[0]))  # far belt (long-handed inserters)
    w.place(Entity(SOURCE, 2, 0, item=d.ingredients[1]))  # near belt
    w.place(Entity(SINK, 8, 18, item=d.product))
    assert not T.fill(w, d.tier)
    assert not S.join_outputs(w, S.output_ends(d, 1, 1), d.product, d.tier)
    res = sim.simulate(w)
    assert res.total == pytest.approx(S.stated_rate(d), rel=1e-9)
    n_a, n_x, n_t, n_out, c = S.pair_plan(d)
    assert S.stated_rate(d) == pytest.approx(2 * c * gd.recipe(recipe).results[0][1])
    assert all(sum(res.flow[(e.y, e.x)].values()) > 0 for e in w.entities() if e.name == machine)


GROUPS = [(*S.TWO_STEP[0], "ABA"), (*S.TWO_STEP[0], "ABABA"),  # cables to circuits: 2:1 and 3:2
          (*S.TWO_STEP[1], "BAB"), (*S.TWO_STEP[1], "BABAB")]  # one gear machine feeds two science


@pytest.mark.parametrize(("pre", "recipe", "group"), GROUPS)
@pytest.mark.parametrize("machine", ["assembling-machine-2", "assembling-machine-3"])
def test_groups_reach_their_stated_throughput(pre, recipe, group, machine):
    """Groups of two-step machines (3 cable machines to 2 circuit machines in ABABA) deliver what
    group_plan works out from the game's numbers, every machine of the group working."""
    d = replace(S.pair_design(pre, recipe, machine, "fast-inserter", 1, k=2), group=group)
    assert min(S.group_plan(d).crafts) > 0
    assert S.fits_belts(d)
    w = World(12, d.width + 3)
    assert S.place_design(w, d, 1, 1)
    w.place(Entity(SOURCE, 1, 0, item=d.ingredients[0]))
    w.place(Entity(SOURCE, 2, 0, item=d.ingredients[1]))
    w.place(Entity(SINK, 8, d.width + 2, item=d.product))
    assert not T.fill(w, d.tier)
    assert not S.join_outputs(w, S.output_ends(d, 1, 1), d.product, d.tier)
    res = sim.simulate(w)
    assert res.total == pytest.approx(S.stated_rate(d), rel=1e-9)
    assert all(sum(res.flow[(e.y, e.x)].values()) > 0 for e in w.entities() if e.name == machine)


def test_three_cable_machines_feed_two_circuit_machines_at_full_speed():
    """The 3:2 ratio from the recipes: each circuit machine runs at its full crafting speed."""
    one = S.pair_design("copper-cable", "electronic-circuit", "assembling-machine-3", "fast-inserter", 1)
    d = replace(one, group="ABABA")
    full = gd.crafting_speed(d.machine) / gd.recipe("electronic-circuit").energy
    plan = S.group_plan(d)
    assert [c for c, m in zip(plan.crafts, d.group, strict=True) if m == "B"] == pytest.approx([full, full])
    assert S.stated_rate(d) == pytest.approx(2 * full)
