"""``factorion build``: from a task (sources and sinks on a grid) to a factory a player pastes.

A task is either a blueprint (string or file: tagged infinity chests as sources/sinks, anything
else as obstacles, see the README) or a small text spec::

    size 11 11                 # height width
    source 5 0 iron-plate      # row col item [rate items/s: the source's cap]
    sink 5 10 iron-gear-wheel  # row col item [rate items/s: the rate wanted]
    obstacle 3 4               # row col [height width]

The search (:func:`build`; ``make evaluate``'s ``build`` agent runs the same function) keeps
the best factory found within the time budget, every candidate checked in the simulator: the
scale-out search's (:mod:`factorion.env.scaleout`: blocks of parallel machines, the most the area
and supply allow, or the fewest entities that meet a sink's wanted rate), the scripted planner's
(two palettes), and -- with a checkpoint -- the policy's greedy roll-out
followed by rounds of sampled roll-outs, batched, from the start and from the best so far. A
task with a reference throughput (a benchmark task) stops as soon as a candidate reaches
``SUCCESS`` x reference. The CLI loads the exported string back with factorio-draftsman to check
the game would accept it.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from factorion.core import blueprint_world as BW
from factorion.core import gamedata as gd
from factorion.core.world import (
    K_OBSTACLE,
    K_SINK,
    K_SOURCE,
    KIND,
    SINK,
    SOURCE,
    Entity,
    World,
    WorldError,
)
from factorion.tasks.base import Task

MAX_RECIPES = 4
SUCCESS = 0.99  # a build within this fraction of the reference counts as solved (= evaluate.SUCCESS)
#: The trained policy shipped in the package (``make policy``); ``factorion build`` uses it by default.
DEFAULT_CHECKPOINT = Path(__file__).parent / "policy" / "default.pt"
#: items/s the policy's ``ratio`` is measured against when the task has no reference and the planner
#: does not run (``planner=False``): a yellow belt's throughput.
POLICY_ONLY_REFERENCE = 15.0


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
                if len(args) > 3:  # a source's cap, a sink's wanted rate
                    world.rates[(y, x)] = _rate(args[3])
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


def _rate(text: str) -> float:
    """A source rate from a spec: a finite number of items/s > 0 (ValueError otherwise)."""
    v = float(text)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"rate {text!r} is not a finite number > 0 (items/s)")
    return v


def _makers(item: str) -> list[str]:
    return [r for r in gd.recipe_names() if not gd.recipe(r).uses_fluid
            and any(i == item for i, _ in gd.recipe(r).results)
            and any(gd.machine_can_make(m, r) for m in gd.ASSEMBLERS)]


def infer_task(world: World) -> Task:
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
    return Task(family=family, level=5, seed=0, world=world, solution=None, reference=0.0, removed=[],
                recipes=tuple(dict.fromkeys(recipes))[:MAX_RECIPES],
                items=tuple(sorted(set(ins) | set(outs))), source="inferred")


@dataclass
class BuildResult:
    world: World
    throughput: float
    method: str
    candidates: int
    seconds: float
    blueprint: str
    cpu_seconds: float = 0.0
    reference: float = 0.0  # the task's reference throughput (0: unknown, as for a CLI task)
    stopped_early: bool = False  # the target (SUCCESS x reference) was reached before the budget ran out
    log: list = field(default_factory=list)  # (seconds, method, throughput) of each new best
    note: str = ""  # with a wanted sink rate: whether it was met, and why not
    model: str = "none"  # the policy that ran: a checkpoint path, "default (...)" or "none"

    @property
    def ratio(self) -> float | None:
        return self.throughput / self.reference if self.reference > 0 else None


def validate_export(text: str) -> list[str]:
    """Warnings factorio-draftsman raises when loading ``text`` (an error raises)."""
    from draftsman.blueprintable import get_blueprintable_from_string
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_blueprintable_from_string(text)
    return [str(c.message) for c in caught]


def load_policy(checkpoint):
    """A :class:`factorion.policy.model.Policy` from a path (a Policy passes through; None and "none"
    give None; "default" is the shipped :data:`DEFAULT_CHECKPOINT`)."""
    if checkpoint is None or not isinstance(checkpoint, str | Path):
        return checkpoint
    if str(checkpoint) == "none":
        return None
    from factorion.policy.model import Policy
    if str(checkpoint) == "default":
        if not DEFAULT_CHECKPOINT.exists():
            raise FileNotFoundError(f"no shipped policy at {DEFAULT_CHECKPOINT} (make policy writes it)")
        checkpoint = DEFAULT_CHECKPOINT
    return Policy.load_from_checkpoint(str(checkpoint))


def checkpoint_available(checkpoint: str | Path) -> bool:
    """Whether :func:`load_policy` can load ``checkpoint``: "default" when the shipped policy is
    there, else an existing file."""
    if str(checkpoint) == "default":
        return DEFAULT_CHECKPOINT.exists()
    return Path(checkpoint).exists()


def model_name(checkpoint) -> str:
    """How a build's output names its policy."""
    if checkpoint is None or str(checkpoint) == "none":
        return "none (planner only)"
    if str(checkpoint) == "default" or (isinstance(checkpoint, str | Path)
                                        and Path(checkpoint).resolve() == DEFAULT_CHECKPOINT.resolve()):
        return f"default ({DEFAULT_CHECKPOINT.name}, shipped in the package)"
    if isinstance(checkpoint, str | Path):
        return str(checkpoint)
    source = getattr(checkpoint, "source", None)  # a policy loaded from a file
    return model_name(source) if source else f"a {type(checkpoint).__name__} object"


