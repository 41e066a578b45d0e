"""The scripted planner and its demonstrations (factorion.env.planner)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from factorion import tasks as T
from factorion.core import gamedata as gd
from factorion.core.world import SOURCE, Entity, World
from factorion.env import planner as P


def sim():
    return pytest.importorskip("factorion.sim")


def _broken(fam: str, seed: int, n: int) -> tuple[World, World]:
    """(a solved factory with n entities removed, the factory)."""
    sol = T.solved_factory(fam, 11, seed)
    w = sol.copy()
    rng = np.random.default_rng(seed)
    ents = T.removable(sol)
    for i in rng.choice(len(ents), size=min(n, len(ents)), replace=False):
        w.remove(ents[int(i)].y, ents[int(i)].x)
    return w, sol


# ----------------------------------------------------------------------------- actions_to_build


@pytest.mark.parametrize("family", T.FAMILIES)
def test_actions_to_build_replays_start_to_target(family):
    for seed in range(4):
        sol = T.solved_factory(family, 11, seed)
        for start in (_broken(family, seed, 3)[0], T.fixed_only(sol), sol):
            acts = P.actions_to_build(start, sol)
            assert P.apply_actions(start, acts) == sol
            assert all(a[0] == "place" for a in acts)
        acts = P.actions_to_build(sol, T.fixed_only(sol))  # tearing down: removals only
        assert all(a[0] == "remove" for a in acts) and P.apply_actions(sol, acts) == T.fixed_only(sol)


def test_actions_to_build_replaces_changed_entities():
    sol = T.solved_factory("belt", 11, 3, throttle=True)
    slow = sol.copy()
    belts = [e for e in sol.entities() if e.name.endswith("transport-belt")]
    T.replace(slow, belts[0], "transport-belt")
    acts = P.actions_to_build(slow, sol)
    assert [a[0] for a in acts] == ["remove", "place"]
    assert acts[1][1] == belts[0]
    assert P.apply_actions(slow, acts) == sol
    # between two unrelated factories of the same fixed parts
    other = T.fixed_only(sol)
    T.fill(other, 0, underground=False)
    assert P.apply_actions(other, P.actions_to_build(other, sol)) == sol


def test_actions_to_build_orders_machines_first_then_flow():
    sol = T.solved_factory("tree2", 11, 4)
    acts = P.actions_to_build(T.fixed_only(sol), sol)
    kinds = [a[1].name for a in acts]
    n_mach = sum(k.startswith("assembling") for k in kinds)
    assert all(k.startswith("assembling") for k in kinds[:n_mach])
    assert Counter(kinds) == Counter(e.name for e in T.removable(sol))


def test_actions_to_build_refuses_different_fixed_parts():
    a = T.solved_factory("belt", 11, 0)
    b = T.solved_factory("belt", 11, 1)
    with pytest.raises(ValueError):
        P.actions_to_build(a, b)
    with pytest.raises(ValueError):
        P.actions_to_build(a, World(5, 5))


# ----------------------------------------------------------------------------- palette / upgrade


def test_palette_and_upgrade():
    sol = T.solved_factory("belt", 11, 3, throttle=True)
    pal = P.palette_of(sol)
    tier = max(gd.tier(e.name) for e in sol.entities() if e.name in T.BELTLIKE)
    assert pal.tier == tier
    slow = sol.copy()
    for e in sol.entities():
        if e.name in T.BELT_NAMES:
            T.replace(slow, e, "transport-belt")
            break
    assert P.upgrade(slow, pal) == sol
    empty = P.palette_of(T.fixed_only(sol))
    assert empty == P.Palette(3, "fast-inserter", "assembling-machine-3", "steel-furnace")


# ----------------------------------------------------------------------------- plan (needs the sim)


def _valid(w: World, task) -> None:
    assert w.shape == task.world.shape
    fixed = Counter(e for e in w.entities() if e.name in T.FIXED)
    assert fixed == Counter(e for e in task.world.entities() if e.name in T.FIXED)
    # every entity sits where World.place allows it: rebuilding gives the same world
    rebuilt = T.fixed_only(w)
    T.place_all(rebuilt, T.removable(w))
    assert rebuilt == w


@pytest.mark.parametrize("level", T.LEVELS)
def test_plan_belt_tasks(level):
    thr = sim().throughput
    for fam in ("belt", "underground", "splitter"):
        for seed in range(3):
            task = T.make_task(fam, level, seed=seed)
            w = P.plan(task, budget_s=1.0)
            _valid(w, task)
            assert thr(w) > 0, (fam, level, seed)
            if level in (1, 3, 5):
                assert thr(w) >= task.reference * 0.999, (fam, level, seed)


def test_plan_keeps_a_working_factory():
    thr = sim().throughput
    task = T.make_task("smelting", 1, seed=2)
    w = P.plan(task, budget_s=1.0)
    assert thr(w) >= task.reference


@pytest.mark.parametrize("family", ["smelting", "assembler1", "assembler2", "tree2"])
def test_plan_recipe_tasks(family):
    thr = sim().throughput
    ok = 0
    for level in (3, 5):
        for seed in range(3):
            task = T.make_task(family, level, seed=seed)
            w = P.plan(task, budget_s=1.0)
            _valid(w, task)
            ok += thr(w) > 0
    assert ok >= 5


def test_plan_never_reads_the_solution():
    sim()
    task = T.make_task("assembler1", 5, seed=1)
    blind = T.Task(task.family, task.level, task.seed, task.world, World(1, 1), 1.0, [], task.recipes,
                   task.items)
    assert P.plan(blind, budget_s=1.0) == P.plan(task, budget_s=1.0)


def test_evaluate_planner_shape():
    sim()
    res = P.evaluate_planner(n_seeds=1, size=11, budget_s=0.5, families=("belt",), levels=(1, 3))
    assert set(res) == {"belt"} and set(res["belt"]) == {1, 3}
    assert res["belt"][1]["ratio"] >= 0.999
    assert set(res["belt"][1]) == {"ratio", "min", "solved", "time_s"}
    assert "belt" in P.format_table(res)


@pytest.mark.slow
def test_planner_table():
    sim()
    res = P.evaluate_planner(n_seeds=5, size=11)
    for fam, row in res.items():
        assert row[1]["ratio"] >= 0.999, fam
        for lvl in (3, 4, 5):
            assert row[lvl]["ratio"] > 0, (fam, lvl)


def test_source_entity_kind_untouched():
    # the planner's helper that strips belts leaves sources, machines and inserters
    sol = T.solved_factory("smelting", 11, 0)
    s = P.strip(sol)
    assert {e.name for e in s.entities()} >= {SOURCE}
    assert not any(e.name in T.BELTLIKE for e in s.entities())
    assert all(e in sol.entities() for e in s.entities())
    assert isinstance(s, World) and isinstance(sol.entities()[0], Entity)
