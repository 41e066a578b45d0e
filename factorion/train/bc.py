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

Layout: this module holds the datasets and :class:`BCDataModule`; the samples they yield are
made in :mod:`factorion.train.bc_samples` and the LightningModule lives in
:mod:`factorion.train.bc_module`. Seed ranges: :mod:`factorion.tasks.splits`.
"""

from __future__ import annotations

import math
import os
import random
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from factorion.core.world import N_CHANNELS, World
from factorion.env.masks import DEFAULT_ENTITIES, DEFAULT_MAX_ITEMS, DEFAULT_MAX_RECIPES
from factorion.tasks.base import Task
from factorion.tasks.splits import ROLLOUT_SEED0, TRAIN_SEED0, VAL_SEED0
from factorion.train.bc_samples import BucketBuffer, expand_episode, expert_actions, throughput_fn


# ---------------------------------------------------------------------------------- datasets
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
    from factorion import tasks

    return tasks.make_task(family, level, size=size, seed=seed)


def families() -> tuple[str, ...]:
    from factorion import tasks

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


def _level_filter(dataset, filt, levels: Sequence[int] | None):
    """``filt`` and (when ``levels`` is given and the rows have a level) the level among ``levels``."""
    import pyarrow.dataset as ds

    if not levels or "level" not in dataset.schema.names:
        return filt
    by_level = ds.field("level").isin(list(levels))
    return by_level if filt is None else filt & by_level


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
        levels: Sequence[int] | None = None,
    ):
        super().__init__(batch_size, shuffle, shuffle_buffer, seed, sample_kw)
        self.path, self.split, self.limit_rows = str(path), split, limit_rows
        self.levels = tuple(levels) if levels else None  # only rows of these levels (None: all)

    def _dataset(self):
        import pyarrow.dataset as ds

        return ds.dataset(parquet_files(self.path, self.split), format="parquet")

    def episodes(self, shard, n_shards, rng):
        dataset = self._dataset()
        filt = _level_filter(dataset, _split_filter(dataset, self.split), self.levels)
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


class MixedEpisodes(_Episodes):
    """Episodes of several sources interleaved: each next episode comes from source ``i`` with
    probability ``weights[i]`` (normalised); a source that runs out starts over (its next epoch);
    the pass ends once every source has run out at least once. ``make pretrain`` mixes the mined
    rows (``--data``) and the planner's demonstrations (``--demos``) so, ``--demo-share`` of the
    episodes being demonstrations."""

    def __init__(self, sources: Sequence[_Episodes], weights: Sequence[float], batch_size: int = 64,
                 shuffle: bool = True, shuffle_buffer: int = 2048, seed: int = 0,
                 sample_kw: dict | None = None):
        super().__init__(batch_size, shuffle, shuffle_buffer, seed, sample_kw)
        if len(sources) != len(weights) or not sources or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"MixedEpisodes: {len(sources)} sources need as many weights >= 0, "
                             f"got {list(weights)}")
        self.sources, self.weights = list(sources), [float(w) for w in weights]

    def episodes(self, shard, n_shards, rng):
        live = [i for i, w in enumerate(self.weights) if w > 0]
        passes = dict.fromkeys(live, 0)
        its = {}

        def start(i: int):
            self.sources[i].set_epoch(self.epoch * 1000 + passes[i])
            its[i] = self.sources[i].episodes(shard, n_shards, rng)

        for i in live:
            start(i)
        while min(passes.values()) == 0:
            i = rng.choices(live, weights=[self.weights[j] for j in live])[0]
            ep = next(its[i], None)
            if ep is None:
                passes[i] += 1
                start(i)
                ep = next(its[i], None)
                if ep is None:  # an empty source: drop it
                    live.remove(i)
                    passes.pop(i)
                    if not live:
                        return
                    continue
            yield ep


class ListEpisodes(_Episodes):
    """Episodes held in memory (``expand_episode`` arguments; e.g. DAgger's relabelled states,
    :mod:`factorion.train.dagger`), sharded by index over readers and shuffled per epoch."""

    def __init__(self, episodes: Sequence[dict], batch_size: int = 64, shuffle: bool = True,
                 shuffle_buffer: int = 2048, seed: int = 0, sample_kw: dict | None = None):
        super().__init__(batch_size, shuffle, shuffle_buffer, seed, sample_kw)
        self.items = list(episodes)

    def episodes(self, shard, n_shards, rng):
        order = list(range(shard, len(self.items), n_shards))
        if self.shuffle:
            rng.shuffle(order)
        for i in order:
            yield self.items[i]


def row_to_task(row: dict) -> Task:
    """The :class:`~factorion.tasks.base.Task` of a Parquet row (a mined window: world, recipes,
    items, reference, the expert's action count; no solution)."""
    ep = row_to_episode(row)
    ref = ep["reference"]
    if not (ref > 0) and row.get("grid") is not None:  # NaN: simulate the complete window
        fn = throughput_fn()
        ref = float(fn(_world_from(_grid_from(row["grid"], row["grid_shape"])))) if fn else math.nan
    return Task(family=row.get("family") or "mined", level=int(row.get("level") or 0), seed=0,
                world=ep["start"], solution=None, reference=ref, removed=[], recipes=tuple(ep["recipes"]),
                items=tuple(ep["items"]), source="mined", n_expert=len(ep["actions"]))


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
        max_items: int = DEFAULT_MAX_ITEMS,
        max_recipes: int = DEFAULT_MAX_RECIPES,
        entities: Sequence[str] = DEFAULT_ENTITIES,
        procedural: bool = False,
        demos: str | None = None,
        demo_share: float = 0.5,
        extra_episodes: Sequence[dict] | None = None,
        extra_share: float = 0.0,
        data_levels: Sequence[int] | None = None,
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
        self.demos = demos if (not procedural) and demos and parquet_files(demos) else None
        self.demo_share = float(demo_share)
        self.data_levels = tuple(data_levels) if data_levels else None  # levels of --data's mined rows
        if not 0.0 <= self.demo_share <= 1.0:
            raise ValueError(f"demo_share must be in [0, 1], got {demo_share}")
        self.has_demos = bool(self.demos)
        if self.demos and not self.use_parquet:  # demonstrations only
            self.data, self.demos, self.use_parquet, self.demo_share = self.demos, None, True, 1.0
            self.data_levels = None
        self.extra, self.extra_share = list(extra_episodes or []), float(extra_share)
        self.train_set = self.val_set = None

    @property
    def source(self) -> str:
        if not self.use_parquet:
            return "procedural"
        if self.demos:
            share = self.demo_share
            return f"parquet:{self.data} ({1 - share:.0%}) + demos:{self.demos} ({share:.0%})"
        return f"parquet:{self.data}"

    @property
    def procedural_rows(self) -> bool:
        """Whether the training data holds procedural tasks (demonstrations or on-the-fly tasks)."""
        return (not self.use_parquet) or self.has_demos

    def _parquet_set(self, split: str, train: bool, kw: dict) -> _Episodes:
        extra = {"shuffle": True, "shuffle_buffer": self.shuffle_buffer} if train else {
            "shuffle": False, "limit_rows": self.val_tasks}
        mined = ParquetEpisodes(self.data, split, **extra, **kw, levels=self.data_levels)
        if not self.demos:
            return mined
        demos = ParquetEpisodes(self.demos, split, **extra, **kw)
        return MixedEpisodes([mined, demos], [1 - self.demo_share, self.demo_share],
                             shuffle=train, shuffle_buffer=self.shuffle_buffer, **kw)

    def setup(self, stage: str | None = None) -> None:
        kw = {"batch_size": self.batch_size, "sample_kw": self.sample_kw, "seed": self.seed}
        if self.use_parquet:
            self.train_set = self._parquet_set("train", True, kw)
            self.val_set = self._parquet_set("val", False, kw)
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
        if self.extra and self.extra_share > 0:  # aggregated DAgger episodes
            extra = ListEpisodes(self.extra, shuffle=True, **kw)
            w = [1 - self.extra_share, self.extra_share]
            self.train_set = MixedEpisodes([self.train_set, extra], w, shuffle=True,
                                           shuffle_buffer=self.shuffle_buffer, **kw)

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


def default_workers() -> int:
    """DataLoader workers: one core left to the trainer, at most 8."""
    n = os.cpu_count() or 1
    return max(0, min(8, n - 1))