def keep_fixed(start: World, world: World) -> World | None:
    """``world`` with ``start``'s sources, sinks and obstacles exactly as they were: the same
    world when it kept them, a copy with the missing ones put back where their cells are still
    empty, or None when it moved, changed or covered one (a candidate a player could not paste
    onto the task). The planner can drop an obstacle cell of a mined window (an obstacle sharing
    cells with a removed entity), so every planner candidate passes through here."""
    ms, mw = _fixed_cells(start), _fixed_cells(world)
    if (ms == mw).all() and (start.grid[:, ms] == world.grid[:, ms]).all():
        return world
    miss = ms & ~mw
    if (mw & ~ms).any() or (world.grid[KIND][miss] != 0).any():
        return None
    out = world.copy()
    out.grid[:, miss] = start.grid[:, miss]  # fixed entities are 1x1 (an obstacle is one per cell)
    if (start.grid[:, ms] != out.grid[:, ms]).any():
        return None
    return out


def _fixed_cells(world: World):
    k = world.grid[KIND]
    return (k == K_SOURCE) | (k == K_SINK) | (k == K_OBSTACLE)


def _count(world: World) -> int:
    """Modelled entities (what the env counts; sources, sinks and obstacles are not)."""
    from factorion.env.masks import count_entities
    return int(count_entities(world.grid[None])[0])


class _Search:
    """The best candidate so far, the clock and the stopping rule of one :func:`build`."""

    def __init__(self, budget_s: float, target: float | None):
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self.budget_s, self.target = budget_s, target
        self.key: tuple = (-1.0, 0)
        self.thr = -1.0  # the best candidate's throughput (key[0] stops at a wanted rate)
        self.world: World | None = None
        self.method, self.log = "", []
        self.n = 0  # candidates: planner runs and policy roll-outs
        self.cap = float("inf")  # a wanted sink rate: throughput above it counts no more (fewer entities win)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def done(self) -> bool:
        return self.reached() or self.left() <= 0

    def reached(self) -> bool:
        return self.target is not None and self.key[0] >= self.target

    def offer(self, world: World, thr: float, n_entities: int, method: str) -> None:
        """A simulator-checked candidate: kept if it beats the best (ties: fewer entities)."""
        key = (min(float(thr), self.cap), -int(n_entities))
        if key > (min(self.key[0], self.cap), self.key[1]):
            self.key, self.world, self.method, self.thr = key, world.copy(), method, float(thr)
            self.log.append((round(self.elapsed(), 3), method, float(thr)))


def _policy_rounds(search: _Search, task: Task, policy, samples: int, max_steps: int, seed: int) -> None:
    """Roll the policy out (:func:`factorion.policy.rollout.rollout`): one greedy roll-out from
    the task's start, then rounds of ``samples`` sampled roll-outs (at
    :data:`~factorion.policy.rollout.SAMPLE_TEMPERATURE`, first moves distinct as
    :data:`~factorion.policy.rollout.DISTINCT_FIRST` says) stepped as one batched env, alternately
    from the task's start and from the best factory so far (the policy repairs and improves, as on
    levels 2-4), until the budget runs out or the target is reached. Every state
    a roll-out passes through was simulated by the env and is a candidate, so a roll-out that
    breaks its factory later keeps its best state."""
    import numpy as np
    import torch

    from factorion.env.vector import FactorioVectorEnv
    from factorion.policy.rollout import DISTINCT_FIRST, SAMPLE_TEMPERATURE, rollout
    cfg = policy.config
    kw = {"entities": tuple(cfg.entities), "max_items": cfg.max_items, "max_recipes": cfg.max_recipes}
    envs: dict[int, FactorioVectorEnv] = {}

    def run(start: Task, n: int, greedy: bool, method: str) -> None:
        if n not in envs:
            envs[n] = FactorioVectorEnv(n, task.world.shape, max_steps=max_steps, autoreset_mode="disabled",
                                        **kw)
        bthr, bn = np.full(n, -1.0), np.zeros(n, dtype=np.int64)  # each roll-out's best (thr, entities)

        def offer(env, info, active) -> None:
            thr, n_ent = info["throughput"], info["entities"]
            better = active & ((thr > bthr) | ((thr == bthr) & (n_ent < bn)))
            for i in np.nonzero(better)[0]:
                bthr[i], bn[i] = thr[i], n_ent[i]
                search.offer(env.world(i), thr[i], n_ent[i], method)

        rollout(policy, envs[n], [start] * n, greedy, seed=seed, on_step=offer, stop=search.done,
                temperature=SAMPLE_TEMPERATURE, distinct_first=DISTINCT_FIRST)
        search.n += n  # roll-outs cut short by the clock or the target count too

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        run(task, 1, True, "policy (greedy)")
        k = 0
        while not search.done():
            start, method = task, "policy (sampled)"
            if k % 2 == 1 and search.world is not None and search.world != task.world:
                start = replace(task, world=search.world.copy())
                method = "policy (sampled, from the best so far)"
            run(start, samples, False, method)
            k += 1


