"""The five difficulty levels built from a reference solution (throttled, entities missing, only
sources and sinks), source caps, and :func:`make_task`."""

from __future__ import annotations

from collections import Counter

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import IO_INPUT, Entity, World
from factorion.tasks.base import (
    ALL_FAMILIES,
    BELT_NAMES,
    BELTLIKE,
    FIXED,
    INSERTER_NAMES,
    LEVELS,
    RECIPE_FAMILIES,
    SCALE_FAMILIES,
    SPLITTER_NAMES,
    UGS,
    Task,
    fixed_only,
    ingredients_of,
    pick,
    product_of,
    replace,
    step,
    ug_partner,
    world_items,
)
from factorion.tasks.families import check_factory, solved_factory
from factorion.tasks.scale import build_scale


def _throughput(world: World) -> float:
    from factorion.sim import throughput
    return float(throughput(world))


_MACHINE_DOWN = {"assembling-machine-3": ("assembling-machine-2", "assembling-machine-1"),
                 "assembling-machine-2": ("assembling-machine-1",),
                 "steel-furnace": ("stone-furnace",)}
_INSERTER_DOWN = {"fast-inserter": ("inserter",), "bulk-inserter": ("inserter",)}


def throttle_candidates(solution: World, rng) -> list[World]:
    """Worlds with one part of ``solution`` made slower: a run of belts, an underground pair or a
    splitter a tier lower, an inserter slower, a machine a tier lower (shuffled). A lowered belt
    tier or inserter kind stays in use elsewhere in the world, so the fix can be read off it."""
    return [_throttled(solution, plan) for plan in _throttle_plans(solution, rng)]


def _throttle_plans(solution: World, rng) -> list[list[tuple[Entity, str]]]:
    """The candidates of :func:`throttle_candidates` as (entity, lower name) replacements, with the
    same draws, filters and shuffle, and no world built (level 2 builds the few it simulates)."""
    plans: list[list[tuple[Entity, str]]] = []
    ents = solution.entities(obstacles=False)
    count = Counter(e.name for e in ents)
    for e in ents:
        if e.name in BELT_NAMES and gd.tier(e.name) > 0:
            low = gd.BELTS[int(rng.integers(0, gd.tier(e.name)))]
            run, c = [e], e
            for _ in range(int(rng.integers(0, 4))):
                n = solution.entity_at(*step((c.y, c.x), c.direction))
                if n is None or n.name != e.name:
                    break
                run.append(n)
                c = n
            plan = [(r, low) for r in run]
        elif e.name in UGS and e.io == IO_INPUT and gd.tier(e.name) > 0:
            o = ug_partner(solution, e)
            if o is None:
                continue
            low = gd.UNDERGROUNDS[int(rng.integers(0, gd.tier(e.name)))]
            plan = [(e, low), (o, low)]
        elif e.name in SPLITTER_NAMES and gd.tier(e.name) > 0:
            plan = [(e, gd.SPLITTERS[int(rng.integers(0, gd.tier(e.name)))])]
        elif e.name in _INSERTER_DOWN:
            plan = [(e, pick(rng, _INSERTER_DOWN[e.name]))]
        elif e.name in _MACHINE_DOWN:
            plan = [(e, pick(rng, _MACHINE_DOWN[e.name]))]
        else:
            continue
        # the entity names of the world after the plan (a cell replaced twice counts once)
        after = count.copy()
        for r, name in {(r.y, r.x): (r, name) for r, name in plan}.values():
            after[r.name] -= 1
            after[name] += 1
        # a belt tier or inserter kind lowered must still be seen elsewhere (the clue the fix needs)
        if e.name in BELTLIKE and gd.tier(e.name) not in {gd.tier(n) for n, k in after.items()
                                                            if k > 0 and n in BELTLIKE}:
            continue
        if e.name in INSERTER_NAMES and after[e.name] <= 0:
            continue
        plans.append(plan)
    return [plans[i] for i in rng.permutation(len(plans))]


def _throttled(solution: World, plan: list[tuple[Entity, str]]) -> World:
    w = solution.copy()
    for r, name in plan:
        replace(w, r, name)
    return w


