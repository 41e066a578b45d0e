"""Behaviour cloning: expert episodes -> (observation, expert action, masks) pairs -> the policy.

Data
----
An **episode** is a start world, a task (items, recipes, reference throughput) and the expert's
action list (``planner.actions_to_build(start, target)``); :func:`expand_episode` replays it
and yields one sample per step ``k``: the observation the env would show at step ``k`` (grid,
task and recipe vectors, ``step = k / max_steps``, ``ratio`` = simulated throughput /
reference), the expert's action ``k`` (canonical: ignored fields 0), the env's masks for that
state (compact form, built by the env's own mask code) and a value target: the expert's
return-to-go under the env's reward, ``(T_final - T_k) / reference - entity_cost * (N_final -
N_k)`` (NaN when the simulator is not available). A ``finish`` is appended when the expert's
list does not end with one.

Two sources, both ``IterableDataset`` s that yield **ready batches of one grid size** (a
size-bucketed shuffle buffer; different batches may have different sizes), sharded over
DDP ranks and DataLoader workers:

* :class:`ParquetEpisodes` streams the ``make data`` Parquet (``pyarrow.dataset``; row groups
  shuffled per epoch; see :func:`row_to_episode` for the columns read);
* :class:`ProceduralEpisodes` builds episodes on the fly from ``tasks.make_task(family, level,
  size, seed)`` with ``planner.actions_to_build(task.world, task.solution)`` (levels 3 and 4 by
  default). Seeds of train, validation and roll-out tasks come from disjoint ranges.

:class:`BCDataModule` picks Parquet when ``data`` holds ``*.parquet`` files, else procedural.

Training
--------
:class:`BCModule` (LightningModule): loss = the cross-entropy of every action stage under the
masks (= ``-log pi(expert action)``, teacher-forced) + ``value_coef`` x MSE of the value head
on the return-to-go. Logged: the loss per stage, per-stage accuracy (over samples where the
stage is a real decision, i.e. its mask allows more than one value), whole-action accuracy
(greedy decoding reproduces the expert's action), and in validation the share of greedy
*unmasked* actions that the masks allow (``val/valid_unmasked``: how much of the mask the
policy has learnt; masked actions are valid by construction) and a greedy roll-out in the env
on held-out tasks: ``val/restored`` = the share of the removed throughput the policy restores,
``(T_end - T_start) / (T_ref - T_start)`` clipped to [0, 1].
"""

from __future__ import annotations

import math
import os
import random
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from . import env as E
from .env import DEFAULT_ENTITIES, OP_FINISH, OP_PLACE, OP_REMOVE, STAGES, ActionLayout
from .model import Policy, PolicyConfig, stage_mask, valid_actions
from .world import N_CHANNELS, Entity, World

MASK_KEYS = ("op", "cell", "fit", "ed_ok", "variant")
TRAIN_SEED0, VAL_SEED0, ROLLOUT_SEED0, TEST_SEED0 = 0, 1_000_000_000, 1_500_000_000, 2_000_000_000


# ---------------------------------------------------------------------------------- env glue
_LAYOUTS: dict[tuple, ActionLayout] = {}


def layout_for(
    height: int, width: int, entities: Sequence[str] = DEFAULT_ENTITIES, max_recipes: int = 4
) -> ActionLayout:
    """A cached :class:`~factorion.env.ActionLayout`."""
    key = (height, width, tuple(entities), max_recipes)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = ActionLayout(height, width, entities, max_recipes)
    return _LAYOUTS[key]


def build_masks(
    layout: ActionLayout, grids: np.ndarray, recipes: Sequence[str], batched: bool = True
) -> E.ActionMasks:
    """The env's masks for a stack of grids ``(B, C, H, W)`` of one task (the env's own code;
    ``batched=False`` as the single env gives them)."""
    if hasattr(E, "masks_for_grids"):
        return E.masks_for_grids(layout, grids, recipes, batched=batched)
    B = grids.shape[0]
    t = layout.task_tables(recipes)
    rep = [np.broadcast_to(x[None], (B, *x.shape)) for x in (t.variant, t.ed_ok, t.fp_any)]
    return E.ActionMasks(layout, grids, *rep, batched=batched)


