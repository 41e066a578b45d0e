"""The gymnasium environment: build a factory on the grid, rewarded by simulated throughput.

Registered as ``factorion/FactorioEnv-v0`` (``gymnasium.make``) with a ``vector_entry_point``
(:class:`factorion.env.vector.FactorioVectorEnv`, one numpy batch; ``gymnasium.make_vec``).

Episode
-------
``reset(seed, options)`` draws a :class:`factorion.tasks.Task` (``options``: ``{"task": Task}``, or
``{"family": f, "level": l, "n_missing": n}`` for this reset only; otherwise the constructor's
``task_sampler`` / ``curriculum`` / ``family`` + ``level``; a ``None`` family or level is drawn
uniformly from the ``tasks.FAMILIES`` that fit the grid / ``tasks.LEVELS``; see
:class:`TaskSource`, also for the optional task pool). The agent starts from ``task.world`` and
edits it. ``finish`` terminates; reaching ``max_steps`` (default ``2 * H * W``) truncates
(``truncated=True``, never ``terminated``).

Observation (``Dict``)
----------------------
``grid``     int16 ``(C, H, W)``: the world's channels as they are (see :mod:`factorion.core.world`).
``task``     int16 ``(max_items,)``: ``1 + item index`` of ``task.items``, 0-padded.
``recipes``  int16 ``(max_recipes,)``: ``1 + recipe index`` of ``task.recipes``, 0-padded. An
             assembler's variant ``v`` means recipe ``task.recipes[v]``.
``step``     float32 ``(1,)``: steps taken / ``max_steps``.
``ratio``    float32 ``(1,)``: current throughput / ``task.reference``, clipped to [0, 16].

Action: ``MultiDiscrete([3, H*W, n_entity, 4, n_variant])`` = (op, cell, entity, dir, variant)
-------------------------------------------------------------------------------------------
* op 0 **place** ``entities[entity]`` with its anchor (top-left cell of the footprint) at
  ``cell = y * W + x``, facing ``dir`` (0 N, 1 E, 2 S, 3 W); ``variant``: assemblers -> recipe
  ``task.recipes[variant]`` (must be one the machine can make), undergrounds -> 0 input /
  1 output, everything else 0.
* op 1 **remove** the entity covering ``cell`` (any cell of it); modelled entities only --
  never a source, sink or obstacle.
* op 2 **finish** (always valid).

Fields that cannot change the result are *ignored* (any value is accepted and acts as 0):
everything after ``op`` for finish, everything after ``cell`` for remove, ``dir`` of
non-directional entities (assemblers, furnaces, chests) and ``variant`` of entities without
variants. An invalid action is a no-op with ``info["invalid"] = True`` (never an exception).

Masks
-----
``env.action_masks()`` / ``info["action_mask"]``: an :class:`ActionMasks` mapping with keys

====== ======================= =============================================================
op     ``(3,)``                ops with at least one valid completion
cell   ``(3, H*W)``            valid cells per op (finish: cell 0 only, see below)
entity ``(H*W, n_entity)``     place: entities that fit with their anchor at the cell in some
                               direction and have some valid variant
dir    ``(H*W, n_entity, 4)``  place: valid directions of that entity at that cell
variant``(n_entity, n_var)``   valid variants of each entity (cell-independent for this task)
====== ======================= =============================================================

(vector env: a leading ``B`` axis on each). A place action is valid iff ``op[0] & cell[0, c] &
entity[c, e] & dir[c, e, d] & variant[e, v]`` -- the factorisation is exact because the
footprint depends only on (entity, dir) and the variant only on (entity, task). The masks are
**exact** against :meth:`World.can_place` / :meth:`World.remove` for every action whose ignored
fields are 0: on ignored fields the masks advertise only the canonical value 0 (so a masked
autoregressive policy puts all probability there: zero log-prob, zero entropy on a head that
does nothing). ``op``, ``cell`` and ``variant`` are computed eagerly; ``entity`` and ``dir`` are
built on first access (the dense ``dir`` is ``B*H*W*n_entity*4`` booleans). For sampling, the
conditional masks of one stage given the earlier choices are cheap: ``masks.mask_for(stage,
prefix)`` / ``env.mask_for(stage, prefix)``, ``prefix = (op, cell, entity)`` as far as needed.
**Compact form** (what to store in a rollout buffer; always with a batch axis, also in the
single env): ``masks.fit`` ``(B, F, H*W)`` -- a footprint (w, h) anchored at the cell is inside
the grid on free cells, for the F distinct footprints ``layout.footprints`` (a separable erosion
of the free-cell map); ``masks.ed_ok`` ``(B, E, 4)`` -- canonical direction and some valid
variant; ``masks.variant``, ``masks.op``, ``masks.cell``. Then ``dir[c, e, d] =
fit[layout.fp_index[e, d], c] & ed_ok[e, d]``.

Reward
------
``r_t = (T_t - T_{t-1}) / task.reference - entity_cost * (X_t - X_{t-1})`` with ``T`` the
simulated throughput (:func:`factorion.sim.throughput`), ``N`` the number of modelled entities
on the grid (sources, sinks and obstacles excluded) and ``X = max(N - N_0, 0)`` the entities
beyond the task's start count: every entity added costs ``entity_cost``, removing one you
added refunds it, and removing a task-given entity is free (not paid: paying for it let a
policy earn by emptying a factory it could not repair). Default ``entity_cost = 0.01``. An
episode's rewards sum to ``(T_final - T_0) / reference - entity_cost * max(N_final - N_0, 0)``
exactly (plus ``invalid_penalty`` per invalid action, default 0). Finishing an untouched level-1 task (a
working factory) earns 0; breaking it costs the lost fraction. The simulator runs only after a
valid place/remove (the vector env also skips those that provably keep the throughput, see
:mod:`factorion.sim.locality`).

``info``: ``throughput``, ``ratio``, ``entities`` (N), ``n_placed``, ``n_removed``,
``n_invalid`` (this episode), ``invalid`` (this step), ``steps``, ``sim_time_s`` (seconds in
the simulator this step), ``family``, ``level``, ``action_mask``; at episode end ``success``
(``ratio >= success_threshold``; reported to the curriculum, when there is one).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from factorion.core import gamedata as gd
from factorion.core.world import KIND, KINDS, N_CHANNELS, World, recipe_id
from factorion.env.masks import (
    DEFAULT_ENTITIES,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_RECIPES,
    OP_FINISH,
    OP_PLACE,
    OP_REMOVE,
    ActionLayout,
    ActionMasks,
    TaskTables,
    count_entities,
)

ENV_ID = "factorion/FactorioEnv-v0"
DEFAULT_ENTITY_COST = 0.01
RATIO_CLIP = 16.0  # the observed ratio is clipped to [0, RATIO_CLIP] (info["ratio"] is not)


# ---------------------------------------------------------------------------------- tasks & sim
def sim_module():
    from factorion import sim
    return sim


def _tasks():
    from factorion import tasks
    return tasks


class TaskSource:
    """Where resets get their tasks, in this order of precedence: ``options["task"]``;
    ``options["family"]`` / ``["level"]`` (``["n_missing"]``) for this reset; ``task_sampler(rng)``;
    ``curriculum.sample(rng)``; the fixed ``family`` / ``level`` (``None`` = uniform over
    ``tasks.FAMILIES`` / ``tasks.LEVELS``). Tasks come from ``tasks.make_task(family, level,
    size, seed, **task_kwargs)`` with a seed drawn from the env's generator.

    ``pool_size > 0`` amortises task generation (``make_task`` takes ~20-30 ms at 11x11, a
    batched env step ~0.01 ms of CPU per sub-env at 256 sub-envs): per (family, level,
    n_missing) up to ``pool_size`` generated tasks are kept; a draw generates a fresh task while
    the pool is not full, and afterwards with probability ``pool_refresh`` (it replaces a random
    entry), else replays a random pooled task. Tasks are never mutated (envs edit a copy).
    ``generated`` counts the tasks made.
    """

    def __init__(self, size, *, family=None, level=None, curriculum=None,
                 task_sampler: Callable | None = None, task_kwargs: dict | None = None,
                 pool_size: int = 0, pool_refresh: float = 0.1):
        self.size, self.family, self.level = size, family, level
        self.curriculum, self.task_sampler = curriculum, task_sampler
        self.task_kwargs = dict(task_kwargs or {})
        self.pool_size, self.pool_refresh = int(pool_size), float(pool_refresh)
        self.pools: dict[tuple, list] = {}
        self.generated = 0

    def _make(self, rng, family, level, kw):
        T = _tasks()
        if family is None:  # uniform over the families that fit the grid
            fams = [f for f in T.FAMILIES if getattr(T, "MIN_SIZE", {}).get(f, 0) <= size_of(self.size)[0]]
            family = fams[int(rng.integers(len(fams)))]
        if level is None:
            level = T.LEVELS[int(rng.integers(len(T.LEVELS)))]
        if not isinstance(self.size, int | np.integer):
            raise ValueError("tasks.make_task needs a square int size; pass task_sampler for others")
        return T.make_task(family, int(level), size=int(self.size), seed=int(rng.integers(2**31 - 1)), **kw)

    def _resolve(self, rng: np.random.Generator, options: dict) -> tuple[tuple, Callable]:
        """(pool key, task maker) of a draw (a None family/level is drawn per made task: the
        pool of that key mixes them)."""
        kw = dict(self.task_kwargs)
        if "n_missing" in options:
            kw["n_missing"] = options["n_missing"]
        if "family" in options or "level" in options:
            family, level = options.get("family", self.family), options.get("level", self.level)
        elif self.task_sampler is not None:
            return ("sampler",), lambda: self.task_sampler(rng)
        elif self.curriculum is not None:
            family, level = self.curriculum.sample(rng)
        else:
            family, level = self.family, self.level
        return (family, level, kw.get("n_missing")), lambda: self._make(rng, family, level, kw)

    def draw(self, rng: np.random.Generator, options: dict | None = None):
        """One task for one reset."""
        options = options or {}
        if options.get("task") is not None:
            return options["task"]
        key, make = self._resolve(rng, options)
        if self.pool_size <= 0:
            self.generated += 1
            return make()
        return self._pooled(rng, key, make, 1)[0]

    def draw_many(self, rng: np.random.Generator, n: int, options: dict | None = None) -> list:
        """``n`` tasks (the replay/refresh choices in one vectorised call where the pool key
        is the same for all: no curriculum)."""
        options = options or {}
        if options.get("task") is not None:
            return [options["task"]] * n
        per_draw_key = (self.curriculum is not None and self.task_sampler is None
                        and "family" not in options and "level" not in options)
        if self.pool_size <= 0 or per_draw_key:
            return [self.draw(rng, options) for _ in range(n)]
        key, make = self._resolve(rng, options)
        return self._pooled(rng, key, make, n)

    def _pooled(self, rng: np.random.Generator, key: tuple, make: Callable, n: int) -> list:
        pool = self.pools.setdefault(key, [])
        out = []
        while len(pool) < self.pool_size and len(out) < n:  # fill first
            self.generated += 1
            pool.append(make())
            out.append(pool[-1])
        m = n - len(out)
        if m:
            fresh = rng.random(m) < self.pool_refresh
            picks = rng.integers(len(pool), size=m)
            for k in range(m):
                i = int(picks[k])
                if fresh[k]:
                    self.generated += 1
                    pool[i] = make()
                out.append(pool[i])
        return out


def size_of(size) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def observation_space(layout: ActionLayout, max_items: int) -> spaces.Dict:
    """The single-env observation space."""
    H, W = layout.height, layout.width
    high = np.array([len(KINDS) - 1, 3, len(gd.item_names()), len(gd.recipe_names()), 2,
                     int((layout.kind_w * layout.kind_h).max())], dtype=np.int16)
    assert len(high) == N_CHANNELS
    return spaces.Dict({
        "grid": spaces.Box(0, np.broadcast_to(high[:, None, None], (N_CHANNELS, H, W)).copy(),
                           (N_CHANNELS, H, W), np.int16),
        "task": spaces.Box(0, len(gd.item_names()), (max_items,), np.int16),
        "recipes": spaces.Box(0, len(gd.recipe_names()), (layout.max_recipes,), np.int16),
        "step": spaces.Box(0.0, 1.0, (1,), np.float32),
        "ratio": spaces.Box(0.0, RATIO_CLIP, (1,), np.float32),
    })


def task_vectors(task, max_items: int, max_recipes: int) -> tuple[np.ndarray, np.ndarray]:
    items = [i for i in task.items if i]
    if len(items) > max_items:
        raise ValueError(f"task has {len(items)} items, max_items is {max_items}")
    names = gd.item_names()
    iv = np.zeros(max_items, dtype=np.int16)
    iv[:len(items)] = [names.index(i) + 1 for i in items]
    rv = np.zeros(max_recipes, dtype=np.int16)
    rv[:len(task.recipes)] = [recipe_id(r) if r in gd.recipe_names() else 0 for r in task.recipes]
    return iv, rv


def _reference(task) -> float:
    ref = float(task.reference)
    return ref if ref > 0 else 1.0


@dataclass
class Prepared:
    """What a reset copies out of a task (built once per task object, see :class:`PrepCache`)."""
    task: Any
    grid: np.ndarray
    rates: dict
    items: np.ndarray
    recipes: np.ndarray
    tables: TaskTables
    ref: float
    family: str | None
    level: int
    n_entities: int
    rate_grid: np.ndarray  # (H, W) source caps, inf = unlimited (sim.rate_grid of task.world.rates)
    throughput: float | None = None  # of task.world, filled by the first reset that simulates it
    slot: int = -1                   # its row in PrepCache.tab


def _rate_grid(shape: tuple[int, int], rates: dict) -> np.ndarray:
    sim = sim_module()
    if hasattr(sim, "rate_grid"):
        return sim.rate_grid(shape, rates)
    return np.full(shape, np.inf)  # a stand-in simulator (benchmarks/tests without factorion.sim)


class PrepCache:
    """Per-task derived data, cached by task identity (tasks are never mutated), so that a
    replayed (pooled) task costs a few array copies and no simulator call at reset.

    Besides the :class:`Prepared` records, every cached task's arrays sit in one row (``slot``)
    of the stacked tables ``tab`` (field -> ``(rows, ...)`` array; ``thr`` is NaN until the
    start throughput is known), so the vector env copies a batch of resets with one fancy index
    per field."""

    FIELDS = ("grid", "items", "recipes", "variant", "recipe_ids", "ed_ok", "fp_any", "ref", "level",
              "n_entities", "rate_grid", "thr")

    def __init__(self, layout: ActionLayout, max_items: int, capacity: int = 4096):
        self.layout, self.max_items, self.capacity = layout, max_items, capacity
        self._cache: OrderedDict[int, Prepared] = OrderedDict()
        self.tab: dict[str, np.ndarray] = {}
        self._rows = 0

    def _store(self, p: Prepared, slot: int) -> None:
        t = p.tables
        vals = {"grid": p.grid, "items": p.items, "recipes": p.recipes, "variant": t.variant,
                "recipe_ids": t.recipe_ids, "ed_ok": t.ed_ok, "fp_any": t.fp_any, "ref": p.ref,
                "level": p.level, "n_entities": p.n_entities, "rate_grid": p.rate_grid,
                "thr": np.nan if p.throughput is None else p.throughput}
        if slot >= self._rows:  # grow (doubling, up to capacity + 1 rows)
            rows = min(max(2 * self._rows, 64), self.capacity + 1)
            for k, v in vals.items():
                a = np.asarray(v)
                new = np.zeros((rows, *a.shape), dtype=np.float64 if k in ("ref", "thr") else a.dtype)
                if k in self.tab:
                    new[:self._rows] = self.tab[k]
                self.tab[k] = new
            self._rows = rows
        for k, v in vals.items():
            self.tab[k][slot] = v
        p.slot = slot

    def set_throughput(self, p: Prepared, thr: float) -> None:
        p.throughput = float(thr)
        self.tab["thr"][p.slot] = p.throughput

    def get(self, task) -> Prepared:
        p = self._cache.get(id(task))
        if p is not None and p.task is task:
            self._cache.move_to_end(id(task))
            return p
        L = self.layout
        if task.world.shape != (L.height, L.width):
            raise ValueError(f"task world is {task.world.shape}, env is {(L.height, L.width)}")
        items, recipes = task_vectors(task, self.max_items, L.max_recipes)
        grid = task.world.grid.copy()
        p = Prepared(task, grid, dict(task.world.rates), items, recipes, L.task_tables(task.recipes),
                     _reference(task), getattr(task, "family", None), int(getattr(task, "level", 0) or 0),
                     int(count_entities(grid[None])[0]), _rate_grid(grid.shape[1:], task.world.rates))
        old = self._cache.pop(id(task), None)  # a dead task's id reused: take over its row
        slot = old.slot if old is not None else len(self._cache)
        if old is None and len(self._cache) >= self.capacity:
            slot = self._cache.popitem(last=False)[1].slot
        self._cache[id(task)] = p
        self._store(p, slot)
        return p


def render_world(world: World, mode: str | None):
    """``rgb_array``: ``factorion.core.render.render_png`` as an (H, W, 3) uint8 array; ``ansi``:
    ``factorion.core.render.render_text``. Falls back to a plain kind-letter map (ansi) / None
    while the render module is missing."""
    if mode is None:
        return None
    try:
        from factorion.core import render
    except ImportError:
        render = None
    if mode == "ansi":
        if render is not None and hasattr(render, "render_text"):
            return render.render_text(world)
        chars = ".bbbbuuuussssiiiiiAAAFFFcccSKX"
        return "\n".join("".join(chars[int(k)] if k < len(chars) else "?" for k in row)
                         for row in world.grid[KIND]) + "\n"
    if mode == "rgb_array":
        if render is None or not hasattr(render, "render_png"):
            return None
        img = render.render_png(world)
        if isinstance(img, bytes | bytearray):
            import io

            from PIL import Image
            img = np.asarray(Image.open(io.BytesIO(img)).convert("RGB"))
        elif hasattr(img, "convert"):  # a PIL image
            img = np.asarray(img.convert("RGB"))
        return np.asarray(img, dtype=np.uint8)
    raise ValueError(f"unknown render mode {mode!r}")


# ---------------------------------------------------------------------------------- single env
class FactorioEnv(gym.Env):
    """One factory (see the module docstring). Edits go through :meth:`World.place` /
    :meth:`World.remove`: this env is the reference the batched one is tested against."""

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

    def __init__(self, size: int | tuple[int, int] = 11, *, family: str | None = None,
                 level: int | None = None, curriculum=None, task_sampler: Callable | None = None,
                 task_kwargs: dict | None = None, task_pool: int = 0, task_pool_refresh: float = 0.1,
                 entities: Sequence[str] = DEFAULT_ENTITIES, max_items: int = DEFAULT_MAX_ITEMS,
                 max_recipes: int = DEFAULT_MAX_RECIPES,
                 max_steps: int | None = None,
                 entity_cost: float = DEFAULT_ENTITY_COST, invalid_penalty: float = 0.0,
                 success_threshold: float = 0.95, render_mode: str | None = None):
        H, W = size_of(size)
        if not (1 <= H and 1 <= W):
            raise ValueError(f"bad size {size}")
        self.size = size
        self.layout = ActionLayout(H, W, entities, max_recipes)
        self.curriculum = curriculum
        self.task_source = TaskSource(size, family=family, level=level, curriculum=curriculum,
                                      task_sampler=task_sampler, task_kwargs=task_kwargs,
                                      pool_size=task_pool, pool_refresh=task_pool_refresh)
        self.max_items, self.max_steps = max_items, max_steps or 2 * H * W
        self.entity_cost, self.invalid_penalty = entity_cost, invalid_penalty
        self.success_threshold = success_threshold
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.observation_space = observation_space(self.layout, max_items)
        self.action_space = spaces.MultiDiscrete(self.layout.nvec)
        self.task = None
        self.world: World | None = None
        self._prep = PrepCache(self.layout, max_items)

    # ------------------------------------------------------------------ helpers
    def _throughput(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        thr = float(sim_module().throughput(self.world))
        return thr, time.perf_counter() - t0

    def _obs(self) -> dict:
        return {"grid": self.world.grid.copy(), "task": self._items.copy(),
                "recipes": self._recipe_vec.copy(),
                "step": np.array([min(self.steps / self.max_steps, 1.0)], np.float32),
                "ratio": np.array([np.clip(self.thr / self.ref, 0.0, RATIO_CLIP)], np.float32)}

    def _refresh_masks(self) -> None:
        t = self._tables
        self._masks = ActionMasks(self.layout, self.world.grid[None], t.variant[None], t.ed_ok[None],
                                  t.fp_any[None], batched=False)

    def _info(self, invalid: bool, sim_time: float) -> dict:
        return {"throughput": self.thr, "ratio": self.thr / self.ref, "entities": self.n_entities,
                "n_placed": self.n_placed, "n_removed": self.n_removed, "n_invalid": self.n_invalid,
                "invalid": invalid, "steps": self.steps, "sim_time_s": sim_time,
                "family": getattr(self.task, "family", None), "level": getattr(self.task, "level", None),
                "action_mask": self._masks}

    def action_masks(self) -> ActionMasks:
        """The current masks (a Mapping of arrays, see the module docstring)."""
        return self._masks

    def mask_for(self, stage: str, prefix: Sequence = ()) -> np.ndarray:
        return self._masks.mask_for(stage, prefix)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        task = self.task_source.draw(self.np_random, options)
        p = self._prep.get(task)
        self.task = task
        self.world = task.world.copy()
        self._items, self._recipe_vec, self._tables, self.ref = p.items, p.recipes, p.tables, p.ref
        self.steps = self.n_placed = self.n_removed = self.n_invalid = 0
        sim_time = 0.0
        if p.throughput is None:
            thr, sim_time = self._throughput()
            self._prep.set_throughput(p, thr)
        self.thr = p.throughput
        self.n_entities = self.n_start = p.n_entities
        self._refresh_masks()
        return self._obs(), self._info(False, sim_time)

    def step(self, action):
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        op, what = self.layout.decode(action, self.task.recipes)
        invalid = not self.layout.oracle_valid(self.world, action, self.task.recipes)
        thr0, n0, sim_time = self.thr, self.n_entities, 0.0
        if not invalid and op == OP_PLACE:
            self.world.place(what)
            self.n_placed += 1
            self.n_entities += 1
        elif not invalid and op == OP_REMOVE:
            self.world.remove(*what)
            self.n_removed += 1
            self.n_entities -= 1
        if not invalid and op in (OP_PLACE, OP_REMOVE):
            self.thr, sim_time = self._throughput()
            self._refresh_masks()
        self.steps += 1
        self.n_invalid += invalid
        extra0, extra = max(n0 - self.n_start, 0), max(self.n_entities - self.n_start, 0)
        reward = (self.thr - thr0) / self.ref - self.entity_cost * (extra - extra0) \
            - (self.invalid_penalty if invalid else 0.0)
        terminated = (not invalid) and op == OP_FINISH
        truncated = (not terminated) and self.steps >= self.max_steps
        info = self._info(invalid, sim_time)
        if terminated or truncated:
            info["success"] = bool(self.thr / self.ref >= self.success_threshold)
            if self.curriculum is not None and hasattr(self.task, "family"):
                self.curriculum.update(self.task.family, self.task.level, info["success"])
        return self._obs(), float(reward), terminated, truncated, info

    def render(self):
        return render_world(self.world, self.render_mode) if self.world is not None else None


# ---------------------------------------------------------------------------------- registration
if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="factorion.env.factorio_env:FactorioEnv",
                 vector_entry_point="factorion.env.vector:FactorioVectorEnv")
