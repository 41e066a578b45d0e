"""Task constants, the :class:`Task` record and the small geometry / recipe helpers every other
part of :mod:`factorion.tasks` uses (cells of an entity, fronts, inserter cells, underground
pairing, recipe products and ingredients)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import IO_INPUT, IO_OUTPUT, OBSTACLE, SINK, SOURCE, Entity, World

FAMILIES: tuple[str, ...] = ("belt", "underground", "splitter", "smelting", "assembler1", "assembler2",
                             "tree2")
SCALE_FAMILIES: tuple[str, ...] = ("scale",)  # named only: not in the default draw over FAMILIES
ALL_FAMILIES: tuple[str, ...] = FAMILIES + SCALE_FAMILIES
LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
MIN_SIZE = {"belt": 5, "underground": 6, "splitter": 5, "smelting": 5, "assembler1": 5, "assembler2": 5,
            "tree2": 7, "scale": 16}
MAX_SIZE = 32
RECIPE_FAMILIES = ("smelting", "assembler1", "assembler2", "tree2", "scale")
FIXED = (SOURCE, SINK, OBSTACLE)

OFF = gd.DIR_OFFSETS
BELT_ITEMS = ("iron-plate", "copper-plate", "iron-ore", "copper-ore", "stone", "coal", "iron-gear-wheel",
              "electronic-circuit", "copper-cable", "stone-brick")
OBSTACLE_NAMES = ("stone-wall", "stone-wall", "small-electric-pole", "pipe", "small-lamp")
ORES = ("iron-ore", "copper-ore", "stone")
ONE_INGREDIENT = ("iron-gear-wheel", "copper-cable")
TWO_INGREDIENTS = ("electronic-circuit", "automation-science-pack")
TREES = (("copper-cable", "electronic-circuit"), ("iron-gear-wheel", "automation-science-pack"))
DIRECT_P = 0.35  # chance that a source / sink sits right at its inserter

BELT_NAMES = frozenset(gd.BELTS)
UGS = frozenset(gd.UNDERGROUNDS)
SPLITTER_NAMES = frozenset(gd.SPLITTERS)
BELTLIKE = BELT_NAMES | UGS | SPLITTER_NAMES
INSERTER_NAMES = frozenset(gd.INSERTERS)
MACHINES = frozenset(gd.ASSEMBLERS + gd.FURNACES)


# ============================================================================ the task


@dataclass
class Task:
    """The one task type: procedural (``make_task``), a mined blueprint window (``source="mined"``:
    no solution, the expert's action count in ``n_expert``) or one inferred from a world
    (``source="inferred"``, ``factorion build``: no solution, reference 0 = unknown)."""

    family: str
    level: int
    seed: int
    world: World             # the start state the agent sees
    solution: World | None   # the reference solution (a complete working factory, same size) or None
    reference: float         # throughput(solution) in items/s, > 0 (0 or NaN: unknown, mined / inferred)
    removed: list[Entity]    # entities of `solution` missing from `world` (levels 3 and 4), else []
    recipes: tuple[str, ...]  # assembler recipes the task may need; () for belt and smelting tasks
    items: tuple[str, ...]   # items at sources and sinks
    source: str = "procedural"  # where it comes from: procedural, mined, inferred
    n_expert: int | None = None  # the expert's action count, where known without a solution (mined)


def restored(end: float, start: float, reference: float) -> float:
    """The share of the removed throughput a build restores: ``(end - start) / (reference -
    start)`` clipped to [0, 1]; NaN when nothing was removed (``reference`` not above ``start``)."""
    gap = float(reference) - float(start)
    if not gap > 1e-9:
        return float("nan")
    return min(1.0, max(0.0, (float(end) - float(start)) / gap))


# ============================================================================ random draws


def pick(rng: np.random.Generator, seq: Sequence):
    """``rng.choice(seq)`` of a tuple (as a plain element): the very same draw, since numpy's
    ``choice`` without ``p`` draws ``rng.integers(0, len(seq))``, without turning the tuple into an
    array first (a fifth of the time). tests/test_tasks.py checks the two agree."""
    return seq[int(rng.integers(0, len(seq)))]


class Draws:
    """``rng.integers(lo, hi)`` draws (``hi - lo`` at most 2**32) served from one batch of raw
    32-bit draws: the same values and the same generator state after, as many scalar calls.

    numpy draws a bounded integer whose range fits 32 bits by Lemire's method over the bit
    generator's ``next_uint32`` (one call, more only on a rare rejection); a full-range ``uint32``
    array draw is ``next_uint32`` call after call. So the first ``n`` raw draws are taken at once
    (``n``: the fewest the caller will surely use; never more) and any further (rejections, draws
    past ``n``) one at a time. tests/test_tasks.py checks it against scalar calls."""

    def __init__(self, rng: np.random.Generator, n: int):
        self.rng = rng
        self.buf = rng.integers(0, 1 << 32, size=n, dtype=np.uint32).tolist() if n > 0 else []
        self.i = 0

    def _u32(self) -> int:
        i = self.i
        if i < len(self.buf):
            self.i = i + 1
            return self.buf[i]
        return int(self.rng.integers(0, 1 << 32, dtype=np.uint32))

    def integers(self, lo: int, hi: int | None = None) -> int:
        if hi is None:
            lo, hi = 0, lo
        r = hi - lo - 1
        if r < 0 or r >= 0xFFFFFFFF:
            raise ValueError(f"Draws.integers takes 1 <= hi - lo < 2**32, got [{lo}, {hi})")
        if r == 0:  # numpy draws nothing for a single value
            return lo
        excl = r + 1
        m = self._u32() * excl
        left = m & 0xFFFFFFFF
        if left < excl:
            threshold = (0xFFFFFFFF - r) % excl
            while left < threshold:
                m = self._u32() * excl
                left = m & 0xFFFFFFFF
        return lo + (m >> 32)

    def close(self) -> None:
        """Check that every batched draw was used (else the generator ran ahead)."""
        if self.i < len(self.buf):
            raise RuntimeError(f"Draws: {len(self.buf) - self.i} batched draws unused")


# ============================================================================ small helpers


def step(c: tuple[int, int], d: int, k: int = 1) -> tuple[int, int]:
    return c[0] + k * OFF[d][0], c[1] + k * OFF[d][1]


def cells_of(e: Entity) -> list[tuple[int, int]]:
    w, h = e.size
    return [(e.y + i, e.x + j) for i in range(h) for j in range(w)]


def in_bounds(world: World, c: tuple[int, int]) -> bool:
    return 0 <= c[0] < world.height and 0 <= c[1] < world.width


def fronts(e: Entity) -> list[tuple[tuple[int, int], int]]:
    """(cell, direction) of the cells a belt, underground output or splitter pushes into."""
    if e.name in BELT_NAMES or (e.name in UGS and e.io == IO_OUTPUT):
        return [(step((e.y, e.x), e.direction), e.direction)]
    if e.name in SPLITTER_NAMES:
        return [(step(c, e.direction), e.direction) for c in cells_of(e)]
    return []


def inserter_cells(e: Entity) -> tuple[tuple[int, int], tuple[int, int]]:
    """(pickup cell, drop cell) of an inserter."""
    (py, px), (dy, dx) = gd.inserter_offsets(e.name, e.direction)
    return (e.y + py, e.x + px), (e.y + dy, e.x + dx)


def ug_partner(world: World, e: Entity) -> Entity | None:
    """The output an underground input pairs with: the nearest same-tier output with the same
    direction in line within the tier's max distance."""
    step_d = OFF[e.direction]
    for k in range(1, gd.underground_max_distance(e.name) + 1):
        c = (e.y + k * step_d[0], e.x + k * step_d[1])
        if not in_bounds(world, c):
            return None
        o = world.entity_at(*c)
        if o is not None and o.name == e.name and o.io == IO_OUTPUT and o.direction == e.direction:
            return o
    return None


def ug_input_of(world: World, o: Entity) -> Entity | None:
    """The underground input that pairs with output ``o``, if any."""
    back = (o.direction + 2) % 4
    for k in range(1, gd.underground_max_distance(o.name) + 1):
        c = step((o.y, o.x), back, k)
        if not in_bounds(world, c):
            return None
        i = world.entity_at(*c)
        if i is not None and i.name == o.name and i.io == IO_INPUT and i.direction == o.direction:
            return i if ug_partner(world, i) == o else None
    return None


def product_of(recipe: str) -> str:
    return gd.recipe(recipe).results[0][0]


def ingredients_of(recipe: str) -> tuple[str, ...]:
    return tuple(i for i, _ in gd.recipe(recipe).ingredients)


def smelt(item: str) -> str | None:
    r = gd.smelting_recipe_for(item)
    return product_of(r) if r else None


def world_items(world: World) -> tuple[str, ...]:
    return tuple(sorted({e.item for e in world.entities(obstacles=False) if e.name in (SOURCE, SINK)}))


def fixed_only(world: World) -> World:
    """A copy of ``world`` with only its sources, sinks and obstacles."""
    out = world.copy()
    for e in world.entities(obstacles=False):
        if e.name not in FIXED:
            out.remove(e.y, e.x)
    return out


def replace(world: World, e: Entity, name: str) -> None:
    world.remove(e.y, e.x)
    world.place(Entity(name, e.y, e.x, e.direction, e.item, e.recipe, e.io))
