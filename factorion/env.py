"""The gymnasium environment: build a factory on the grid, rewarded by simulated throughput.

Registered as ``factorion/FactorioEnv-v0`` (``gymnasium.make``) with a ``vector_entry_point``
(:class:`factorion.env_vector.FactorioVectorEnv`, one numpy batch; ``gymnasium.make_vec``).

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
``grid``     int16 ``(C, H, W)``: the world's channels as they are (see :mod:`factorion.world`).
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
``r_t = (T_t - T_{t-1}) / task.reference - entity_cost * (N_t - N_{t-1})`` with ``T`` the
simulated throughput (:func:`factorion.sim.throughput`) and ``N`` the number of modelled
entities on the grid (sources, sinks and obstacles excluded; task-given entities included, so
removing clutter pays ``+entity_cost``). Default ``entity_cost = 0.01``. An episode's rewards
sum to ``(T_final - T_0) / reference - entity_cost * (N_final - N_0)`` exactly (plus
``invalid_penalty`` per invalid action, default 0). Finishing an untouched level-1 task (a
working factory) earns 0; breaking it costs the lost fraction. The simulator runs only after a
valid place/remove.

``info``: ``throughput``, ``ratio``, ``entities`` (N), ``n_placed``, ``n_removed``,
``n_invalid`` (this episode), ``invalid`` (this step), ``steps``, ``sim_time_s`` (seconds in
the simulator this step), ``family``, ``level``, ``action_mask``; at episode end ``success``
(``ratio >= success_threshold``; reported to the curriculum, when there is one).
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from . import gamedata as gd
from .world import (
    DIRECTIONAL,
    IO_INPUT,
    KIND,
    KIND_ID,
    KINDS,
    N_CHANNELS,
    PART,
    SINK,
    SOURCE,
    Entity,
    World,
    WorldError,
    recipe_id,
)

ENV_ID = "factorion/FactorioEnv-v0"
OP_PLACE, OP_REMOVE, OP_FINISH = 0, 1, 2
N_OPS = 3
STAGES = ("op", "cell", "entity", "dir", "variant")

#: Default placeable entities: 4 belts, 4 undergrounds, 4 splitters, 5 inserters, 3 assemblers,
#: 3 furnaces and one chest.
DEFAULT_ENTITIES: tuple[str, ...] = (gd.BELTS + gd.UNDERGROUNDS + gd.SPLITTERS + gd.INSERTERS
                                     + gd.ASSEMBLERS + gd.FURNACES + ("wooden-chest",))
DEFAULT_ENTITY_COST = 0.01
RATIO_CLIP = 16.0  # the observed ratio is clipped to [0, RATIO_CLIP] (info["ratio"] is not)
N_MODELLED = len(gd.MODELLED)  # kind ids 1..N_MODELLED are modelled entities (removable)


# ---------------------------------------------------------------------------------- layout
def _kind_footprints() -> tuple[np.ndarray, np.ndarray]:
    """(width, height) tables ``[kind, dir]`` for every kind id (sources etc. are 1x1)."""
    fw = np.ones((len(KINDS), 4), dtype=np.int64)
    fh = np.ones((len(KINDS), 4), dtype=np.int64)
    for k, name in enumerate(KINDS):
        if name in gd.MODELLED:
            for d in range(4):
                fw[k, d], fh[k, d] = gd.footprint(name, d)
    return fw, fh


class TaskTables(NamedTuple):
    """What the masks need from a task: valid variants ``(E, V)``, recipe id of each variant
    ``(V,)``, usable (entity, dir) pairs ``(E, 4)``, usable footprints ``(F,)``."""
    variant: np.ndarray
    recipe_ids: np.ndarray
    ed_ok: np.ndarray
    fp_any: np.ndarray


class ActionLayout:
    """The action encoding for one grid size and entity list (static tables, no state)."""

    def __init__(self, height: int, width: int, entities: Sequence[str] = DEFAULT_ENTITIES,
                 max_recipes: int = 4):
        unknown = [e for e in entities if e not in gd.MODELLED]
        if unknown:
            raise ValueError(f"not placeable (not modelled): {unknown}")
        if len(set(entities)) != len(entities):
            raise ValueError("duplicate entity names")
        self.height, self.width, self.n_cells = height, width, height * width
        self.entities = tuple(entities)
        self.n_entity = len(self.entities)
        self.max_recipes = max_recipes
        self.n_variant = max(2, max_recipes)
        self.nvec = np.array([N_OPS, self.n_cells, self.n_entity, 4, self.n_variant], dtype=np.int64)
        n = self.n_entity
        self.kind = np.array([KIND_ID[e] for e in self.entities], dtype=np.int16)
        self.directional = np.array([e in DIRECTIONAL for e in self.entities])
        self.is_underground = np.array([e in gd.UNDERGROUNDS for e in self.entities])
        self.is_assembler = np.array([e in gd.ASSEMBLERS for e in self.entities])
        self.dir_ok = np.zeros((n, 4), dtype=bool)  # canonical directions
        self.dir_ok[:, 0] = True
        self.dir_ok[self.directional] = True
        self.fp_w = np.zeros((n, 4), dtype=np.int64)
        self.fp_h = np.zeros((n, 4), dtype=np.int64)
        for i, e in enumerate(self.entities):
            for d in range(4):
                self.fp_w[i, d], self.fp_h[i, d] = gd.footprint(e, d)
        self.footprints = sorted({(int(w), int(h)) for w, h in zip(self.fp_w.ravel(), self.fp_h.ravel(),
                                                                     strict=True)})
        fp_pos = {fp: i for i, fp in enumerate(self.footprints)}
        self.fp_index = np.array([[fp_pos[(int(self.fp_w[i, d]), int(self.fp_h[i, d]))] for d in range(4)]
                                  for i in range(n)], dtype=np.int64)
        # variant validity that does not depend on the task (assemblers are filled per task)
        self.base_variant = np.zeros((n, self.n_variant), dtype=bool)
        self.base_variant[:, 0] = True
        self.base_variant[self.is_underground, 1] = True
        self.base_variant[self.is_assembler] = False
        self.has_variants = self.is_underground | self.is_assembler
        self.kind_w, self.kind_h = _kind_footprints()
        self.max_fp = int(max(self.kind_w.max(), self.kind_h.max()))
        self._tables: dict[tuple[str, ...], TaskTables] = {}

    # ------------------------------------------------------------------ per-task tables
    def task_tables(self, recipes: Sequence[str]) -> TaskTables:
        """The per-task mask tables (cached by the recipe tuple)."""
        key = tuple(recipes)
        t = self._tables.get(key)
        if t is None:
            t = self._tables[key] = self._task_tables(key)
        return t

    def _task_tables(self, recipes: tuple[str, ...]) -> TaskTables:
        if len(recipes) > self.max_recipes:
            raise ValueError(f"task has {len(recipes)} recipes, max_recipes is {self.max_recipes}")
        var = self.base_variant.copy()
        rid = np.zeros(self.n_variant, dtype=np.int16)
        for v, r in enumerate(recipes):
            try:
                rid[v] = recipe_id(r)
            except WorldError:
                continue  # a recipe no modelled machine makes: no assembler variant for it
            for i in np.nonzero(self.is_assembler)[0]:
                var[i, v] = gd.machine_can_make(self.entities[i], r)
        ed_ok = self.dir_ok & var.any(-1)[:, None]
        fp_any = np.array([(ed_ok & (self.fp_index == f)).any() for f in range(len(self.footprints))])
        return TaskTables(var, rid, ed_ok, fp_any)

    # ------------------------------------------------------------------ actions
    def canonical(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(in-range flag ``(B,)``, actions ``(B, 5)`` with ignored fields set to 0)."""
        a = np.asarray(actions).reshape(-1, 5).astype(np.int64)
        ok = ((a >= 0) & (a < self.nvec)).all(1)
        a = np.where(ok[:, None], a, 0)
        op, e = a[:, 0], a[:, 2]
        a[op == OP_FINISH, 1:] = 0
        a[op == OP_REMOVE, 2:] = 0
        place = op == OP_PLACE
        a[:, 3] = np.where(place & ~self.directional[e], 0, a[:, 3])
        a[:, 4] = np.where(place & ~self.has_variants[e], 0, a[:, 4])
        return ok, a

    def decode(self, action, recipes: Sequence[str]) -> tuple[int, Any]:
        """One action -> (op, Entity | (y, x) | None); (-1, reason) for an out-of-space or
        unmeaningful one. The world-level meaning of an action, used by the single env and as
        the oracle of the mask tests."""
        ok, a = self.canonical(np.asarray(action))
        if not ok[0]:
            return -1, "action outside the action space"
        op, cell, e, d, v = (int(t) for t in a[0])
        y, x = divmod(cell, self.width)
        if op == OP_FINISH:
            return op, None
        if op == OP_REMOVE:
            return op, (y, x)
        name = self.entities[e]
        recipe, io = None, 0
        if self.is_assembler[e]:
            if v >= len(recipes):
                return -1, f"variant {v}: the task has {len(recipes)} recipes"
            recipe = recipes[v]
        elif self.is_underground[e]:
            if v > 1:
                return -1, f"variant {v}: undergrounds take 0 (input) or 1 (output)"
            io = IO_INPUT + v
        return op, Entity(name, y, x, d, recipe=recipe, io=io)

    def oracle_valid(self, world: World, action, recipes: Sequence[str]) -> bool:
        """Whether the world accepts ``action`` (World.can_place / World.remove rules)."""
        op, what = self.decode(action, recipes)
        if op == OP_FINISH:
            return True
        if op == OP_REMOVE:
            e = world.entity_at(*what)
            return e is not None and e.name not in (SOURCE, SINK, "obstacle")
        if op == OP_PLACE:
            if world.can_place(what) is not None:
                return False
            if what.recipe:
                try:
                    recipe_id(what.recipe)
                except WorldError:
                    return False
            return True
        return False