def removable(world: World) -> list[Entity]:
    return [e for e in world.entities(obstacles=False) if e.name not in FIXED]


def _apply_level(solution: World, ref: float, level: int, rng, n_missing: int) -> tuple[World, list] | None:
    if level == 1:
        return solution.copy(), []
    if level == 2:
        for plan in _throttle_plans(solution, rng)[:16]:
            w = _throttled(solution, plan)
            t = _throughput(w)
            if 0 < t < ref * (1 - 1e-6):
                return w, []
        return None
    if level == 5:
        return fixed_only(solution), []
    ents = removable(solution)
    if level == 3:
        for i in rng.permutation(len(ents))[:24]:
            w = solution.copy()
            e = ents[int(i)]
            w.remove(e.y, e.x)
            if _throughput(w) < ref * (1 - 1e-6):
                return w, [e]
        return None
    hi = min(n_missing, len(ents))
    if hi < 2:
        return None
    for _ in range(12):
        n = int(rng.integers(2, hi + 1))
        chosen = sorted(int(i) for i in rng.choice(len(ents), size=n, replace=False))
        w = solution.copy()
        for i in chosen:
            w.remove(ents[i].y, ents[i].x)
        if _throughput(w) < ref * (1 - 1e-6):
            return w, [ents[i] for i in chosen]
    return None


def task_recipes(family: str, solution: World) -> tuple[str, ...]:
    if family not in RECIPE_FAMILIES:
        return ()
    ents = solution.entities(obstacles=False)
    rs = {e.recipe for e in ents if e.recipe}
    ms = [e for e in ents if e.name in gd.ASSEMBLERS]
    # producers first: a recipe whose product another machine here takes comes first
    prods = {product_of(r) for r in rs}
    return tuple(sorted(rs, key=lambda r: (any(i in prods for i in ingredients_of(r)), r))) if ms else ()


def cap_sources(solution: World) -> None:
    """Cap every source at what the reference solution draws from it (``world.rates``).

    With unlimited sources a faster belt or inserter anywhere would beat the reference, so the
    reference would measure the tier drawn rather than the task; capped, the reference solution
    is the best any build can do with this supply (a build can only tie it), and a throughput
    ratio of 1 means solved."""
    from factorion.sim import simulate
    _cap(solution, simulate(solution))


def _cap(solution: World, res) -> None:
    """:func:`cap_sources` from ``res``, the simulation of ``solution`` (as it is: uncapped)."""
    for e in solution.entities(obstacles=False):
        if e.name == "source":
            used = sum(res.flow.get((e.y, e.x), {}).values())
            if used > 0:
                solution.rates[(e.y, e.x)] = float(used)


def make_task(family: str, level: int, size: int = 11, seed: int | None = None,
              n_missing: int | None = None) -> Task:
    """A task of ``family`` at ``level`` on a ``size`` x ``size`` grid; the same seed gives the
    same task (and, level 2 aside, the same reference solution at every level)."""
    from factorion.sim import simulate
    check_factory(family, size)
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level}")
    if n_missing is None:
        n_missing = 5
    if n_missing < 2:
        raise ValueError(f"n_missing must be at least 2, got {n_missing}")
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    fam = ALL_FAMILIES.index(family)
    for attempt in range(60):
        rng = np.random.default_rng([seed, fam, size, attempt])
        if family == "scale":
            solution = build_scale(size, rng)
            if solution is None:
                continue
        else:
            solution = solved_factory(family, size, rng, throttle=level == 2)
        res = simulate(solution)  # its total is throughput(solution), and it gives the caps
        ref = res.total
        if ref <= 0:
            continue
        if family not in SCALE_FAMILIES:  # scale tasks: unlimited sources, the area is the limit
            _cap(solution, res)
        got = _apply_level(solution, ref, level, np.random.default_rng([seed, fam, size, attempt, level]),
                           n_missing)
        if got is None:
            continue
        world, removed = got
        assert ref > 0
        return Task(family, level, seed, world, solution, ref, removed, task_recipes(family, solution),
                    world_items(solution))
    raise RuntimeError(f"no {family} task at level {level}, size {size}, seed {seed}")
