"""The grid world every other layer reads and writes.

A :class:`World` is an ``int16`` array ``grid`` of shape ``(C, H, W)`` plus two small side
tables. The channels (the one place they are defined):

====== =========================================================================================
KIND   what occupies the cell: an index into :data:`KINDS` (0 = empty). Every cell of a
       multi-tile entity carries its kind.
DIR    cardinal direction 0 north, 1 east, 2 south, 3 west (blueprint 2.0 direction // 4).
       Belts: travel direction. Undergrounds: travel direction (input and output alike).
       Splitters: travel direction. Inserters: the prototype's direction (north picks up from
       the north and drops to the south). 0 for entities without a direction.
ITEM   item of a source or sink: 1 + index into ``gamedata.item_names()`` (0 = none).
RECIPE recipe of an assembling machine: 1 + index into ``gamedata.recipe_names()`` (0 = none).
       Furnaces take none: they smelt what they are fed, as in the game.
IO     undergrounds: 1 input, 2 output. 0 elsewhere.
PART   1 + the cell's row-major index inside the entity's footprint (1 = top-left cell, the
       anchor); 0 = empty. ``anchor = (y - (PART-1) // w, x - (PART-1) % w)``.
====== =========================================================================================

Side tables: ``obstacles`` is the list of blueprint entity dicts behind the obstacle cells (name,
16-way direction, every other field; ``position`` in world tiles, origin at the world's top-left
corner), so exports give them back unchanged; ``rates`` maps a source's cell to its items/s cap
(absent = unlimited) and a sink's cell to the rate wanted there (what ``factorion build`` aims
for; the simulator ignores it). World equality compares ``grid`` and ``rates``.

**Sources and sinks** are infinity chests in a blueprint (placeable in the game's editor and
sandbox): a source has the infinity filter ``{name: item, mode: "at-least", count: stack}``, a
sink ``{name: item, mode: "exactly", count: 0}`` (it deletes that item and only that item). Both
carry the entity tag ``{"factorion": "source" | "sink"}``; a source's optional cap (a sink's
wanted rate) is the tag ``"rate"``. In the simulator a source also pushes onto a belt that
starts in front of it, and a belt ending into a sink delivers into it: the game needs a loader
for that (see docs/sim.md).

**Obstacles**: everything not modelled (poles, pipes, rails, beacons, lamps, modded names)
marks the cells of its footprint OBSTACLE -- never dropped. Each obstacle cell is its own 1x1
unit in the grid (PART 1, DIR 0), since rails and the like may overlap one another. Cells no
kept entity covers (the parts of entities clipped by a window, cells placed by hand) export as
stone walls. A blueprint's ``snap-to-grid`` records a world's size so margins survive export.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np

from factorion.core import gamedata as gd

CHANNELS = ("kind", "dir", "item", "recipe", "io", "part")
KIND, DIR, ITEM, RECIPE, IO, PART = range(len(CHANNELS))
N_CHANNELS = len(CHANNELS)

SOURCE, SINK, OBSTACLE = "source", "sink", "obstacle"
KINDS: tuple[str, ...] = ("empty", *gd.MODELLED, SOURCE, SINK, OBSTACLE)
KIND_ID = {name: i for i, name in enumerate(KINDS)}
K_SOURCE, K_SINK, K_OBSTACLE = KIND_ID[SOURCE], KIND_ID[SINK], KIND_ID[OBSTACLE]
IO_INPUT, IO_OUTPUT = 1, 2
DIR_NAMES = "NESW"


def _ids(names: Iterable[str]) -> np.ndarray:
    return np.array([KIND_ID[n] for n in names], dtype=np.int16)


BELT_KINDS = _ids(gd.BELTS)
UNDERGROUND_KINDS = _ids(gd.UNDERGROUNDS)
SPLITTER_KINDS = _ids(gd.SPLITTERS)
INSERTER_KINDS = _ids(gd.INSERTERS)
ASSEMBLER_KINDS = _ids(gd.ASSEMBLERS)
FURNACE_KINDS = _ids(gd.FURNACES)
CHEST_KINDS = _ids(gd.CHESTS)
DIRECTIONAL = frozenset(gd.BELTS + gd.UNDERGROUNDS + gd.SPLITTERS + gd.INSERTERS)


class WorldError(ValueError):
    """A world operation that cannot be done (overlap, out of bounds, bad recipe...)."""


# --------------------------------------------------------------------------- the size limit
DEFAULT_MAX_CELLS = 1024 * 1024  # cells of the largest world: its grid is 12 MiB (the corpus peaks at 0.66M)


def _env_max_cells() -> int:
    text = os.environ.get("FACTORION_MAX_CELLS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_MAX_CELLS


_LIMIT = {"cells": _env_max_cells()}


def max_cells() -> int:
    """The most cells (height x width) a world may have: ``DEFAULT_MAX_CELLS`` (1024 x 1024), or the
    environment variable ``FACTORION_MAX_CELLS``, or what :func:`set_max_cells` (``--max-cells``) set."""
    return _LIMIT["cells"]


def set_max_cells(cells: int) -> int:
    """Set the world-size limit (cells); return the previous one."""
    if isinstance(cells, bool) or not isinstance(cells, int) or cells < 1:
        raise WorldError(f"the world-size limit must be a positive integer, got {cells!r}")
    old, _LIMIT["cells"] = _LIMIT["cells"], cells
    return old


def check_size(height: int, width: int, what: str = "world") -> None:
    """WorldError naming the extent unless ``height`` x ``width`` is positive and within the limit.
    Called before anything of that size is allocated."""
    if height < 1 or width < 1:
        raise WorldError(f"{what} size must be positive, got {height}x{width}")
    if height * width > _LIMIT["cells"]:
        raise WorldError(f"{what} of {height}x{width} tiles ({height * width:,} cells) is over the limit of "
                         f"{_LIMIT['cells']:,} cells (raise it with --max-cells or FACTORION_MAX_CELLS)")


@cache
def _item_ids() -> dict[str, int]:
    return {n: i + 1 for i, n in enumerate(gd.item_names())}


@cache
def _recipe_ids() -> dict[str, int]:
    return {n: i + 1 for i, n in enumerate(gd.recipe_names())}


def item_id(item: str | None) -> int:
    if not item:
        return 0
    try:
        return _item_ids()[item]
    except KeyError:
        raise WorldError(f"unknown item {item!r}") from None


def item_name(i: int) -> str | None:
    return gd.item_names()[i - 1] if i else None


def recipe_id(recipe: str | None) -> int:
    if not recipe:
        return 0
    try:
        return _recipe_ids()[recipe]
    except KeyError:
        raise WorldError(f"recipe {recipe!r} is not one a modelled machine can make") from None


def recipe_name(i: int) -> str | None:
    return gd.recipe_names()[i - 1] if i else None


@dataclass(frozen=True)
class Entity:
    """One entity of a world, as the anchor cell and its fields."""
    name: str          # prototype name, or "source" / "sink" / "obstacle"
    y: int             # anchor (top-left) cell
    x: int
    direction: int = 0  # cardinal 0..3
    item: str | None = None
    recipe: str | None = None
    io: int = 0
    obstacle_name: str | None = None  # placing: the real entity behind an obstacle (kept for export)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in tiles."""
        if self.name in (SOURCE, SINK):
            return (1, 1)
        if self.name == OBSTACLE:
            return obstacle_size(self.obstacle_name or "", self.direction)
        return gd.footprint(self.name, self.direction)