# ---------------------------------------------------------------------------------- masks
@functools.cache
def _coords(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of each flattened cell."""
    return np.tile(np.arange(W), H), np.repeat(np.arange(H), W)


def fit_maps(grids: np.ndarray, footprints: Sequence[tuple[int, int]]) -> np.ndarray:
    """``(B, n_footprint, H*W)`` bool: an entity of footprint (w, h) anchored at the cell lies
    inside the grid on empty cells only (a separable erosion of the free-cell map, done on the
    flattened cells so every operation is one contiguous pass)."""
    B, _, H, W = grids.shape
    HW = H * W
    free = (grids[:, PART] == 0).reshape(B, HW)
    xs, ys = _coords(H, W)
    out = np.zeros((B, len(footprints), HW), dtype=bool)
    rows: dict[int, np.ndarray] = {}
    for i, (w, h) in enumerate(footprints):
        if h > H or w > W:
            continue
        if w not in rows:  # r[y*W + x]: cells x..x+w-1 of row y are free
            r = free.copy()
            for dx in range(1, w):
                r[:, :-dx] &= free[:, dx:]
            r &= xs <= W - w
            rows[w] = r
        r = rows[w]
        c = out[:, i]
        c[:] = r
        for dy in range(1, h):
            c[:, :-dy * W] &= r[:, dy * W:]
        c &= ys <= H - h
    return out


def removable_cells(grids: np.ndarray) -> np.ndarray:
    """``(B, H*W)`` bool: the cell holds a modelled entity (not empty/source/sink/obstacle)."""
    k = grids[:, KIND].reshape(grids.shape[0], -1)
    return (k >= 1) & (k <= N_MODELLED)


def count_entities(grids: np.ndarray) -> np.ndarray:
    """``(B,)`` number of modelled entities (anchors) on each grid."""
    k = grids[:, KIND]
    return ((grids[:, PART] == 1) & (k >= 1) & (k <= N_MODELLED)).sum(axis=(1, 2))


def _onehot0(B: int, n: int) -> np.ndarray:
    m = np.zeros((B, n), dtype=bool)
    m[:, 0] = True
    return m


class ActionMasks(Mapping):
    """Exact action masks for a batch of states (see the module docstring for the keys).

    ``batched=False`` drops the leading batch axis in what it returns (the single env).
    """

    def __init__(self, layout: ActionLayout, grids: np.ndarray, variant: np.ndarray,
                 ed_ok: np.ndarray, fp_any: np.ndarray, batched: bool = True):
        """``grids`` (B, C, H, W); ``variant``, ``ed_ok``, ``fp_any``: the task tables stacked
        over the batch (see :class:`TaskTables`)."""
        self.layout = layout
        self.batched = batched
        self.B = grids.shape[0]
        self.fit = fit_maps(grids, layout.footprints)               # (B, F, HW)
        self.removable = removable_cells(grids)                      # (B, HW)
        self.variant = variant                                       # (B, E, V)
        self.ed_ok = ed_ok                                           # (B, E, 4)
        place_cells = np.zeros((self.B, layout.n_cells), dtype=bool)
        for f in range(len(layout.footprints)):
            place_cells |= self.fit[:, f] & fp_any[:, f, None]
        self.cell = np.stack([place_cells, self.removable, _onehot0(self.B, layout.n_cells)], 1)
        self.op = np.stack([place_cells.any(1), self.removable.any(1), np.ones(self.B, bool)], 1)
        self._dense: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ dense (Mapping)
    def _get(self, key: str) -> np.ndarray:
        if key == "op":
            return self.op
        if key == "cell":
            return self.cell
        if key == "variant":
            return self.variant
        if key == "dir":
            if "dir" not in self._dense:
                fitT = self.fit.transpose(0, 2, 1)                   # (B, HW, F)
                d = fitT[:, :, self.layout.fp_index]                 # (B, HW, E, 4)
                d &= self.ed_ok[:, None]
                self._dense["dir"] = d
            return self._dense["dir"]
        if key == "entity":
            if "entity" not in self._dense:
                self._dense["entity"] = self._get("dir").any(-1)
            return self._dense["entity"]
        raise KeyError(key)

    def __getitem__(self, key: str) -> np.ndarray:
        m = self._get(key)
        return m if self.batched else m[0]

    def __iter__(self) -> Iterator[str]:
        return iter(STAGES)

    def __len__(self) -> int:
        return len(STAGES)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActionMasks) and all(
            np.array_equal(self[k], other[k]) for k in STAGES)

    __hash__ = None

    def compact(self) -> dict[str, np.ndarray]:
        """The compact form (module docstring), batched even for the single env: what to keep
        in a rollout buffer (``dir`` is ``fit[:, fp_index[e, d], c] & ed_ok[:, e, d]``)."""
        return {"op": self.op, "cell": self.cell, "fit": self.fit, "ed_ok": self.ed_ok,
                "variant": self.variant}

    def dense(self) -> dict[str, np.ndarray]:
        """All five masks as a plain dict of arrays."""
        return {k: self[k] for k in STAGES}

    # ------------------------------------------------------------------ conditional
    def mask_for(self, stage: str, prefix: Sequence = ()) -> np.ndarray:
        """The mask of ``stage`` given the earlier choices ``prefix = (op, cell, entity[, dir])``
        (scalars, or ``(B,)`` arrays when batched; extra trailing choices are ignored).
        Ignored stages (everything after op for finish, after cell for remove) give the
        canonical one-hot at 0."""
        L = self.layout
        B = self.B
        pre = [np.full(B, p, dtype=np.int64) if np.ndim(p) == 0 else np.asarray(p, dtype=np.int64)
               for p in prefix]
        need = min(STAGES.index(stage), 3)  # variant needs (op, cell, entity), not dir
        if len(pre) < need:
            raise ValueError(f"stage {stage!r} needs a prefix of {need} choices")
        b = np.arange(B)
        if stage == "op":
            out = self.op
        elif stage == "cell":
            out = self.cell[b, pre[0]]
        else:
            op, cell = pre[0], pre[1]
            f = self.fit[b, :, cell]                                  # (B, F)
            if stage == "entity":
                out = (f[:, L.fp_index] & self.ed_ok).any(-1)         # (B, E)
            elif stage == "dir":
                e = pre[2]
                out = f[b[:, None], L.fp_index[e]] & self.ed_ok[b, e]  # (B, 4)
            else:
                out = self.variant[b, pre[2]]                          # (B, V)
            ignored = op != OP_PLACE  # (non-directional / variant-less entities: 0 only already)
            if ignored.any():
                out = out.copy()
                out[ignored] = _onehot0(int(ignored.sum()), out.shape[1])
        return out if self.batched else out[0]

    # ------------------------------------------------------------------ validity
    def valid(self, actions: np.ndarray) -> np.ndarray:
        """``(B,)`` whether each action (``(B, 5)``) is valid (ignored fields may be anything)."""
        return self.valid_canonical(*self.layout.canonical(actions))

    def valid_canonical(self, ok: np.ndarray, a: np.ndarray) -> np.ndarray:
        """:meth:`valid` of the output of :meth:`ActionLayout.canonical`."""
        L = self.layout
        b = np.arange(self.B)
        op, cell, e, d, v = a.T
        place = self.fit[b, L.fp_index[e, d], cell] & self.ed_ok[b, e, d] & self.variant[b, e, v]
        rem = self.removable[b, cell]
        return ok & np.where(op == OP_PLACE, place, np.where(op == OP_REMOVE, rem, True))


# ---------------------------------------------------------------------------------- tasks & sim
def _sim():
    from . import sim
    return sim


def _tasks():
    from . import tasks
    return tasks


class TaskSource:
    """Where resets get their tasks, in this order of precedence: ``options["task"]``;
    ``options["family"]`` / ``["level"]`` (``["n_missing"]``) for this reset; ``task_sampler(rng)``;
    ``curriculum.sample(rng)``; the fixed ``family`` / ``level`` (``None`` = uniform over
    ``tasks.FAMILIES`` / ``tasks.LEVELS``). Tasks come from ``tasks.make_task(family, level,
    size, seed, **task_kwargs)`` with a seed drawn from the env's generator.

    ``pool_size > 0`` amortises task generation (``make_task`` takes ~7-40 ms at 11x11, a
    batched env step ~0.05 ms per sub-env): per (family, level, n_missing) up to ``pool_size``
    generated tasks are kept; a draw generates a fresh task while the pool is not full, and
    afterwards with probability ``pool_refresh`` (it replaces a random entry), else replays a
    random pooled task. Tasks are never mutated (envs edit a copy). ``generated`` counts the
    tasks made.
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
            fams = [f for f in T.FAMILIES if getattr(T, "MIN_SIZE", {}).get(f, 0) <= _size(self.size)[0]]
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


def _size(size) -> tuple[int, int]:
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
    throughput: float | None = None  # of task.world, filled by the first reset that simulates it


class PrepCache:
    """Per-task derived data, cached by task identity (tasks are never mutated), so that a
    replayed (pooled) task costs a few array copies and no simulator call at reset."""

    def __init__(self, layout: ActionLayout, max_items: int, capacity: int = 4096):
        self.layout, self.max_items, self.capacity = layout, max_items, capacity
        self._cache: OrderedDict[int, Prepared] = OrderedDict()

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
                     int(count_entities(grid[None])[0]))
        self._cache[id(task)] = p
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return p


def render_world(world: World, mode: str | None):
    """``rgb_array``: ``factorion.render.render_png`` as an (H, W, 3) uint8 array; ``ansi``:
    ``factorion.render.render_text``. Falls back to a plain kind-letter map (ansi) / None
    while the render module is missing."""
    if mode is None:
        return None
    try:
        from . import render
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
                 entities: Sequence[str] = DEFAULT_ENTITIES, max_items: int = 8, max_recipes: int = 4,
                 max_steps: int | None = None,
                 entity_cost: float = DEFAULT_ENTITY_COST, invalid_penalty: float = 0.0,
                 success_threshold: float = 0.95, render_mode: str | None = None):
        H, W = _size(size)
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
        thr = float(_sim().throughput(self.world))
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
            p.throughput, sim_time = self._throughput()
        self.thr = p.throughput
        self.n_entities = p.n_entities
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
        reward = (self.thr - thr0) / self.ref - self.entity_cost * (self.n_entities - n0) \
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
    gym.register(id=ENV_ID, entry_point="factorion.env:FactorioEnv",
                 vector_entry_point="factorion.env_vector:FactorioVectorEnv")
