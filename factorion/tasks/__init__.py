"""Task families, difficulty levels and the curriculum scheduler.

A :class:`Task` is a start world for the agent plus a reference solution built by a known-good
construction. Every family builds its reference the same way: fixed parts first (sources, sinks,
machines, inserters, splitters, walls), random obstacles on what is left, then belt lines routed
by :func:`route` (A* over cells and travel directions, with underground jumps) until every
consumer is fed (:func:`fill`). Tasks vary by seed through the random placement of all of these.

Families (:data:`FAMILIES`):

=========== ==============================================================================
belt        one source -> one sink of the same item, plain belts around random obstacles
            (random tier).
underground the line must cross a full-height wall of obstacles or a full-height belt line of
            another item (which keeps running): it can only pass with underground belts.
splitter    split (1 source -> splitter -> 2 sinks) or merge (2 sources -> splitter -> 1 sink).
smelting    ore source -> inserter -> furnace -> inserter -> plate sink; a source or sink is
            either right at the inserter or joined to it by a belt line.
assembler1  one assembling machine with a one-ingredient recipe (iron-gear-wheel or
            copper-cable), fed and emptied by inserters.
assembler2  one assembling machine with a two-ingredient recipe (electronic-circuit or
            automation-science-pack), two sources, one sink.
tree2       a depth-2 recipe tree: machine A makes the intermediate (copper-cable /
            iron-gear-wheel), an inserter hands it straight to machine B (electronic-circuit /
            automation-science-pack) which also takes a second plate from its own source.
=========== ==============================================================================

Levels (:data:`LEVELS`): 1 the working factory (world == solution); 2 a working but throttled
factory (a belt run, underground pair or splitter a tier lower, an inserter slower or a machine
a tier lower, chosen so that 0 < throughput < reference; a lowered belt tier or inserter kind
is still used elsewhere in the world, a lowered machine may be the only one of its kind); 3 one
entity of the solution missing (its loss lowers throughput); 4 N of them missing (N drawn from
2..n_missing, default 5, at most the entities there are; throughput lower too); 5 only sources,
sinks and obstacles.

Minimum sizes (:data:`MIN_SIZE`, a ValueError below): 5 for every family but underground (6:
source, input, wall, output, belt, sink) and tree2 (7: two 3x3 machines and the cell between
them). Sizes above 32 are refused too.

Sim conventions the constructions respect (belts never side-load: every belt has a single
feeder; splitters, undergrounds and sources only feed a belt straight ahead of them; dead-end
belts that feed an inserter never point into another belt line): see factorion.sim.

Layout: :mod:`.base` (constants, :class:`Task`, geometry helpers), :mod:`.routing` (:func:`route`),
:mod:`.flow` (:class:`Flow`, :func:`fill`), :mod:`.families` (the constructions,
:func:`solved_factory`), :mod:`.levels` (levels, :func:`cap_sources`, :func:`make_task`),
:mod:`.curriculum` (:class:`Curriculum`), :mod:`.samples` (:func:`write_samples`). The public names
are importable from ``factorion.tasks``.
"""

from factorion.tasks.base import (
    ALL_FAMILIES,
    BELT_ITEMS,
    BELT_NAMES,
    BELTLIKE,
    DIRECT_P,
    FAMILIES,
    FIXED,
    INSERTER_NAMES,
    LEVELS,
    MACHINES,
    MAX_SIZE,
    MIN_SIZE,
    OBSTACLE_NAMES,
    OFF,
    ONE_INGREDIENT,
    ORES,
    RECIPE_FAMILIES,
    SCALE_FAMILIES,
    SPLITTER_NAMES,
    TREES,
    TWO_INGREDIENTS,
    UGS,
    Draws,
    Task,
    cells_of,
    fixed_only,
    fronts,
    in_bounds,
    ingredients_of,
    inserter_cells,
    pick,
    product_of,
    replace,
    smelt,
    step,
    ug_input_of,
    ug_partner,
    world_items,
)
from factorion.tasks.curriculum import Curriculum
from factorion.tasks.families import (
    Stage,
    check_factory,
    connect_splitter,
    free_cells,
    inserter_for,
    place_splitter,
    recipe_stages,
    scatter_obstacles,
    side_cells,
    solved_factory,
    splitter_inputs,
)
from factorion.tasks.flow import Flow, fill
from factorion.tasks.levels import (
    cap_sources,
    make_task,
    removable,
    task_recipes,
    throttle_candidates,
)
from factorion.tasks.routing import Goal, RouteCtx, enter_pred, place_all, route, source_starts
from factorion.tasks.samples import write_samples
from factorion.tasks.scale import Design, ScaleFactory, scale_factory

__all__ = [
    "ALL_FAMILIES",
    "SCALE_FAMILIES",
    "Design",
    "ScaleFactory",
    "scale_factory",
    "BELTLIKE",
    "BELT_ITEMS",
    "BELT_NAMES",
    "Curriculum",
    "DIRECT_P",
    "Draws",
    "FAMILIES",
    "FIXED",
    "Flow",
    "Goal",
    "INSERTER_NAMES",
    "LEVELS",
    "MACHINES",
    "MAX_SIZE",
    "MIN_SIZE",
    "OBSTACLE_NAMES",
    "OFF",
    "ONE_INGREDIENT",
    "ORES",
    "RECIPE_FAMILIES",
    "RouteCtx",
    "SPLITTER_NAMES",
    "Stage",
    "TREES",
    "TWO_INGREDIENTS",
    "Task",
    "UGS",
    "cap_sources",
    "cells_of",
    "check_factory",
    "connect_splitter",
    "enter_pred",
    "fill",
    "fixed_only",
    "free_cells",
    "fronts",
    "in_bounds",
    "ingredients_of",
    "inserter_cells",
    "inserter_for",
    "make_task",
    "pick",
    "place_all",
    "place_splitter",
    "product_of",
    "recipe_stages",
    "removable",
    "replace",
    "route",
    "scatter_obstacles",
    "side_cells",
    "smelt",
    "solved_factory",
    "source_starts",
    "splitter_inputs",
    "step",
    "task_recipes",
    "throttle_candidates",
    "ug_input_of",
    "ug_partner",
    "world_items",
    "write_samples",
]