def _entity(name: str, y: int, x: int, direction: int, item: str | None, recipe: str | None,
            io: int) -> Entity:
    """``Entity(name, y, x, direction, item, recipe, io)`` without the frozen dataclass's
    ``__init__`` (a third of the time of :meth:`World.entities`); the same object in every way."""
    e = object.__new__(Entity)
    e.__dict__.update(name=name, y=y, x=x, direction=direction, item=item, recipe=recipe, io=io,
                      obstacle_name=None)
    return e


def obstacle_size(name: str, direction: int) -> tuple[int, int]:
    """Footprint of an obstacle by cardinal direction (diagonals keep the unrotated box; unknown
    names are 1x1)."""
    if not gd.is_known_entity(name):
        return (1, 1)
    return gd.footprint(name, direction)


def raw_box(raw: dict) -> tuple[int, int, int, int]:
    """(top, left, width, height) in world cells of a kept obstacle entity dict."""
    d16 = int(raw.get("direction", 0) or 0)
    w, h = obstacle_size(raw["name"], (d16 // 4) % 4 if d16 % 4 == 0 else 0)
    return (math.floor(raw["position"]["y"] - h / 2 + 0.5), math.floor(raw["position"]["x"] - w / 2 + 0.5),
            w, h)


class World:
    """A grid world. Construct empty with ``World(h, w)``; see the module docstring."""

    def __init__(self, height: int, width: int):
        check_size(height, width)
        self.grid = np.zeros((N_CHANNELS, height, width), dtype=np.int16)
        self.obstacles: list[dict] = []
        self.rates: dict[tuple[int, int], float] = {}

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape[1], self.grid.shape[2]

    @property
    def height(self) -> int:
        return self.grid.shape[1]

    @property
    def width(self) -> int:
        return self.grid.shape[2]

    def copy(self) -> World:
        w = World.__new__(World)
        w.grid = self.grid.copy()
        w.obstacles = list(self.obstacles)
        w.rates = dict(self.rates)
        return w

    def __eq__(self, other: object) -> bool:
        return isinstance(other, World) and self.grid.shape == other.grid.shape \
            and bool(np.array_equal(self.grid, other.grid)) and self.rates == other.rates

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        n = int((self.grid[PART] == 1).sum())
        return f"World({self.height}x{self.width}, {n} entities)"

    def kind_name(self, y: int, x: int) -> str:
        return KINDS[int(self.grid[KIND, y, x])]

    def anchor(self, y: int, x: int) -> tuple[int, int]:
        """Anchor cell of the entity covering (y, x); WorldError when the cell is empty."""
        part = int(self.grid[PART, y, x])
        if part == 0:
            raise WorldError(f"cell ({y}, {x}) is empty")
        if part == 1:
            return y, x
        w = gd.footprint(KINDS[int(self.grid[KIND, y, x])], int(self.grid[DIR, y, x]))[0]
        return y - (part - 1) // w, x - (part - 1) % w

    def entity_at(self, y: int, x: int) -> Entity | None:
        g = self.grid
        if not (0 <= y < g.shape[1] and 0 <= x < g.shape[2]):
            return None
        col = g[:, y, x].tolist()
        part = col[PART]
        if part == 0:
            return None
        if part != 1:  # the anchor (as :meth:`anchor`)
            w = gd.footprint(KINDS[col[KIND]], col[DIR])[0]
            y, x = y - (part - 1) // w, x - (part - 1) % w
            col = g[:, y, x].tolist()
        items, recipes = gd.item_names(), gd.recipe_names()
        it, rc = col[ITEM], col[RECIPE]
        return _entity(KINDS[col[KIND]], y, x, col[DIR], items[it - 1] if it else None,
                       recipes[rc - 1] if rc else None, col[IO])

    def entities(self, obstacles: bool = True) -> list[Entity]:
        """All entities (each obstacle cell counts as one), by anchor in row-major order;
        ``obstacles=False``: all but the obstacles."""
        g = self.grid
        ys, xs = np.nonzero((g[PART] == 1) & (g[KIND] != K_OBSTACLE) if not obstacles else g[PART] == 1)
        if not len(ys):
            return []
        kinds, dirs, its, rcs, ios = g[:PART, ys, xs].tolist()
        items, recipes = gd.item_names(), gd.recipe_names()
        return [_entity(KINDS[k], y, x, d, items[it - 1] if it else None, recipes[rc - 1] if rc else None, io)
                for y, x, k, d, it, rc, io in zip(ys.tolist(), xs.tolist(), kinds, dirs, its, rcs, ios,
                                                  strict=True)]

    def counts(self) -> Counter:
        """Number of entities of each kind name (obstacles: cells)."""
        anchors = self.grid[KIND][self.grid[PART] == 1]
        return Counter({KINDS[k]: int(n) for k, n in zip(*np.unique(anchors, return_counts=True),
                                                           strict=True)})

    # ------------------------------------------------------------------ editing
    def can_place(self, e: Entity) -> str | None:
        """None if ``e`` fits on empty cells, else the reason it does not."""
        if e.name not in KIND_ID or e.name == "empty":
            return f"{e.name!r} is not a modelled entity (use name='obstacle')"
        w, h = e.size
        if e.y < 0 or e.x < 0 or e.y + h > self.height or e.x + w > self.width:
            return f"{e.name} at ({e.y}, {e.x}) size {w}x{h} is outside the {self.height}x{self.width} world"
        if w == 1 and h == 1:  # the common case, without array slices
            g = self.grid
            busy = g[PART, e.y, e.x] != 0 and (e.name != OBSTACLE or g[KIND, e.y, e.x] != K_OBSTACLE)
        else:
            cells = self.grid[:, e.y:e.y + h, e.x:e.x + w]
            busy = cells[PART] != 0
            if e.name == OBSTACLE:  # obstacles may overlap obstacles (rails do), nothing else
                busy &= cells[KIND] != K_OBSTACLE
            busy = busy.any()
        if busy:
            return f"{e.name} at ({e.y}, {e.x}) overlaps another entity"
        if e.name in (SOURCE, SINK) and not e.item:
            return f"a {e.name} needs an item"
        if e.recipe and e.name not in gd.ASSEMBLERS:
            return f"only assembling machines take a recipe ({e.name} was given {e.recipe!r})"
        if e.recipe and not gd.machine_can_make(e.name, e.recipe):
            return f"{e.name} cannot make {e.recipe}"
        if e.name in gd.UNDERGROUNDS and e.io not in (IO_INPUT, IO_OUTPUT):
            return f"{e.name} needs io 1 (input) or 2 (output)"
        return None

    def place(self, e: Entity | str, y: int | None = None, x: int | None = None, **fields) -> Entity:
        """Place an entity (an Entity, or a name plus anchor and fields); WorldError if it can't."""
        if isinstance(e, str):
            e = Entity(e, y, x, **fields)
        reason = self.can_place(e)
        if reason:
            raise WorldError(reason)
        w, h = e.size
        one = w == 1 and h == 1
        if one:  # the common case: one write of the cell's channels
            col = [0] * N_CHANNELS
            if e.name == OBSTACLE:
                col[KIND], col[PART] = K_OBSTACLE, 1
            else:
                try:
                    col[ITEM] = item_id(e.item) if e.name in (SOURCE, SINK) else 0
                    col[RECIPE] = recipe_id(e.recipe) if e.name in gd.ASSEMBLERS else 0
                except WorldError:  # the general path below raises it (after the same writes)
                    col = None
                else:
                    col[KIND] = KIND_ID[e.name]
                    col[DIR] = e.direction % 4 if e.name in DIRECTIONAL else 0
                    col[IO] = e.io if e.name in gd.UNDERGROUNDS else 0
                    col[PART] = 1
            if col is not None:
                self.grid[:, e.y, e.x] = col
                if e.name != OBSTACLE:
                    return e
        cells = self.grid[:, e.y:e.y + h, e.x:e.x + w]
        if e.name == OBSTACLE:
            if not one:
                cells[:] = 0
                cells[KIND], cells[PART] = K_OBSTACLE, 1
            if e.obstacle_name:
                raw = {"name": e.obstacle_name, "position": {"x": e.x + w / 2, "y": e.y + h / 2}}
                if e.direction:
                    raw["direction"] = e.direction * 4
                self.obstacles.append(raw)
            return e
        cells[KIND] = KIND_ID[e.name]
        cells[DIR] = e.direction % 4 if e.name in DIRECTIONAL else 0
        cells[ITEM] = item_id(e.item) if e.name in (SOURCE, SINK) else 0
        cells[RECIPE] = recipe_id(e.recipe) if e.name in gd.ASSEMBLERS else 0
        cells[IO] = e.io if e.name in gd.UNDERGROUNDS else 0
        cells[PART] = 1 + np.arange(w * h, dtype=np.int16).reshape(h, w)
        return e

    def remove(self, y: int, x: int) -> Entity:
        """Remove the entity covering (y, x) and return it; WorldError if the cell is empty.

        Removing an obstacle cell removes every kept obstacle entity covering it, all its cells.
        """
        e = self.entity_at(y, x)
        if e is None:
            raise WorldError(f"nothing to remove at ({y}, {x})")
        if e.name == OBSTACLE:
            keep = []
            for raw in self.obstacles:
                t, l, w, h = raw_box(raw)
                if t <= y < t + h and l <= x < l + w:
                    self.grid[:, max(t, 0):t + h, max(l, 0):l + w] = 0
                else:
                    keep.append(raw)
            self.obstacles = keep
            self.grid[:, y, x] = 0
            return e
        w, h = e.size
        self.grid[:, e.y:e.y + h, e.x:e.x + w] = 0
        self.rates.pop((e.y, e.x), None)
        return e

    # ------------------------------------------------------------------ symmetry
    def transformed(self, rotate: int = 0, mirror: bool = False) -> World:
        """This world mirrored left-right (optionally), then turned ``rotate`` quarter turns clockwise.

        Physics must not depend on orientation; the property tests use this.
        """
        out = self
        if mirror:
            out = out._remapped(lambda y, x, w, h, d, H, W: (y, W - x - w, (4 - d) % 4),
                                lambda d16: (16 - d16) % 16, turn=False)
        for _ in range(rotate % 4):
            out = out._remapped(lambda y, x, w, h, d, H, W: (x, H - y - h, (d + 1) % 4),
                                lambda d16: (d16 + 4) % 16, turn=True)
        return out

    def _remapped(self, f, f16, turn: bool) -> World:
        H, W = self.shape
        out = World(W, H) if turn else World(H, W)
        for e in self.entities():
            w, h = e.size
            y, x, d = f(e.y, e.x, w, h, e.direction, H, W)
            out.place(Entity(e.name, y, x, d, e.item, e.recipe, e.io))
            if (e.y, e.x) in self.rates:
                out.rates[(y, x)] = self.rates[(e.y, e.x)]
        for raw in self.obstacles:
            t, l, w, h = raw_box(raw)
            d16 = int(raw.get("direction", 0) or 0)
            y, x, _ = f(t, l, w, h, 0, H, W)
            new = {k: v for k, v in raw.items() if k != "direction"}
            if f16(d16):
                new["direction"] = f16(d16)
            nw, nh = (h, w) if turn else (w, h)
            new["position"] = {"x": x + nw / 2, "y": y + nh / 2}
            out.obstacles.append(new)
        return out


def world_from_entities(height: int, width: int, entities: Iterable[Entity]) -> World:
    w = World(height, width)
    for e in entities:
        w.place(e)
    return w