def _throughput_fn():
    try:
        from . import sim
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
    from . import planner

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
    max_items: int = 8,
    max_recipes: int = 4,
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
    throughput = _throughput_fn() if throughput is None else throughput
    task_ns = SimpleNamespace(items=list(items), recipes=list(recipes))
    item_vec, rec_vec = E.task_vectors(task_ns, max_items, max_recipes)
    world = start.copy()
    grids, acts, thr, n_ent = [], [], [], []

    def measure():
        thr.append(float(throughput(world)) if throughput is not None else math.nan)
        n_ent.append(int(E.count_entities(world.grid[None])[0]))

    measure()
    finished = False
    for a in actions:
        ca = encode_action(a, layout, recipes)
        if ca is None:
            continue
        op, what = layout.decode(ca, list(recipes))
        if op < 0 or not layout.oracle_valid(world, ca, list(recipes)):
            continue
        grids.append(world.grid.copy())
        acts.append(ca)
        if op == OP_FINISH:
            finished = True
            break
        if op == OP_PLACE:
            world.place(what)
        elif op == OP_REMOVE:
            world.remove(*what)
        measure()
    if not finished:
        grids.append(world.grid.copy())
        acts.append(np.array([OP_FINISH, 0, 0, 0, 0], dtype=np.int64))
    K = len(acts)
    ref = float(reference) if reference is not None else math.nan
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