def _rate_note(so, search: _Search) -> str:
    """Whether the wanted sink rate was met (the scale-out search's reason when it was not)."""
    if so.wanted is None or search.method == so.label:
        return so.note
    met = search.thr >= so.wanted * (1 - 1e-9)
    return (f"wanted rate {so.wanted:g}/s {'met' if met else 'not met'}: built {search.thr:.4g}/s by "
            f"{search.method}" + ("" if met else f" ({so.note.split('; ', 1)[-1]})"))


def build(task, checkpoint=None, budget_s: float = 10.0, seed: int = 0, *, samples: int = 8,
          max_steps: int = 48, export: bool = True, planner: bool = True,
          scale_out: bool = True) -> BuildResult:
    """The best factory found for ``task`` within ``budget_s`` seconds.

    ``task``: a :class:`World` with sources and sinks (its recipes are inferred, :func:`infer_task`)
    or a :class:`~factorion.tasks.base.Task` (``factorion.tasks.make_task``, a mined window).
    ``checkpoint``: a policy (path or :class:`factorion.policy.model.Policy`) or None.

    The search, every candidate scored by the simulator, the best kept (ties: fewer entities):

    1. the scripted planner with the start world's palette, then with the top palette
       (each at most a quarter of the budget with a policy, half without);
    2. with a policy: its greedy roll-out, then rounds of ``samples`` sampled roll-outs (one
       batched env) while budget is left.

    It stops as soon as a candidate reaches ``SUCCESS`` (0.99) x the task's reference, when the
    task has one (a benchmark task; a task inferred from a world has none, so the search uses
    its budget). ``export``: also write the blueprint string (``BuildResult.blueprint``).
    ``planner=False``: the policy alone (step 2 only; a policy is required), to measure what it
    builds by itself; a task without a reference then shows the policy ``throughput /``
    :data:`POLICY_ONLY_REFERENCE` as its ratio. ``scale_out=False``: without the scale-out
    search (the planner and the policy only; ``make evaluate``'s ``planner+policy`` agent), to
    measure what the policy adds to the planner.
    This is the one search ``factorion build`` and ``make evaluate``'s ``build`` agent run."""
    from factorion.env import scaleout
    from factorion.env.planner import plan
    from factorion.sim import throughput
    if isinstance(task, World):
        task = infer_task(task)
    ref = float(getattr(task, "reference", 0.0) or 0.0)
    policy = load_policy(checkpoint)  # before the clock starts: loading torch is not search time
    search = _Search(budget_s, SUCCESS * ref if ref > 0 else None)
    if not planner and policy is None:
        raise ValueError("build(planner=False) needs a policy checkpoint")
    share = 0.25 if policy is not None else 0.5
    so = scaleout.scale_out(task.world, budget_s=share * budget_s) if planner and scale_out else None
    if so is not None:
        search.cap, search.n = so.wanted if so.wanted is not None else search.cap, search.n + so.candidates
        if so.world is not None and (w := keep_fixed(task.world, so.world)) is not None:
            search.offer(w, so.throughput, _count(w), so.label)
    for palette in ("match", "top") if planner else ():
        if search.done():
            break
        w = keep_fixed(task.world, plan(task, budget_s=max(0.2, min(share * budget_s, search.left())),
                                        palette=palette))
        if w is not None:
            search.offer(w, float(throughput(w)), _count(w), f"planner ({palette})")
        search.n += 1
    if search.world is None:  # no legal planner candidate: the start world itself
        search.offer(task.world, float(throughput(task.world)), _count(task.world), "start")
    if policy is not None and not search.done():
        ptask = task
        if ref <= 0:  # the policy sees throughput / reference: normalise by the planner's best
            ptask = replace(task, reference=max(search.key[0], 1e-6) if planner else POLICY_ONLY_REFERENCE)
        cfg = policy.config
        n_items = len([i for i in task.items if i])
        if n_items <= cfg.max_items and len(task.recipes) <= cfg.max_recipes:
            _policy_rounds(search, ptask, policy, samples, max_steps, seed)
        else:
            warnings.warn(f"build: the task has {n_items} items and {len(task.recipes)} recipes, the policy "
                          f"takes {cfg.max_items} and {cfg.max_recipes}: the planner only", stacklevel=2)
    w = search.world
    text = BW.to_string(w, label="factorion build") if export else ""
    return BuildResult(w, search.thr, search.method, search.n, search.elapsed(), text,
                       cpu_seconds=time.process_time() - search.c0, reference=ref,
                       stopped_early=search.reached() and search.left() > 0, log=search.log,
                       note=_rate_note(so, search) if so is not None else "", model=model_name(checkpoint))
