"""``factorion build``: from a task (sources and sinks on a grid) to a factory a player pastes.

A task is either a blueprint (string or file: tagged infinity chests as sources/sinks, anything
else as obstacles, see the README) or a small text spec::

    size 11 11                 # height width
    source 5 0 iron-plate      # row col item [rate items/s]
    sink 5 10 iron-gear-wheel
    obstacle 3 4               # row col [height width]

The search keeps the best factory found within the time budget, every candidate checked in the
simulator: the scripted planner's, and -- with a checkpoint -- the policy's greedy roll-out
followed by sampled roll-outs. The exported string is loaded back with factorio-draftsman to
check the game would accept it.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

from . import gamedata as gd
from .world import SINK, SOURCE, Entity, World, WorldError

MAX_RECIPES = 4


def parse_spec(text: str) -> World:
    """A world from the text spec (see the module docstring); WorldError names the bad line."""
    world = None
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        try:
            key, args = parts[0], parts[1:]
            if key == "size":
                world = World(int(args[0]), int(args[1]))
                continue
            if world is None:
                raise WorldError("the spec must start with 'size H W'")
            y, x = int(args[0]), int(args[1])
            if key in (SOURCE, SINK):
                world.place(Entity(key, y, x, item=args[2]))
                if key == SOURCE and len(args) > 3:
                    world.rates[(y, x)] = float(args[3])
            elif key == "obstacle":
                h, w = (int(args[2]), int(args[3])) if len(args) > 3 else (1, 1)
                for dy in range(h):
                    for dx in range(w):
                        world.place(Entity("obstacle", y + dy, x + dx))
            else:
                raise WorldError(f"unknown keyword {key!r} (size, source, sink, obstacle)")
        except (IndexError, ValueError) as e:
            raise WorldError(f"spec line {n}: {line.strip()!r}: {e}") from None
    if world is None:
        raise WorldError("empty spec: expected 'size H W' and sources/sinks")
    return world


def _makers(item: str) -> list[str]:
    return [r for r in gd.recipe_names() if not gd.recipe(r).uses_fluid
            and any(i == item for i, _ in gd.recipe(r).results)
            and any(gd.machine_can_make(m, r) for m in gd.ASSEMBLERS)]


def infer_task(world: World) -> SimpleNamespace:
    """A task for ``world``: its items, the recipes that turn source items into sink items (at
    most two steps deep) and the family the planner should treat it as."""
    ents = world.entities()
    ins = sorted({e.item for e in ents if e.name == SOURCE})
    outs = sorted({e.item for e in ents if e.name == SINK})
    if not ins or not outs:
        raise WorldError("a task needs at least one source and one sink")
    recipes: list[str] = []
    family = "belt"
    if set(outs) <= set(ins):
        n_src = sum(e.name == SOURCE for e in ents)
        n_snk = sum(e.name == SINK for e in ents)
        family = "splitter" if max(n_src, n_snk) > 1 else "belt"
    elif all(gd.smelting_recipe_for(i) and gd.recipe(gd.smelting_recipe_for(i)).results[0][0] in outs
             for i in ins):
        family = "smelting"
    else:
        for out in outs:
            for r in _makers(out):
                ings = [i for i, _ in gd.recipe(r).ingredients]
                if all(i in ins for i in ings):
                    recipes.append(r)
                    family = "assembler1" if len(ings) == 1 else "assembler2"
                    break
                subs = [next((s for s in _makers(i) if all(j in ins for j, _ in gd.recipe(s).ingredients)),
                             None) for i in ings if i not in ins]
                if subs and all(subs):
                    recipes += [*subs, r]
                    family = "tree2"
                    break
        if not recipes:
            raise WorldError(f"no recipe chain of at most two steps turns {ins} into {outs}")
    return SimpleNamespace(world=world, recipes=tuple(dict.fromkeys(recipes))[:MAX_RECIPES],
                           items=tuple(sorted(set(ins) | set(outs))), family=family, level=5,
                           reference=1.0, solution=None, removed=[])


@dataclass
class BuildResult:
    world: World
    throughput: float
    method: str
    candidates: int
    seconds: float
    blueprint: str


def validate_export(text: str) -> list[str]:
    """Warnings factorio-draftsman raises when loading ``text`` (an error raises)."""
    from draftsman.blueprintable import get_blueprintable_from_string
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_blueprintable_from_string(text)
    return [str(c.message) for c in caught]


def build(world: World, checkpoint: str | None = None, budget_s: float = 10.0, seed: int = 0) -> BuildResult:
    """The best factory found for the task ``world`` within ``budget_s`` seconds."""
    from .planner import plan
    from .sim import throughput
    t0 = time.perf_counter()
    task = infer_task(world)
    best: list = [(-1.0, 0), None, ""]
    n = 0

    def consider(w: World, method: str) -> None:
        nonlocal n
        n += 1
        key = (float(throughput(w)), -len(w.entities()))
        if key > best[0]:
            best[:] = [key, w, method]

    for palette in ("top", "match"):
        consider(plan(task, budget_s=max(0.5, budget_s / 4), palette=palette), f"planner ({palette})")
    if checkpoint:
        import torch

        from .evaluate import BenchTask, policy_agent, run_env_agent
        from .model import Policy
        policy = Policy.load_from_checkpoint(checkpoint)
        task.reference = max(best[0][0], 1e-6)  # normalisation only: the planner's throughput
        bt = BenchTask("build", task.family, 5, max(world.shape), task)
        act, kw = policy_agent(policy, greedy=True)
        consider(run_env_agent(bt, act, kw, max_steps=48).world, "policy (greedy)")
        torch.manual_seed(seed)
        act, kw = policy_agent(policy, greedy=False)
        while time.perf_counter() - t0 < budget_s:
            consider(run_env_agent(bt, act, kw, max_steps=48).world, "policy (sampled)")
    w = best[1]
    text = w.to_string(label="factorion build")
    return BuildResult(w, best[0][0], best[2], n, time.perf_counter() - t0, text)
