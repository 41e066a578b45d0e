"""Behaviour-cloning samples: expert episodes replayed into (observation, expert action, masks,
value target) samples (:func:`expand_episode`), with the env glue they need (cached layouts, the
env's own masks, :func:`encode_action`), and collated into batches of one grid size
(:func:`collate`, :class:`BucketBuffer`). See :mod:`factorion.train.bc` for the whole picture."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from factorion.core.world import Entity, World
from factorion.env import factorio_env as E
from factorion.env.masks import (
    DEFAULT_ENTITIES,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_RECIPES,
    OP_FINISH,
    OP_PLACE,
    OP_REMOVE,
    STAGES,
    ActionLayout,
    ActionMasks,
)
from factorion.tasks.base import Task

MASK_KEYS = ("op", "cell", "fit", "ed_ok", "variant")


# ---------------------------------------------------------------------------------- env glue
_LAYOUTS: dict[tuple, ActionLayout] = {}


def layout_for(
    height: int, width: int, entities: Sequence[str] = DEFAULT_ENTITIES,
    max_recipes: int = DEFAULT_MAX_RECIPES,
) -> ActionLayout:
    """A cached :class:`~factorion.env.ActionLayout`."""
    key = (height, width, tuple(entities), max_recipes)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = ActionLayout(height, width, entities, max_recipes)
    return _LAYOUTS[key]


def build_masks(
    layout: ActionLayout, grids: np.ndarray, recipes: Sequence[str], batched: bool = True
) -> ActionMasks:
    """The env's masks for a stack of grids ``(B, C, H, W)`` of one task (the env's own code;
    ``batched=False`` as the single env gives them)."""
    B = grids.shape[0]
    t = layout.task_tables(recipes)
    rep = [np.broadcast_to(x[None], (B, *x.shape)) for x in (t.variant, t.ed_ok, t.fp_any)]
    return ActionMasks(layout, grids, *rep, batched=batched)


def throughput_fn():
    try:
        from factorion import sim
    except ImportError:
        return None
    return sim.throughput


#: Modelled entities the env cannot place, and what the expert places instead (same role).
SUBSTITUTES = {"iron-chest": "wooden-chest", "steel-chest": "wooden-chest"}


def encode_action(a, layout: ActionLayout, recipes: Sequence[str]) -> np.ndarray | None:
    """One expert action as the env's ``(op, cell, entity, dir, variant)`` (canonical), or
    None when the env cannot express it (an entity outside the layout, a recipe outside the
    task's list). Accepts env actions (5 ints), the planner's ``("place", Entity)`` /
    ``("remove", y, x)`` / ``("finish",)`` and the Parquet ``actions`` structs (``op`` "place" |
    "remove", ``name``, ``y``, ``x``, ``direction``, ``recipe``, ``io``)."""
    W = layout.width
    if isinstance(a, dict):
        op = a.get("op")
        if isinstance(op, str):
            a = (
                op,
                Entity(
                    a.get("name") or "",
                    int(a.get("y") or 0),
                    int(a.get("x") or 0),
                    int(a.get("direction") or 0),
                    recipe=a.get("recipe"),
                    io=int(a.get("io") or 0),
                ),
            )
        else:
            a = [a.get(k, 0) or 0 for k in STAGES]
    if isinstance(a, tuple | list) and a and isinstance(a[0], str):
        kind = a[0]
        if kind == "finish":
            return np.array([OP_FINISH, 0, 0, 0, 0], dtype=np.int64)
        if kind == "remove":
            if isinstance(a[1], Entity):
                y, x = a[1].y, a[1].x
            else:
                y, x = int(a[1]), int(a[2])
            return np.array([OP_REMOVE, y * W + x, 0, 0, 0], dtype=np.int64)
        if kind != "place":
            raise ValueError(f"unknown action {a!r}")
        e: Entity = a[1]
        name = SUBSTITUTES.get(e.name, e.name)
        if name not in layout.entities:
            return None
        idx = layout.entities.index(name)
        v = 0
        if layout.is_assembler[idx]:
            if e.recipe not in recipes:
                return None
            v = list(recipes).index(e.recipe)
        elif layout.is_underground[idx]:
            v = max(0, int(e.io) - 1)
        a = (OP_PLACE, e.y * W + e.x, idx, e.direction, v)
    arr = np.asarray(a, dtype=np.int64).reshape(-1)
    if arr.shape != (5,):
        raise ValueError(f"an env action has 5 fields, got {a!r}")
    ok, ca = layout.canonical(arr)
    return ca[0] if ok[0] else None


def expert_actions(task) -> list:
    """The planner's edits from ``task.world`` to ``task.solution`` (planner format)."""
    from factorion.env import planner

    return list(planner.actions_to_build(task.world, task.solution))


# ---------------------------------------------------------------------------------- samples
def expand_episode(
    start: World,
    actions: Iterable,
    recipes: Sequence[str],
    items: Sequence[str],
    reference: float,
    *,
    entities: Sequence[str] = DEFAULT_ENTITIES,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_recipes: int = DEFAULT_MAX_RECIPES,
    max_steps: int | None = None,
    entity_cost: float = E.DEFAULT_ENTITY_COST,
    throughput=None,
    meta: dict | None = None,
) -> list[dict]:
    """Replay the expert's ``actions`` from ``start``: one sample dict (numpy) per step.

    Invalid expert actions (under the env's masks) are skipped. ``throughput``: a
    ``World -> float`` function (default :func:`factorion.sim.throughput` when it exists) for
    ``ratio`` and the value target."""
    H, W = start.shape
    layout = layout_for(H, W, entities, max_recipes)
    max_steps = max_steps or 2 * H * W
    throughput = throughput_fn() if throughput is None else throughput
    ref = float(reference) if reference is not None else math.nan
    task = Task(family="", level=0, seed=0, world=start, solution=None, reference=ref, removed=[],
                recipes=tuple(recipes), items=tuple(items))
    item_vec, rec_vec = E.task_vectors(task, max_items, max_recipes)
    grids, acts, thr, n_ent = replay_expert(start, actions, layout, list(recipes), throughput)
    K = len(acts)
    if not (ref > 0):  # unknown (NaN) reference: the expert's final throughput
        ref = thr[-1] if thr[-1] > 0 else 1.0
    G = np.stack(grids)
    A = np.stack(acts)
    masks = build_masks(layout, G, list(recipes))
    ok = masks.valid(A)
    thr_k = np.array(thr + [thr[-1]] * (K - len(thr)))[:K]
    n_k = np.array(n_ent + [n_ent[-1]] * (K - len(n_ent)))[:K]
    value = (thr[-1] - thr_k) / ref - entity_cost * (n_ent[-1] - n_k)
    ratio = np.clip(np.nan_to_num(thr_k / ref, nan=0.0), 0.0, E.RATIO_CLIP)
    out = []
    for k in range(K):
        if not ok[k]:
            continue
        s = {
            "grid": G[k],
            "task": item_vec,
            "recipes": rec_vec,
            "step": np.array([min(k / max_steps, 1.0)], np.float32),
            "ratio": np.array([ratio[k]], np.float32),
            "action": A[k],
            "value_target": np.float32(value[k]),
        }
        for key in MASK_KEYS:
            s["m_" + key] = getattr(masks, key)[k]
        if meta:
            s.update(meta)
        out.append(s)
    return out


def replay_expert(start: World, actions: Iterable, layout: ActionLayout, recipes: list[str], throughput
                  ) -> tuple[list, list, list[float], list[int]]:
    """Replay ``actions`` from ``start``, skipping the ones the layout cannot express or the
    oracle rejects; a ``finish`` ends it (one is appended when the list lacks it). Returns the
    grid before each kept action, the kept actions (canonical), and the throughput and entity
    count after the start and after each kept edit."""
    world = start.copy()
    grids, acts, thr, n_ent = [], [], [], []

    def measure():
        thr.append(float(throughput(world)) if throughput is not None else math.nan)
        n_ent.append(int(E.count_entities(world.grid[None])[0]))

    measure()
    for a in actions:
        ca = encode_action(a, layout, recipes)
        if ca is None:
            continue
        op, what = layout.decode(ca, recipes)
        if op < 0 or not layout.oracle_valid(world, ca, recipes):
            continue
        grids.append(world.grid.copy())
        acts.append(ca)
        if op == OP_FINISH:
            return grids, acts, thr, n_ent
        if op == OP_PLACE:
            world.place(what)
        elif op == OP_REMOVE:
            world.remove(*what)
        measure()
    grids.append(world.grid.copy())
    acts.append(np.array([OP_FINISH, 0, 0, 0, 0], dtype=np.int64))
    return grids, acts, thr, n_ent


def collate(samples: Sequence[dict]) -> dict:
    """Samples of one grid size -> ``{"obs": {...}, "masks": {...}, "action", "value_target"}``."""

    def st(key, dtype=None):
        return torch.as_tensor(np.stack([s[key] for s in samples]), dtype=dtype)

    return {
        "obs": {
            "grid": st("grid", torch.int16),
            "task": st("task", torch.int16),
            "recipes": st("recipes", torch.int16),
            "step": st("step"),
            "ratio": st("ratio"),
        },
        "masks": {k: st("m_" + k, torch.bool) for k in MASK_KEYS},
        "action": st("action", torch.long),
        "value_target": st("value_target", torch.float32),
    }


class BucketBuffer:
    """A shuffle buffer that emits batches of one grid size."""

    def __init__(self, batch_size: int, capacity: int, rng: random.Random):
        self.batch_size, self.capacity, self.rng = batch_size, max(capacity, batch_size), rng
        self.buckets: dict[tuple, list] = {}
        self.n = 0

    def add(self, samples: Iterable[dict]) -> Iterator[dict]:
        for s in samples:
            self.buckets.setdefault(s["grid"].shape, []).append(s)
            self.n += 1
        while self.n >= self.capacity:
            yield self._pop()

    def _pop(self, drain: bool = False) -> dict:
        keys = list(self.buckets)
        if drain:
            key = keys[0]
        else:
            key = self.rng.choices(keys, weights=[len(self.buckets[k]) for k in keys])[0]
        bucket = self.buckets[key]
        take = min(self.batch_size, len(bucket))
        out = []
        for _ in range(take):
            i = self.rng.randrange(len(bucket))
            bucket[i], bucket[-1] = bucket[-1], bucket[i]
            out.append(bucket.pop())
        if not bucket:
            del self.buckets[key]
        self.n -= take
        return collate(out)

    def drain(self) -> Iterator[dict]:
        while self.n:
            yield self._pop(drain=True)
