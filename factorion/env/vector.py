"""The batched vector env: ``num_envs`` factories stepped as one numpy batch.

Same observation, action, mask and reward definitions as :mod:`factorion.env` (read its
docstring); every sub-env's grid lives in one ``(B, C, H, W)`` int16 array. Validity comes from
the cached :class:`~factorion.env.ActionMasks`, places and removes are each one fancy-index
assignment over every footprint cell of every acting sub-env, and the rewards use one
``sim.throughput_batch`` call over the sub-envs whose throughput may have changed (below). Only
task drawing at reset is a per-env Python loop.

Autoreset (``autoreset_mode``, also in ``metadata["autoreset_mode"]``):

* ``"next_step"`` (default, gymnasium 1.x's own default): the step after an episode ends
  resets that sub-env and ignores its action; that step returns the new episode's first
  observation with reward 0, ``terminated = truncated = False`` and ``info["autoreset"]``
  True -- a junk transition that training must mask out.
* ``"same_step"``: a finished sub-env is reset within the step that ended it; the returned
  observation is the new episode's first one, the last one is ``info["final_obs"]`` (object
  array, ``None`` elsewhere) and the last info ``info["final_info"]`` (dict of ``(B,)``
  arrays), each with a ``_final_obs`` / ``_final_info`` mask. No junk transitions.
* ``"disabled"``: never resets by itself; call ``reset(options={"reset_mask": done})``.

Task generation (``tasks.make_task``: ~20-30 ms a task at 11x11, against ~0.01 ms of CPU for a batched
step of one sub-env) dominates whenever episodes are short: for training pass ``task_pool`` /
``task_pool_refresh`` (:class:`~factorion.env.TaskSource`); a replayed task also skips the
simulator call at reset (its start throughput is cached).

``reset(options=...)`` accepts what the single env does (``task`` / ``family`` / ``level`` /
``n_missing``, applied to every sub-env being reset), ``tasks`` (one Task per sub-env) and
``reset_mask`` ((B,) bool: reset only those).

Physics: one ``sim.throughput_batch`` call per step over the sub-envs whose grid changed, except
edits of a *detached* entity (``sim.locality``: a belt, underground, splitter, inserter or chest
that links to nothing and changes no other link) -- those provably keep the throughput and are
not re-simulated (``skip_detached=False`` turns this off; ``n_skipped`` counts them per sub-env).
Resets copy a task's arrays from :class:`~factorion.env.PrepCache`'s stacked tables, one fancy
index per field.

``info`` holds ``(B,)`` arrays (``throughput``, ``ratio``, ``entities``, ``n_placed``,
``n_removed``, ``n_invalid``, ``invalid``, ``steps``, ``success`` (meaningful where an
episode ended), ``autoreset``, ``level``, ``family`` (object)), the float ``sim_time_s``
(seconds the whole batch spent in the simulator this step) and ``action_mask`` (an
:class:`ActionMasks` with a leading ``B`` axis).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from factorion.core.world import DIR, IO, ITEM, KIND, N_CHANNELS, PART, RECIPE, World
from factorion.env import factorio_env as _env
from factorion.env import kernels as env_kernels
from factorion.env.factorio_env import (
    DEFAULT_ENTITY_COST,
    RATIO_CLIP,
    PrepCache,
    TaskSource,
    observation_space,
    render_world,
    size_of,
)
from factorion.env.masks import (
    DEFAULT_ENTITIES,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_RECIPES,
    OP_FINISH,
    OP_PLACE,
    OP_REMOVE,
    ActionLayout,
    ActionMasks,
)

assert (KIND, DIR, ITEM, RECIPE, IO, PART) == tuple(range(6))  # env_kernels.edit_pass writes them so

_MODES = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP,
          "disabled": AutoresetMode.DISABLED}


def _footprint_cells(idx: np.ndarray, ay: np.ndarray, ax: np.ndarray, w: np.ndarray, h: np.ndarray):
    """Every cell of every footprint, flattened: (row of the action, env, y, x, 0-based part)."""
    n = w * h
    k = np.repeat(np.arange(len(idx)), n)
    part = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    wk = w[k]
    return k, idx[k], ay[k] + part // wk, ax[k] + part % wk, part


def apply_place(layout: ActionLayout, grids: np.ndarray, idx: np.ndarray, actions: np.ndarray,
                recipe_ids: np.ndarray) -> None:
    """Place ``actions[k]`` (canonical, valid) into ``grids[idx[k]]`` for every k: one fancy
    assignment over all the footprint cells."""
    if len(idx) == 0:
        return
    _, cell, e, d, v = actions.T
    y, x = np.divmod(cell, layout.width)
    vals = np.zeros((len(idx), N_CHANNELS), dtype=np.int16)
    vals[:, KIND] = layout.kind[e]
    vals[:, DIR] = np.where(layout.directional[e], d, 0)
    vals[:, ITEM] = 0
    vals[:, RECIPE] = np.where(layout.is_assembler[e], recipe_ids[idx, v], 0)
    vals[:, IO] = np.where(layout.is_underground[e], v + 1, 0)
    k, b, cy, cx, part = _footprint_cells(idx, y, x, layout.fp_w[e, d], layout.fp_h[e, d])
    vv = vals[k]
    vv[:, PART] = part + 1
    grids[b, :, cy, cx] = vv


def apply_remove(layout: ActionLayout, grids: np.ndarray, idx: np.ndarray, cells: np.ndarray) -> None:
    """Remove the (modelled) entity covering ``cells[k]`` of ``grids[idx[k]]``, all its cells."""
    if len(idx) == 0:
        return
    y, x = np.divmod(cells, layout.width)
    g = grids[idx, :, y, x]                                   # (n, C)
    kind, d, part = g[:, KIND].astype(np.int64), g[:, DIR].astype(np.int64), g[:, PART].astype(np.int64)
    w, h = layout.kind_w[kind, d], layout.kind_h[kind, d]
    _, b, cy, cx, _ = _footprint_cells(idx, y - (part - 1) // w, x - (part - 1) % w, w, h)
    grids[b, :, cy, cx] = 0


class FactorioVectorEnv(VectorEnv):
    """``num_envs`` Factorion envs in one numpy batch (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4,
                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, size: int | tuple[int, int] = 11, *,
                 family: str | None = None, level: int | None = None, curriculum=None,
                 task_sampler: Callable | None = None, task_kwargs: dict | None = None,
                 task_pool: int = 0, task_pool_refresh: float = 0.1,
                 entities: Sequence[str] = DEFAULT_ENTITIES, max_items: int = DEFAULT_MAX_ITEMS,
                 max_recipes: int = DEFAULT_MAX_RECIPES,
                 max_steps: int | None = None, entity_cost: float = DEFAULT_ENTITY_COST,
                 invalid_penalty: float = 0.0, success_threshold: float = 0.95,
                 autoreset_mode: str | AutoresetMode = "next_step", render_mode: str | None = None,
                 skip_detached: bool = True):
        if num_envs < 1:
            raise ValueError("num_envs must be at least 1")
        H, W = size_of(size)
        mode = autoreset_mode if isinstance(autoreset_mode, AutoresetMode) else \
            _MODES.get(str(autoreset_mode).lower()) or AutoresetMode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.num_envs = B = int(num_envs)
        self.size = size
        self.layout = L = ActionLayout(H, W, entities, max_recipes)
        self.curriculum = curriculum
        self.task_source = TaskSource(size, family=family, level=level, curriculum=curriculum,
                                      task_sampler=task_sampler, task_kwargs=task_kwargs,
                                      pool_size=task_pool, pool_refresh=task_pool_refresh)
        self.max_items, self.max_steps = max_items, max_steps or 2 * H * W
        self.entity_cost, self.invalid_penalty = entity_cost, invalid_penalty
        self.success_threshold = success_threshold
        self.single_observation_space = observation_space(L, max_items)
        self.observation_space = batch_space(self.single_observation_space, B)
        self.single_action_space = spaces.MultiDiscrete(L.nvec)
        self.action_space = spaces.MultiDiscrete(np.tile(L.nvec, (B, 1)))

        self.grids = np.zeros((B, N_CHANNELS, H, W), dtype=np.int16)
        self.tasks: list = [None] * B
        self.rates: list[dict] = [{} for _ in range(B)]
        self.rate_grids = np.full((B, H, W), np.inf)
        self.items = np.zeros((B, max_items), dtype=np.int16)
        self.recipes = np.zeros((B, L.max_recipes), dtype=np.int16)
        self.variant = np.zeros((B, L.n_entity, L.n_variant), dtype=bool)
        self.recipe_ids = np.zeros((B, L.n_variant), dtype=np.int16)
        self.ed_ok = np.zeros((B, L.n_entity, 4), dtype=bool)
        self.fp_any = np.zeros((B, len(L.footprints)), dtype=bool)
        self.ref = np.ones(B)
        self.thr = np.zeros(B)
        self.n_ent = np.zeros(B, dtype=np.int64)
        self.n_start = np.zeros(B, dtype=np.int64)  # entities at reset: the clutter cost counts those beyond
        self.steps = np.zeros(B, dtype=np.int64)
        self.n_placed = np.zeros(B, dtype=np.int64)
        self.n_removed = np.zeros(B, dtype=np.int64)
        self.n_invalid = np.zeros(B, dtype=np.int64)
        self.levels = np.zeros(B, dtype=np.int64)
        self.families = np.full(B, None, dtype=object)
        self._needs_reset = np.zeros(B, dtype=bool)
        self.skip_detached = bool(skip_detached)
        self.use_kernels = True            # False: the numpy reference path (tests compare the two)
        self._kernels: tuple | None = None
        self.n_skipped = np.zeros(B, dtype=np.int64)  # edits not re-simulated (all episodes)
        self._masks: ActionMasks | None = None
        self._sim_time = 0.0
        self._prep = PrepCache(L, max_items, capacity=max(4096, 2 * B))

    # ------------------------------------------------------------------ helpers
    def _throughput(self, idx: np.ndarray) -> None:
        """Simulate the sub-envs ``idx`` (one batch call) into ``self.thr``."""
        if len(idx) == 0:
            return
        t0 = time.perf_counter()
        out = _env.sim_module().throughput_batch(self.grids[idx], rates=self.rate_grids[idx])
        self._sim_time += time.perf_counter() - t0
        self.thr[idx] = np.asarray(out, dtype=np.float64)

    def _edit(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Canonicalise, validate and apply this step's actions: (canonical actions ``(B, 5)``,
        valid ``(B,)``, keep ``(B,)``: a valid place/remove of a detached entity, whose
        throughput provably stays -- ``sim.locality``; not re-simulated)."""
        L, B, masks = self.layout, self.num_envs, self._masks
        if self._kernels is None:
            self._kernels = (env_kernels.compiled("edit_pass"), env_kernels.compiled("remove_pass")) \
                if self.use_kernels else (None, None)
        place_k, remove_k = self._kernels
        if place_k is not None:
            a = np.empty((B, 5), dtype=np.int64)
            valid = np.empty(B, dtype=bool)
            place_k(self.grids, np.ascontiguousarray(actions, dtype=np.int64), active, masks.fit, masks.cell,
                    masks.ed_ok, masks.variant, self.recipe_ids, L.nvec, L.kind, L.directional,
                    L.has_variants, L.is_assembler, L.is_underground, L.fp_index, L.fp_w, L.fp_h, a, valid)
        else:
            ok, a = L.canonical(actions)
            valid = masks.valid_canonical(ok, a) & active
            pi = np.nonzero(valid & (a[:, 0] == OP_PLACE))[0]
            apply_place(L, self.grids, pi, a[pi], self.recipe_ids)
        ri = np.nonzero(valid & (a[:, 0] == OP_REMOVE))[0]
        # the locality test sees the placed entities in and the removed ones still there
        keep = np.zeros(B, dtype=bool)
        sim = _env.sim_module()
        if self.skip_detached and hasattr(sim, "detached_batch"):
            ei = np.nonzero(valid & (a[:, 0] != OP_FINISH))[0]
            if len(ei):
                keep[ei] = sim.detached_batch(self.grids, ei, a[ei, 1])
        if len(ri):
            if remove_k is not None:
                remove_k(self.grids, ri, a[ri, 1], L.kind_w, L.kind_h)
            else:
                apply_remove(L, self.grids, ri, a[ri, 1])
        return a, valid, keep

    def _reset_envs(self, idx: np.ndarray, options: dict | None = None) -> None:
        if len(idx) == 0:
            return
        options = options or {}
        tasks = options.get("tasks")
        if tasks is None:
            drawn = self.task_source.draw_many(self.np_random, len(idx), options)
        else:
            drawn = [self.task_source.draw(self.np_random, {**options, "task": tasks[i]}) for i in idx]
        preps = [self._prep.get(t) for t in drawn]
        for i, p in zip(idx.tolist(), preps, strict=True):
            self.tasks[i] = p.task
            self.rates[i] = p.rates
            self.families[i] = p.family
        slots = np.fromiter((p.slot for p in preps), dtype=np.int64, count=len(preps))
        T = self._prep.tab
        # copy on write: earlier ActionMasks objects (maybe kept in a rollout buffer) hold these
        self.variant, self.ed_ok = self.variant.copy(), self.ed_ok.copy()
        self.grids[idx] = T["grid"][slots]
        self.items[idx] = T["items"][slots]
        self.recipes[idx] = T["recipes"][slots]
        self.variant[idx] = T["variant"][slots]
        self.recipe_ids[idx] = T["recipe_ids"][slots]
        self.ed_ok[idx] = T["ed_ok"][slots]
        self.fp_any[idx] = T["fp_any"][slots]
        self.ref[idx] = T["ref"][slots]
        self.levels[idx] = T["level"][slots]
        self.n_ent[idx] = self.n_start[idx] = T["n_entities"][slots]
        self.rate_grids[idx] = T["rate_grid"][slots]
        self.steps[idx] = self.n_placed[idx] = self.n_removed[idx] = self.n_invalid[idx] = 0
        thr = T["thr"][slots]
        self.thr[idx] = thr
        unknown = np.nonzero(np.isnan(thr))[0]
        if len(unknown):
            self._throughput(idx[unknown])
            for k in unknown.tolist():
                self._prep.set_throughput(preps[k], self.thr[idx[k]])

    def _obs(self) -> dict:
        return {"grid": self.grids.copy(), "task": self.items.copy(), "recipes": self.recipes.copy(),
                "step": np.minimum(self.steps / self.max_steps, 1.0).astype(np.float32)[:, None],
                "ratio": np.clip(self.thr / self.ref, 0.0, RATIO_CLIP).astype(np.float32)[:, None]}

    def _info(self, invalid: np.ndarray, autoreset: np.ndarray, success: np.ndarray) -> dict:
        return {"throughput": self.thr.copy(), "ratio": self.thr / self.ref, "entities": self.n_ent.copy(),
                "n_placed": self.n_placed.copy(), "n_removed": self.n_removed.copy(),
                "n_invalid": self.n_invalid.copy(), "invalid": invalid, "steps": self.steps.copy(),
                "success": success, "autoreset": autoreset, "level": self.levels.copy(),
                "family": self.families.copy(), "sim_time_s": self._sim_time,
                "action_mask": self._masks}

    def _refresh_masks(self) -> None:
        self._masks = ActionMasks(self.layout, self.grids, self.variant, self.ed_ok, self.fp_any)

    def action_masks(self) -> ActionMasks:
        """Masks of every sub-env's current state (leading ``B`` axis)."""
        return self._masks

    def mask_for(self, stage: str, prefix: Sequence = ()) -> np.ndarray:
        return self._masks.mask_for(stage, prefix)

    def world(self, i: int) -> World:
        """Sub-env ``i`` as a World whose grid is a view into the batch (obstacles/rates of its task)."""
        w = World.__new__(World)
        w.grid = self.grids[i]
        w.obstacles = list(self.tasks[i].world.obstacles) if self.tasks[i] is not None else []
        w.rates = dict(self.rates[i])
        return w

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        B = self.num_envs
        mask = np.ones(B, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        self._sim_time = 0.0
        self._reset_envs(np.nonzero(mask)[0], options)
        self._needs_reset[mask] = False
        self._refresh_masks()
        z = np.zeros(B, dtype=bool)
        return self._obs(), self._info(z, z.copy(), z.copy())

    def step(self, actions):
        if self._masks is None:
            raise RuntimeError("call reset() before step()")
        B = self.num_envs
        self._sim_time = 0.0
        actions = np.asarray(actions).reshape(B, 5)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            auto = self._needs_reset.copy()
        else:
            auto = np.zeros(B, dtype=bool)
        active = ~auto
        a, valid, keep = self._edit(actions, active)
        op = a[:, 0]
        place, remove = valid & (op == OP_PLACE), valid & (op == OP_REMOVE)
        edit = place | remove
        thr0, n0 = self.thr.copy(), self.n_ent.copy()
        self.n_ent += place.astype(np.int64) - remove
        self.n_skipped += keep
        self._throughput(np.nonzero(edit & ~keep)[0])
        invalid = active & ~valid
        extra = np.maximum(self.n_ent - self.n_start, 0) - np.maximum(n0 - self.n_start, 0)
        reward = (self.thr - thr0) / self.ref - self.entity_cost * extra \
            - self.invalid_penalty * invalid
        self.steps += active
        self.n_placed += place
        self.n_removed += remove
        self.n_invalid += invalid
        terminated = valid & (op == OP_FINISH)
        truncated = active & ~terminated & (self.steps >= self.max_steps)
        done = terminated | truncated
        success = done & (self.thr / self.ref >= self.success_threshold)
        if self.curriculum is not None:
            for i in np.nonzero(done)[0]:
                if self.families[i] is not None:
                    self.curriculum.update(self.families[i], int(self.levels[i]), bool(success[i]))

        final = None
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            final_obs_all = self._obs()
            final_info = self._info(invalid.copy(), np.zeros(B, bool), success.copy())
            del final_info["action_mask"]  # (the masks of the finished states are never needed)
            final_obs = np.full(B, None, dtype=object)
            for i in np.nonzero(done)[0]:
                final_obs[i] = {k: v[i] for k, v in final_obs_all.items()}
            final = (final_obs, final_info, done.copy())
            self._reset_envs(np.nonzero(done)[0])
        elif self.autoreset_mode == AutoresetMode.NEXT_STEP:
            if auto.any():
                self._reset_envs(np.nonzero(auto)[0])
                reward[auto] = 0.0
            self._needs_reset = done
        self._refresh_masks()
        info = self._info(invalid, auto, success)
        if final is not None:
            info["final_obs"], info["final_info"] = final[0], final[1]
            info["_final_obs"], info["_final_info"] = final[2], final[2].copy()
        return self._obs(), reward.astype(np.float64), terminated, truncated, info

    def render(self):
        if self.render_mode is None:
            return None
        return tuple(render_world(self.world(i), self.render_mode) for i in range(self.num_envs))
