"""What the page and the API send: a grid of sources, sinks and obstacles, or task text.

Request bodies are pydantic models (FastAPI validates them and documents them in the OpenAPI
page); :func:`to_world` turns one into a :class:`World`, raising WorldError or BlueprintError with
a one-line reason for what pydantic cannot see (unknown items, overlaps, malformed strings).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factorion.core.world import OBSTACLE, Entity, World, WorldError

SIZE_MIN, SIZE_MAX = 5, 32        # build grids: tiles a side
MEASURE_MAX = 256                 # a blueprint to measure: tiles a side
MAX_RATE = 10_000.0               # items/s a source may be capped at
MAX_TEXT = 4 * 1024 * 1024        # characters of pasted text
BUDGET_MIN, BUDGET_MAX, BUDGET_DEFAULT = 1.0, 60.0, 10.0


class Cell(BaseModel):
    """One placed tile: a source or sink of an item (a source optionally capped at ``rate``
    items/s) or an obstacle."""
    model_config = ConfigDict(extra="forbid")
    kind: Literal["source", "sink", "obstacle"]
    y: int = Field(ge=0, description="row, from 0 at the top")
    x: int = Field(ge=0, description="column, from 0 at the left")
    item: str | None = Field(None, max_length=200, description="item name (sources and sinks)")
    rate: float | None = Field(None, gt=0, le=MAX_RATE, allow_inf_nan=False,
                               description="items/s cap of a source (absent: unlimited)")


class Grid(BaseModel):
    """A task drawn on the page: its size and the placed tiles."""
    model_config = ConfigDict(extra="forbid")
    height: int = Field(ge=SIZE_MIN, le=SIZE_MAX)
    width: int = Field(ge=SIZE_MIN, le=SIZE_MAX)
    cells: list[Cell] = Field(default_factory=list, max_length=SIZE_MAX * SIZE_MAX)


class TaskIn(BaseModel):
    """Either ``grid`` or ``text``: a blueprint string (``0e...``), blueprint JSON, or a text spec
    (``size H W`` / ``source Y X ITEM [RATE]`` / ``sink Y X ITEM`` / ``obstacle Y X [H W]``)."""
    model_config = ConfigDict(extra="forbid")
    grid: Grid | None = None
    text: str | None = Field(None, max_length=MAX_TEXT)
    index: int = Field(0, description="which blueprint of a book (books flattened)")

    @model_validator(mode="after")
    def _one_task(self):
        if (self.grid is None) == (self.text is None or not self.text.strip()):
            raise ValueError("give either 'grid' or 'text' (a blueprint string or a text spec)")
        return self


class BuildIn(TaskIn):
    budget_s: float = Field(BUDGET_DEFAULT, ge=BUDGET_MIN, le=BUDGET_MAX, allow_inf_nan=False,
                            description="seconds the search may take")
    policy: bool = Field(False, description="also sample the policy (needs a server --checkpoint)")
    seed: int = Field(0, ge=0, le=2**31 - 1)


def grid_world(grid: Grid) -> World:
    """The world a page grid describes; WorldError names the first bad cell."""
    world = World(grid.height, grid.width)
    for c in grid.cells:
        where = f"cell ({c.y}, {c.x})"
        if c.y >= grid.height or c.x >= grid.width:
            raise WorldError(f"{where} is outside the {grid.height}x{grid.width} grid")
        if c.kind == OBSTACLE and c.rate is not None:
            raise WorldError(f"{where}: an obstacle takes no rate (a source's cap, a sink's wanted rate)")
        if c.kind == OBSTACLE:
            world.place(Entity(OBSTACLE, c.y, c.x))
            continue
        if not c.item:
            raise WorldError(f"{where}: a {c.kind} needs an item")
        try:
            world.place(Entity(c.kind, c.y, c.x, item=c.item))
        except WorldError as e:
            raise WorldError(f"{where}: {e}") from None
        if c.rate is not None:  # a source's cap, a sink's wanted rate
            world.rates[(c.y, c.x)] = float(c.rate)
    return world


def to_world(task: TaskIn, lo: int = SIZE_MIN, hi: int = SIZE_MAX) -> World:
    """The task's world, ``lo``..``hi`` tiles a side, with sane source rates."""
    from factorion.report import task_world
    world = grid_world(task.grid) if task.grid is not None else task_world(task.text, task.index, max_side=hi)
    h, w = world.shape
    if not (lo <= h <= hi and lo <= w <= hi):
        raise WorldError(f"the factory is {h}x{w} tiles; this takes {lo} to {hi} tiles a side")
    for (y, x), r in world.rates.items():
        if r is None or not math.isfinite(r) or not 0 < r <= MAX_RATE:
            raise WorldError(f"bad rate {r} at ({y}, {x}): a source's rate is items/s in (0, {MAX_RATE:g}]")
    return world