def _shard() -> tuple[int, int]:
    """(index, count) of this (rank, worker) among all data readers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = get_worker_info()
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nw + wid, world * nw


class _Episodes(IterableDataset):
    """Common part: episode stream -> samples -> size-bucketed (shuffled) batches."""

    def __init__(
        self, batch_size: int, shuffle: bool, shuffle_buffer: int, seed: int, sample_kw: dict | None = None
    ):
        self.batch_size, self.shuffle, self.shuffle_buffer, self.seed = (
            batch_size,
            shuffle,
            shuffle_buffer,
            seed,
        )
        self.sample_kw = dict(sample_kw or {})
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def episodes(self, shard: int, n_shards: int, rng: random.Random) -> Iterator[dict]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[dict]:
        shard, n_shards = _shard()
        rng = random.Random(hash((self.seed, self.epoch, shard)))
        buf = BucketBuffer(self.batch_size, self.shuffle_buffer if self.shuffle else self.batch_size, rng)
        n_ok = n_bad = 0
        for ep in self.episodes(shard, n_shards, rng):
            try:
                samples = expand_episode(**ep, **self.sample_kw)
            except Exception as exc:  # a bad row / task must not kill a long run (e.g. > max_recipes)
                n_bad += 1
                if n_bad <= 3:
                    warnings.warn(f"skipped an episode: {exc!r}", stacklevel=2)
                continue
            n_ok += 1
            yield from buf.add(samples)
        yield from buf.drain()
        if n_bad > 3:
            warnings.warn(
                f"skipped {n_bad} of {n_ok + n_bad} episodes in this pass (reader {shard})", stacklevel=2
            )


def make_task(family: str, level: int, size: int, seed: int):
    from . import tasks

    return tasks.make_task(family, level, size=size, seed=seed)


def families() -> tuple[str, ...]:
    from . import tasks

    return tuple(tasks.FAMILIES)


def task_episode(task) -> dict:
    """``expand_episode`` arguments for a task (expert = the planner)."""
    return {
        "start": task.world,
        "actions": expert_actions(task),
        "recipes": list(task.recipes),
        "items": [i for i in task.items if i],
        "reference": float(task.reference),
    }


def procedural_tasks(
    seeds: Iterable[int],
    levels: Sequence[int] = (3, 4),
    sizes: Sequence[int] = (11,),
    fams: Sequence[str] | None = None,
) -> Iterator[Any]:
    """Tasks for the given seeds (family, level and size drawn from the seed); generation
    failures are skipped."""
    fams = tuple(fams) if fams else families()
    for seed in seeds:
        r = random.Random(seed)
        fam, lvl, size = r.choice(fams), r.choice(list(levels)), r.choice(list(sizes))
        try:
            yield make_task(fam, int(lvl), int(size), int(seed))
        except Exception as exc:
            warnings.warn(f"make_task({fam!r}, {lvl}, {size}, {seed}) failed: {exc!r}", stacklevel=2)


class ProceduralEpisodes(_Episodes):
    """Episodes from ``tasks.make_task`` + the planner. ``n_tasks`` tasks per epoch (train:
    fresh seeds every epoch; ``fixed=True``: the same seeds every time, for validation)."""

    def __init__(
        self,
        n_tasks: int,
        seed0: int = TRAIN_SEED0,
        levels: Sequence[int] = (3, 4),
        sizes: Sequence[int] = (11,),
        fams: Sequence[str] | None = None,
        fixed: bool = False,
        batch_size: int = 64,
        shuffle: bool = True,
        shuffle_buffer: int = 2048,
        seed: int = 0,
        sample_kw: dict | None = None,
    ):
        super().__init__(batch_size, shuffle, shuffle_buffer, seed, sample_kw)
        self.n_tasks, self.seed0, self.fixed = n_tasks, seed0, fixed
        self.levels, self.sizes, self.fams = tuple(levels), tuple(sizes), tuple(fams) if fams else None

    def episodes(self, shard, n_shards, rng):
        base = self.seed0
        if not self.fixed:  # fresh tasks every epoch, below the validation seeds
            base = (self.seed0 + self.seed * 100_000_007 + self.epoch * self.n_tasks) % (
                VAL_SEED0 - self.n_tasks
            )
        seeds = range(base + shard, base + self.n_tasks, n_shards)
        for task in procedural_tasks(seeds, self.levels, self.sizes, self.fams):
            try:
                yield task_episode(task)
            except Exception as exc:
                warnings.warn(f"planner failed: {exc!r}", stacklevel=2)


# ---------------------------------------------------------------------------------- parquet
def _grid_from(buf, shape) -> np.ndarray:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        shape = (N_CHANNELS, *shape)
    return np.frombuffer(buf, dtype="<i2").reshape(shape).astype(np.int16)


def _world_from(grid: np.ndarray) -> World:
    w = World(grid.shape[1], grid.shape[2])
    w.grid = grid
    return w


#: Columns :func:`row_to_episode` reads (pipeline.write.EXAMPLE_SCHEMA); the rest stay on disk.
PARQUET_COLUMNS = (
    "start_grid",
    "grid_shape",
    "actions",
    "recipes",
    "items",
    "reference_throughput",
    "level",
    "n_removed",
    "example_id",
)


def row_to_episode(row: dict) -> dict:
    """``expand_episode`` arguments from one row of the ``make data`` examples
    (:data:`pipeline.write.EXAMPLE_SCHEMA`): ``start_grid`` (``<i2`` bytes of ``grid_shape``),
    ``actions`` (structs ``op``/``name``/``y``/``x``/``direction``/``recipe``/``io``; or env
    5-int lists), ``recipes``, ``items`` and ``reference_throughput`` (NaN: the expert's final
    throughput is used)."""
    start = _world_from(_grid_from(row["start_grid"], row["grid_shape"]))
    ref = row.get("reference_throughput", row.get("reference"))
    return {
        "start": start,
        "actions": list(row.get("actions") or []),
        "recipes": list(row.get("recipes") or []),
        "items": [i for i in (row.get("items") or []) if i],
        "reference": math.nan if ref is None else float(ref),
    }


_NOT_EXAMPLES = ("blueprints.parquet", "rejects.parquet")


def parquet_files(path: str | Path, split: str | None = None) -> list[str]:
    """The example files under ``path``: ``path/examples/<split>/`` or ``path/<split>/`` when
    that layout is there (``make data``: ``data/out``), else every ``*.parquet`` below ``path``
    but the blueprint and reject tables (the split is then a row filter)."""
    p = Path(path)
    if p.is_file():
        return [str(p)] if p.suffix == ".parquet" else []
    if not p.is_dir():
        return []
    for root in (p / "examples", p):
        if split is not None and (root / split).is_dir():
            return sorted(str(f) for f in (root / split).rglob("*.parquet"))
    root = p / "examples" if (p / "examples").is_dir() else p
    return sorted(str(f) for f in root.rglob("*.parquet") if f.name not in _NOT_EXAMPLES)


def _split_filter(dataset, split: str | None):
    import pyarrow.dataset as ds

    if split is None or "split" not in dataset.schema.names:
        return None
    return ds.field("split") == split


class ParquetEpisodes(_Episodes):
    """Streams the Parquet rows of one split; row groups are sharded over ranks x workers and
    shuffled per epoch (``shuffle``), rows shuffled within a row group."""

    def __init__(
        self,
        path: str | Path,
        split: str | None = "train",
        batch_size: int = 64,
        shuffle: bool = True,
        shuffle_buffer: int = 4096,
        seed: int = 0,
        limit_rows: int | None = None,
        sample_kw: dict | None = None,
    ):
        super().__init__(batch_size, shuffle, shuffle_buffer, seed, sample_kw)
        self.path, self.split, self.limit_rows = str(path), split, limit_rows

    def _dataset(self):
        import pyarrow.dataset as ds

        return ds.dataset(parquet_files(self.path, self.split), format="parquet")

    def episodes(self, shard, n_shards, rng):
        dataset = self._dataset()
        filt = _split_filter(dataset, self.split)
        pieces = [rg for frag in dataset.get_fragments() for rg in frag.split_by_row_group()]
        order = list(range(len(pieces)))
        if self.shuffle:
            random.Random(hash((self.seed, self.epoch))).shuffle(order)
        cols = [c for c in PARQUET_COLUMNS if c in dataset.schema.names]
        seen = 0
        for i in order[shard::n_shards]:
            rows = pieces[i].to_table(columns=cols, filter=filt).to_pylist()
            if self.shuffle:
                rng.shuffle(rows)
            for row in rows:
                if self.limit_rows is not None and seen >= self.limit_rows:
                    return
                seen += 1
                yield row_to_episode(row)

    def rows(self, n: int, min_removed: int = 1) -> list[dict]:
        """The first ``n`` rows of the split with at least ``min_removed`` removed entities
        (roll-out tasks), complete grid included."""
        import pyarrow.dataset as ds

        dataset = self._dataset()
        cols = [c for c in (*PARQUET_COLUMNS, "grid") if c in dataset.schema.names]
        filt = _split_filter(dataset, self.split)
        if "n_removed" in dataset.schema.names:
            more = ds.field("n_removed") >= min_removed
            filt = more if filt is None else filt & more
        return dataset.head(n, columns=cols, filter=filt).to_pylist()


def row_to_task(row: dict):
    """A task-like object for the env from a Parquet row (world, recipes, items, reference)."""
    ep = row_to_episode(row)
    ref = ep["reference"]
    if not (ref > 0) and row.get("grid") is not None:  # NaN: simulate the complete window
        fn = _throughput_fn()
        ref = float(fn(_world_from(_grid_from(row["grid"], row["grid_shape"])))) if fn else math.nan
    return SimpleNamespace(
        world=ep["start"],
        recipes=ep["recipes"],
        items=ep["items"],
        reference=ref,
        family=row.get("family"),
        level=row.get("level"),
        n_expert=len(ep["actions"]),
    )


# ---------------------------------------------------------------------------------- data module
class BCDataModule(L.LightningDataModule):
    """Parquet under ``data`` when it holds any, else procedural tasks (see the module doc)."""

    def __init__(
        self,
        data: str | None = "data/out",
        batch_size: int = 64,
        num_workers: int = 2,
        shuffle_buffer: int = 2048,
        levels: Sequence[int] = (3, 4),
        sizes: Sequence[int] = (11,),
        families: Sequence[str] | None = None,
        train_tasks: int = 2000,
        val_tasks: int = 64,
        rollout_tasks: int = 4,
        seed: int = 0,
        max_items: int = 8,
        max_recipes: int = 4,
        entities: Sequence[str] = DEFAULT_ENTITIES,
        procedural: bool = False,
    ):
        super().__init__()
        self.data, self.batch_size, self.num_workers = data, batch_size, num_workers
        self.shuffle_buffer, self.levels, self.sizes = shuffle_buffer, tuple(levels), tuple(sizes)
        self.families = tuple(families) if families else None
        self.train_tasks, self.val_tasks, self.n_rollout, self.seed = (
            train_tasks,
            val_tasks,
            rollout_tasks,
            seed,
        )
        self.sample_kw = {"max_items": max_items, "max_recipes": max_recipes, "entities": tuple(entities)}
        self.use_parquet = (not procedural) and bool(data) and bool(parquet_files(data))
        self.train_set = self.val_set = None

    @property
    def source(self) -> str:
        return f"parquet:{self.data}" if self.use_parquet else "procedural"

    def setup(self, stage: str | None = None) -> None:
        kw = {"batch_size": self.batch_size, "sample_kw": self.sample_kw, "seed": self.seed}
        if self.use_parquet:
            self.train_set = ParquetEpisodes(
                self.data, "train", shuffle=True, shuffle_buffer=self.shuffle_buffer, **kw
            )
            self.val_set = ParquetEpisodes(self.data, "val", shuffle=False, limit_rows=self.val_tasks, **kw)
        else:
            common = {"levels": self.levels, "sizes": self.sizes, "fams": self.families}
            self.train_set = ProceduralEpisodes(
                self.train_tasks,
                TRAIN_SEED0,
                shuffle=True,
                shuffle_buffer=self.shuffle_buffer,
                **common,
                **kw,
            )
            self.val_set = ProceduralEpisodes(
                self.val_tasks, VAL_SEED0, fixed=True, shuffle=False, **common, **kw
            )

    def _loader(self, dataset, workers: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, min(self.num_workers, 1))

    def rollout_tasks(self, n: int | None = None) -> list:
        """Held-out tasks for the roll-out metric (validation split / held-out seeds)."""
        n = self.n_rollout if n is None else n
        if n <= 0:
            return []
        if self.use_parquet:
            return [row_to_task(r) for r in ParquetEpisodes(self.data, "val").rows(n)]
        return list(
            procedural_tasks(range(ROLLOUT_SEED0, ROLLOUT_SEED0 + n), self.levels, self.sizes, self.families)
        )


# ---------------------------------------------------------------------------------- roll-out
def rollout(
    policy: Policy, task, max_steps: int | None = None, greedy: bool = True, max_items: int = 8, env=None
) -> dict:
    """Run ``policy`` on ``task`` in :class:`factorion.env.FactorioEnv` until it finishes or
    ``max_steps``. Returns ``world`` (final), ``restored`` (share of the removed throughput
    restored, clipped to [0, 1]; NaN when nothing was missing), ``ratio``, ``steps``,
    ``return``."""
    H, W = task.world.shape
    if env is None:
        env = E.FactorioEnv(
            size=(H, W),
            max_items=max_items,
            max_recipes=policy.config.max_recipes,
            entities=policy.config.entities,
        )
    obs, info = env.reset(options={"task": task})
    thr0 = info["throughput"]
    ref = float(task.reference)
    limit = max_steps or env.max_steps
    total, steps, done = 0.0, 0, False
    while not done and steps < limit:
        a = policy.act(obs, env.action_masks(), greedy=greedy)
        obs, r, term, trunc, info = env.step(a)
        total += r
        steps += 1
        done = term or trunc
    gap = ref - thr0
    restored = float(np.clip((info["throughput"] - thr0) / gap, 0.0, 1.0)) if gap > 1e-9 else math.nan
    return {
        "world": env.world.copy(),
        "restored": restored,
        "ratio": float(info["ratio"]),
        "steps": steps,
        "return": total,
        "finished": bool(done),
    }


# ---------------------------------------------------------------------------------- lightning module
class BCModule(L.LightningModule):
    """Behaviour cloning of the planner (see the module docstring). ``policy_config``: a dict
    (:meth:`PolicyConfig.to_dict`) or ``None`` for ``preset``."""

    def __init__(
        self,
        policy_config: dict | None = None,
        preset: str = "default",
        lr: float = 3e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 200,
        max_steps: int = 0,
        value_coef: float = 0.1,
        rollout_every: int = 1,
        rollout_max_steps: int = 0,
    ):
        super().__init__()
        cfg = PolicyConfig.from_dict(policy_config) if policy_config else PolicyConfig.preset(preset)
        self.save_hyperparameters()
        self.hparams["policy_config"] = cfg.to_dict()  # what Policy.load_from_checkpoint reads
        self.policy = Policy(cfg)
        self._val_rounds = 0

    # ------------------------------------------------------------------ steps
    def _evaluate(self, batch: dict, unmasked: bool = False) -> tuple[torch.Tensor, dict]:
        pol = self.policy
        obs, masks, act = batch["obs"], batch["masks"], batch["action"]
        enc = pol.encode(obs)
        out = pol.head(enc, masks, act)
        value = pol.value_from(enc)
        ce = -out["stage_logprob"]  # (B, 5)
        loss_pi = ce.sum(1).mean()
        vt = batch["value_target"].float()
        ok = torch.isfinite(vt)
        loss_v = F.mse_loss(value[ok], vt[ok]) if bool(ok.any()) else value.sum() * 0.0
        loss = loss_pi + self.hparams.value_coef * loss_v
        B = act.shape[0]
        m = {"loss": loss, "loss_pi": loss_pi, "loss_value": loss_v}
        hit = out["argmax"] == act
        for s, stage in enumerate(STAGES):
            allowed = stage_mask(masks, stage, [act[:, i] for i in range(s)], pol.fp_index).sum(-1)
            decision = allowed > 1
            m[f"ce_{stage}"] = ce[:, s].mean()
            if bool(decision.any()):
                m[f"acc_{stage}"] = hit[decision, s].float().mean()
        m["acc_action"] = hit.all(1).float().mean()
        if unmasked:
            free = pol.head(enc, None, greedy=True)["action"]
            m["valid_unmasked"] = valid_actions(masks, free, pol.fp_index).float().mean()
        return loss, {k: (v.detach(), B) for k, v in m.items()}

    def training_step(self, batch, batch_idx):
        loss, m = self._evaluate(batch)
        for k, (v, B) in m.items():
            self.log(f"train/{k}", v, batch_size=B, prog_bar=k in ("loss", "acc_action"))
        return loss

    def validation_step(self, batch, batch_idx):
        _, m = self._evaluate(batch, unmasked=True)
        for k, (v, B) in m.items():
            self.log(f"val/{k}", v, batch_size=B, prog_bar=k in ("loss", "acc_action"), sync_dist=True)

    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and getattr(dm, "train_set", None) is not None:
            dm.train_set.set_epoch(self.current_epoch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self._val_rounds += 1
        every = self.hparams.rollout_every
        dm = getattr(self.trainer, "datamodule", None)
        if not every or (self._val_rounds - 1) % every or dm is None or not hasattr(dm, "rollout_tasks"):
            return
        try:
            tasks = self._rollout_tasks(dm)
        except ImportError as exc:  # the simulator / task generator is not there
            warnings.warn(f"roll-out skipped: {exc}", stacklevel=2)
            return
        res = []
        for t in tasks:
            try:
                res.append(rollout(self.policy, t, max_steps=self._rollout_limit(t)))
            except (ImportError, ValueError) as exc:  # no simulator; a task the env cannot take
                warnings.warn(f"roll-out of one task skipped: {exc!r}", stacklevel=2)
        if not res:
            return
        restored = [r["restored"] for r in res if not math.isnan(r["restored"])]
        self.log("val/restored", float(np.mean(restored)) if restored else 0.0, sync_dist=True)
        self.log("val/rollout_ratio", float(np.mean([r["ratio"] for r in res])), sync_dist=True)
        self.log("val/rollout_finished", float(np.mean([r["finished"] for r in res])), sync_dist=True)

    def _rollout_tasks(self, dm) -> list:
        if not hasattr(self, "_rollout_cache"):
            self._rollout_cache = dm.rollout_tasks()
        return self._rollout_cache

    def _rollout_limit(self, task) -> int:
        if self.hparams.rollout_max_steps:
            return self.hparams.rollout_max_steps
        n = getattr(task, "n_expert", None)
        if n is None:
            n = len(getattr(task, "removed", ()) or ()) or task.world.height * task.world.width // 4
        return 2 * int(n) + 4

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.policy.named_parameters():
            (decay if p.dim() >= 2 and "emb" not in name else no_decay).append(p)
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.hparams.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.hparams.lr,
            betas=(0.9, 0.95),
        )
        warm, total = max(1, self.hparams.warmup_steps), self.hparams.max_steps

        def f(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            if total and total > warm:
                t = min(1.0, (step - warm) / (total - warm))
                return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))
            return 1.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def default_workers() -> int:
    """DataLoader workers: one core left to the trainer, at most 8."""
    n = os.cpu_count() or 1
    return max(0, min(8, n - 1))
