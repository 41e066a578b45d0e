"""Actions and their exact staged masks: :class:`ActionLayout` (the encoding of one grid size and
entity list) and :class:`ActionMasks` (the masks of a batch of states).

The definitions -- action fields, what each mask means, the compact form, why the factorisation
is exact -- are in the module docstring of :mod:`factorion.env` (everything here is re-exported
there). No torch, no simulator.

Mask building (:func:`mask_arrays`) is one compiled pass (numba, cached; ``env_kernels``) over
row bit masks of the free cells: every footprint's fit map, the removable cells and the per-op
summaries. numpy's vectorised erosion (:func:`fit_maps`, the reference) does it with
``FACTORION_NOJIT=1``, without numba or on grids wider than 64.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.kinds import kind_tables
from factorion.core.world import (
    DIRECTIONAL,
    IO_INPUT,
    KIND,
    KIND_ID,
    PART,
    SINK,
    SOURCE,
    Entity,
    World,
    WorldError,
    recipe_id,
)

OP_PLACE, OP_REMOVE, OP_FINISH = 0, 1, 2
N_OPS = 3
STAGES = ("op", "cell", "entity", "dir", "variant")

#: Default placeable entities: 4 belts, 4 undergrounds, 4 splitters, 5 inserters, 3 assemblers,
#: 3 furnaces and one chest.
DEFAULT_ENTITIES: tuple[str, ...] = (gd.BELTS + gd.UNDERGROUNDS + gd.SPLITTERS + gd.INSERTERS
                                     + gd.ASSEMBLERS + gd.FURNACES + ("wooden-chest",))
N_MODELLED = len(gd.MODELLED)  # kind ids 1..N_MODELLED are modelled entities (removable)
DEFAULT_MAX_ITEMS = 8  # items a task may name (observation ``task`` vector)
DEFAULT_MAX_RECIPES = 4  # recipes a task may use (the ``variant`` stage; 0.8% of mined windows use more)


# ---------------------------------------------------------------------------------- layout
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
                 max_recipes: int = DEFAULT_MAX_RECIPES):
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
        self.kind_w, self.kind_h = kind_tables()[:2]  # (width, height) [kind, dir]; sources etc. 1x1
        self.fp_w, self.fp_h = self.kind_w[self.kind], self.kind_h[self.kind]
        self.footprints = sorted({(int(w), int(h)) for w, h in zip(self.fp_w.ravel(), self.fp_h.ravel(),
                                                                     strict=True)})
        self.fp_wh = np.array(self.footprints, dtype=np.int64).reshape(-1, 2)
        fp_pos = {fp: i for i, fp in enumerate(self.footprints)}
        self.fp_index = np.array([[fp_pos[(int(self.fp_w[i, d]), int(self.fp_h[i, d]))] for d in range(4)]
                                  for i in range(n)], dtype=np.int64)
        # variant validity that does not depend on the task (assemblers are filled per task)
        self.base_variant = np.zeros((n, self.n_variant), dtype=bool)
        self.base_variant[:, 0] = True
        self.base_variant[self.is_underground, 1] = True
        self.base_variant[self.is_assembler] = False
        self.has_variants = self.is_underground | self.is_assembler
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


@functools.lru_cache(maxsize=16)
def _arange(n: int) -> np.ndarray:
    a = np.arange(n)
    a.flags.writeable = False
    return a


def onehot0(B: int, n: int) -> np.ndarray:
    m = np.zeros((B, n), dtype=bool)
    m[:, 0] = True
    return m


def kernel():
    from factorion.env.kernels import compiled
    return compiled("mask_pass")


def mask_arrays(layout, grids: np.ndarray, fp_any: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fit (B, F, HW), cell (B, 3, HW), op (B, 3))`` of a batch of grids: the compiled pass,
    or the numpy reference when there is no compiler."""
    B = grids.shape[0]
    HW = layout.n_cells
    k = kernel() if layout.width <= 64 else None  # (row bit masks: uint64)
    if k is not None:
        fit = np.zeros((B, len(layout.footprints), HW), dtype=bool)
        cell = np.zeros((B, 3, HW), dtype=bool)
        op = np.zeros((B, 3), dtype=bool)
        k(np.ascontiguousarray(grids), layout.fp_wh[:, 0], layout.fp_wh[:, 1],
          np.ascontiguousarray(fp_any, dtype=bool), N_MODELLED, fit, cell, op)
        return fit, cell, op
    fit = fit_maps(grids, layout.footprints)
    removable = removable_cells(grids)
    place_cells = np.zeros((B, HW), dtype=bool)
    for f in range(len(layout.footprints)):
        place_cells |= fit[:, f] & fp_any[:, f, None]
    cell = np.stack([place_cells, removable, onehot0(B, HW)], 1)
    op = np.stack([place_cells.any(1), removable.any(1), np.ones(B, bool)], 1)
    return fit, cell, op


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
        self.fit, self.cell, self.op = mask_arrays(layout, grids, fp_any)  # (B, F, HW), (B, 3, HW), (B, 3)
        self.removable = self.cell[:, 1]                             # (B, HW)
        self.variant = variant                                       # (B, E, V)
        self.ed_ok = ed_ok                                           # (B, E, 4)
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
        if stage == "op":
            return self.op if self.batched else self.op[0]
        L = self.layout
        B = self.B
        need = min(STAGES.index(stage), 3)  # variant needs (op, cell, entity), not dir
        if len(prefix) < need:
            raise ValueError(f"stage {stage!r} needs a prefix of {need} choices")
        pre = [np.full(B, p, dtype=np.int64) if np.ndim(p) == 0 else np.asarray(p, dtype=np.int64)
               for p in prefix[:need]]
        b = _arange(B)
        if stage == "cell":
            out = self.cell[b, pre[0]]
        else:
            op, cell = pre[0], pre[1]
            if stage == "entity":
                f = self.fit[b, :, cell]                              # (B, F)
                out = (f[:, L.fp_index] & self.ed_ok).any(-1)         # (B, E)
            elif stage == "dir":
                e = pre[2]
                out = self.fit[b[:, None], L.fp_index[e], cell[:, None]] & self.ed_ok[b, e]  # (B, 4)
            else:
                out = self.variant[b, pre[2]]                          # (B, V)
            ignored = op != OP_PLACE  # (non-directional / variant-less entities: 0 only already)
            if ignored.any():  # (out is a fresh array here: fancy indexing copies)
                out[ignored] = False
                out[ignored, 0] = True
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
