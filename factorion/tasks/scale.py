"""Scale constructions: k parallel production lines that fill an area (the "scale" family).

A :class:`Design` is a block of rows in a canonical frame where the input belts run east: one
or two rows of ``k`` machines side by side (3x3 assemblers; for smelting 3x3 electric or 2x2
steel / stone furnaces; the row counts below are for 3x3 machines, one less per machine row for 2x2),
fed by inserters from input belts that run along the row and emptied by inserters onto output
belts along the other side. Variants (:data:`VARIANTS`, rows from the block's top):

============== =============================================================================
one-side       IN, inserters, machines, inserters, OUT (7 rows; two ingredients: IN-A, IN-B,
               fast inserters on the near belt and long-handed ones on the far belt, 8 rows)
shared-input   OUT, machines, IN, machines, OUT: one input belt (two: A and B) feeds both
               machine rows (13 rows; 14 with two ingredients)
shared-output  IN, machines, OUT, machines, IN: both machine rows drop onto one output belt,
               each on its own lane (13 rows; one ingredient only)
pairs          two-step recipes: IN-B, IN-A, inserters, groups of machines, inserters, OUT (8
               rows); a group (:data:`GROUPS`, e.g. ABABA: 3 cable machines to 2 circuit
               machines) has A machines of the first recipe hand their product through a column
               of inserters to their B neighbours; :func:`group_plan` works out the flows
============== =============================================================================

Inserters sit on the first cells of each machine's edge; how many each machine gets is worked
out from the game's numbers (:func:`machine_plan`) so that the machine runs as fast as its
inserters allow, and ``k`` is the largest the area and the belts allow (an input belt carries at
most its tier's rate, an output belt one lane per machine row). :func:`stated_rate` is then
what the block delivers: machines x crafts/s x product amount, from the game's numbers alone.

:func:`place_design` places a block's machines, inserters and belt rows;
:func:`factorion.tasks.flow.fill` then joins sources to the input belts and the output belts to
the sinks. :func:`scale_factory` builds a whole task this way (sources on the left edge, sinks on
the right edge, as many blocks as the height holds); ``factorion.env.scaleout`` searches the
same designs for any task. Recipes: one step (gears, cables, smelting, circuits, red science).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import SINK, SOURCE, Entity, World
from factorion.tasks.base import ORES, pick, smelt
from factorion.tasks.families import scatter_obstacles
from factorion.tasks.flow import fill
from factorion.tasks.routing import Goal, RouteCtx, enter_pred, route

VARIANTS = ("one-side", "shared-input", "shared-output")  # and "pairs" for two-step recipes
LONG = "long-handed-inserter"
FURNACE = "electric-furnace"  # the 3x3 furnace: it tiles like an assembler
SCALE_RECIPES = ("iron-gear-wheel", "copper-cable", "electronic-circuit", "automation-science-pack")
TWO_STEP = (("copper-cable", "electronic-circuit"), ("iron-gear-wheel", "automation-science-pack"))
GROUPS = ("AB", "ABA", "BAB", "ABABA", "BABAB")  # two-step groups: A hands its product to its B neighbours


@dataclass(frozen=True)
class Design:
    """One block of parallel machines (see the module docstring)."""
    recipe: str | None           # assembler recipe; None: a furnace smelting ``ingredients[0]``
    ingredients: tuple[str, ...]  # belt items, 1 or 2 (two: A then B, as the rows go)
    product: str
    machine: str
    inserter: str                # the inserter on the near belt and on the output side
    tier: int                    # belt tier of every belt row (and of the routes fill adds)
    k: int                       # machines per machine row
    variant: str = "one-side"
    out_east: bool = True        # output belts run east (else west)
    stack: int = 1               # blocks stacked top to bottom, each with its own belts
    pre: str | None = None       # "pairs": the recipe of the machine that hands ``recipe`` its ingredient
    group: str = "AB"            # "pairs": one group's machines west to east (A: ``pre``, B: ``recipe``)

    @property
    def size(self) -> int:
        """The machine's side in tiles (3; 2 for stone and steel furnaces)."""
        return gd.footprint(self.machine)[0]

    @property
    def width(self) -> int:
        """Columns of the block: k machines, or k groups with a column of inserters between machines."""
        n = len(self.group) if self.pre else 1
        return self.k * (n * self.size + n - 1)

    @property
    def machines(self) -> int:
        """Machines in the block: per machine row k (k groups of ``group`` for "pairs"), per stacked block."""
        per_row = self.k * len(self.group) if self.pre else self.k
        return per_row * len(block_rows(self.variant, len(self.ingredients), self.size)[2]) * self.stack

    def describe(self) -> str:
        if self.pre:
            mid = gd.recipe(self.pre).results[0][0]
            what = "pairs" if self.group == "AB" else f"groups {self.group}"
            return (f"{self.k * self.stack} {what} of {self.machine} ({mid} handed to {self.product}), "
                    f"{gd.BELTS[self.tier]}")
        n = self.k * (1 if self.variant == "one-side" else 2) * self.stack
        sides = {"one-side": "one side", "shared-input": "both sides of the input belt",
                 "shared-output": "both sides of the output belt"}[self.variant]
        blocks = f" ({self.stack} blocks of {n // self.stack})" if self.stack > 1 else ""
        return f"{n} x {self.machine}, {sides}{blocks}, {gd.BELTS[self.tier]}"


@dataclass(frozen=True)
class MachineRow:
    top: int               # first row of the machines, from the block's top
    ins_row: int           # input inserter row
    in_dir: int            # input inserters' direction (0: pick north, drop south)
    out_row: int           # output inserter row
    out_dir: int
    near: int              # index of the ingredient on the belt next to the input inserters
    out_belt: int          # row of the output belt


def block_rows(variant: str, n_ing: int, s: int = 3) -> tuple[int, dict[int, int], list[MachineRow]]:
    """(height, {belt row: ingredient index}, machine rows) of a block of ``s`` x ``s`` machines."""
    if n_ing == 1:
        if variant == "one-side":
            return 4 + s, {0: 0}, [MachineRow(2, 1, 0, 2 + s, 0, 0, 3 + s)]
        if variant == "shared-input":
            return 7 + 2 * s, {3 + s: 0}, [MachineRow(2, 2 + s, 2, 1, 2, 0, 0),
                                           MachineRow(5 + s, 4 + s, 0, 5 + 2 * s, 0, 0, 6 + 2 * s)]
        if variant == "shared-output":
            return 7 + 2 * s, {0: 0, 6 + 2 * s: 0}, [MachineRow(2, 1, 0, 2 + s, 0, 0, 3 + s),
                                                      MachineRow(5 + s, 5 + 2 * s, 2, 4 + s, 2, 0, 3 + s)]
    elif n_ing == 2:
        if variant in ("one-side", "pairs"):
            return 5 + s, {0: 0, 1: 1}, [MachineRow(3, 2, 0, 3 + s, 0, 1, 4 + s)]
        if variant == "shared-input":
            return 8 + 2 * s, {3 + s: 0, 4 + s: 1}, [MachineRow(2, 2 + s, 2, 1, 2, 0, 0),
                                                     MachineRow(6 + s, 5 + s, 0, 6 + 2 * s, 0, 1, 7 + 2 * s)]
    raise ValueError(f"no {variant!r} block for {n_ing} ingredients")


def layout(d: Design) -> tuple[int, dict[int, int], list[MachineRow]]:
    """:func:`block_rows` of ``d`` with ``d.stack`` blocks stacked top to bottom."""
    height, belts, rows = block_rows(d.variant, len(d.ingredients), d.size)
    all_belts: dict[int, int] = {}
    all_rows: list[MachineRow] = []
    for b in range(d.stack):
        off = b * height
        all_belts.update({r + off: i for r, i in belts.items()})
        all_rows += [replace(r, top=r.top + off, ins_row=r.ins_row + off, out_row=r.out_row + off,
                             out_belt=r.out_belt + off) for r in rows]
    return height * d.stack, all_belts, all_rows


def variants_for(n_ing: int) -> tuple[str, ...]:
    return VARIANTS if n_ing == 1 else VARIANTS[:2]


def recipe_numbers(d: Design) -> tuple[float, dict[str, float], float]:
    """(crafts/s of the machine at full speed, ingredient amounts, product amount)."""
    name = d.recipe if d.recipe else gd.smelting_recipe_for(d.ingredients[0])
    r = gd.recipe(name)
    amounts = dict(r.ingredients)
    out = dict(r.results)[d.product]
    return gd.crafting_speed(d.machine) / r.energy, amounts, out


def machine_plan(d: Design, near: int) -> tuple[list[tuple[int, str]], int, float]:
    """(input inserters as (ingredient index, inserter name), output inserters, crafts/s) of one
    machine whose input edge is next to ingredient ``near``: the fewest inserters that let it
    run at the highest rate its edges allow."""
    cmax, amounts, out_amt = recipe_numbers(d)
    fast = gd.inserter_rate(d.inserter)
    best = None
    n_ing = len(d.ingredients)
    far = 1 - near if n_ing == 2 else None
    edge = d.size  # inserters on one edge at most
    for n_near in range(1, edge + 1):
        for n_far in (range(1, edge + 1 - n_near) if far is not None else (0,)):
            c = min(cmax, n_near * fast / amounts[d.ingredients[near]])
            if far is not None:
                c = min(c, n_far * gd.inserter_rate(LONG) / amounts[d.ingredients[far]])
            n_out = min(edge, math.ceil(c * out_amt / fast - 1e-9))
            c = min(c, n_out * fast / out_amt)
            key = (round(c, 12), -(n_near + n_far + n_out))
            if best is None or key > best[0]:
                ins = [(near, d.inserter)] * n_near + ([(far, LONG)] * n_far if far is not None else [])
                best = (key, ins, n_out, c)
    return best[1], best[2], best[3]


def _transfer_dir(name: str) -> int:
    """The direction of an inserter that picks from the west and drops to the east."""
    return next(d for d in range(4) if gd.inserter_offsets(name, d)[0] == (0, -1))


def pair_plan(d: Design) -> tuple[int, int, int, int, float]:
    """(fast inserters into the first machine from the near belt, long-handed ones into the second
    from the far belt, inserters handing over between them, output inserters, crafts/s of the
    second) of one pair of block ``d`` ("pairs")."""
    fast, long_ = gd.inserter_rate(d.inserter), gd.inserter_rate(LONG)
    ra, rb = gd.recipe(d.pre), gd.recipe(d.recipe)
    a_in, x = d.ingredients[1], d.ingredients[0]
    mid = ra.results[0][0]
    amt_a, out_a = dict(ra.ingredients)[a_in], dict(ra.results)[mid]
    amt_mid, amt_x, out_b = dict(rb.ingredients)[mid], dict(rb.ingredients)[x], dict(rb.results)[d.product]
    speed = gd.crafting_speed(d.machine)
    edge = d.size
    n_a = min(edge, math.ceil(speed / ra.energy * amt_a / fast - 1e-9))
    ca = min(speed / ra.energy, n_a * fast / amt_a)  # crafts/s the first machine can make
    cb = min(speed / rb.energy, ca * out_a / amt_mid)
    n_t = min(edge, math.ceil(cb * amt_mid / fast - 1e-9))
    n_x = min(edge, math.ceil(cb * amt_x / long_ - 1e-9))
    cb = min(cb, n_t * fast / amt_mid, n_x * long_ / amt_x)
    n_out = min(edge, math.ceil(cb * out_b / fast - 1e-9))
    return n_a, n_x, n_t, n_out, min(cb, n_out * fast / out_b)


@dataclass(frozen=True)
class GroupPlan:
    """Inserters and rates of one group of a "pairs" block, per machine west to east."""
    feed: tuple[int, ...]       # per machine: inserters from the near belt (A), long-handed from the far (B)
    out: tuple[int, ...]        # per machine: output inserters (B only; 0 for A)
    hand: tuple[int, ...]       # per gap between neighbours: inserters handing A's product to B
    crafts: tuple[float, ...]   # per machine: crafts/s


def group_plan(d: Design) -> GroupPlan:
    """How each machine of a group of ``d`` runs: every A makes what its near-belt inserters allow,
    hands it to its B neighbours (each B takes from its western A first, then its eastern one: the
    most a row of neighbours can pass on), and the inserters are the fewest that carry those flows.
    From the game's numbers alone."""
    fast, long_, edge = gd.inserter_rate(d.inserter), gd.inserter_rate(LONG), d.size
    ra, rb = gd.recipe(d.pre), gd.recipe(d.recipe)
    a_in, x, mid = d.ingredients[1], d.ingredients[0], ra.results[0][0]
    amt_a, out_a = dict(ra.ingredients)[a_in], dict(ra.results)[mid]
    amt_mid, amt_x, out_b = dict(rb.ingredients)[mid], dict(rb.ingredients)[x], dict(rb.results)[d.product]
    speed = gd.crafting_speed(d.machine)
    ca = min(speed / ra.energy, edge * fast / amt_a)
    cb = min(speed / rb.energy, edge * long_ / amt_x, edge * fast / out_b)
    g, cap = d.group, edge * fast
    left = [ca * out_a if c == "A" else 0.0 for c in g]  # what each A has still to give
    flow = [0.0] * (len(g) - 1)  # items of ``mid``/s over each gap
    for i, c in enumerate(g):
        if c != "B":
            continue
        need = cb * amt_mid
        for j in (i - 1, i + 1):
            if 0 <= j < len(g) and g[j] == "A":
                f = min(left[j], need, cap)
                left[j] -= f
                need -= f
                flow[min(i, j)] = f
    crafts, feed, out = [], [], []
    for i, c in enumerate(g):
        moved = sum(flow[j] for j in (i - 1, i) if 0 <= j < len(flow))
        if c == "A":
            crafts.append(moved / out_a)
            feed.append(math.ceil(crafts[-1] * amt_a / fast - 1e-9))
            out.append(0)
        else:
            crafts.append(moved / amt_mid)
            feed.append(math.ceil(crafts[-1] * amt_x / long_ - 1e-9))
            out.append(math.ceil(crafts[-1] * out_b / fast - 1e-9))
    hand = tuple(math.ceil(f / fast - 1e-9) for f in flow)
    return GroupPlan(tuple(feed), tuple(out), hand, tuple(crafts))


def per_product(d: Design) -> dict[str, float]:
    """Items of each belt ingredient one item of the product takes."""
    if d.pre:
        ra, rb = gd.recipe(d.pre), gd.recipe(d.recipe)
        mid = ra.results[0][0]
        out_b = dict(rb.results)[d.product]
        a_per_mid = dict(ra.ingredients)[d.ingredients[1]] / dict(ra.results)[mid]
        return {d.ingredients[0]: dict(rb.ingredients)[d.ingredients[0]] / out_b,
                d.ingredients[1]: dict(rb.ingredients)[mid] / out_b * a_per_mid}
    _, amounts, out_amt = recipe_numbers(d)
    return {i: amounts[i] / out_amt for i in d.ingredients}


def row_rates(d: Design) -> list[float]:
    """Items/s of the product each machine row delivers (k machines, no belt limit)."""
    _, _, rows = layout(d)
    if d.pre:
        out_b = dict(gd.recipe(d.recipe).results)[d.product]
        plan = group_plan(d)
        group = sum(c for c, m in zip(plan.crafts, d.group, strict=True) if m == "B") * out_b
        return [d.k * group for _ in rows]
    _, _, out_amt = recipe_numbers(d)
    return [d.k * machine_plan(d, r.near)[2] * out_amt for r in rows]


def fits_belts(d: Design) -> bool:
    """Whether every belt of the block carries what its machines need: an input belt at most
    its tier's rate of each of its items, an output belt one lane (half its rate) per machine row."""
    belt = gd.belt_rate(gd.BELTS[d.tier])
    _, belts, _ = layout(d)
    rates = row_rates(d)
    if max(rates) > belt / 2 + 1e-9:
        return False
    per = per_product(d)
    for i, item in enumerate(d.ingredients):
        n_belts = sum(1 for v in belts.values() if v == i)
        if sum(rates) * per[item] > belt * n_belts + 1e-9:
            return False
    return True


def stated_rate(d: Design) -> float:
    """What the block delivers when every belt fits (:func:`fits_belts`): from game numbers."""
    return float(sum(row_rates(d)))


def largest_k(d: Design, width: int) -> int:
    """The most machines per row that ``width`` columns and the belts allow (0: none)."""
    k = width // replace(d, k=1).width
    while k > 0 and not fits_belts(replace(d, k=k)):
        k -= 1
    return k


def design_entities(d: Design, y0: int, x0: int) -> list[Entity]:
    """The machines, inserters and belt rows of block ``d`` with its top-left corner at (y0, x0)."""
    height, belts, rows = layout(d)
    belt = gd.BELTS[d.tier]
    ents: list[Entity] = []
    pick_cols: dict[int, list[int]] = {r: [] for r in belts}
    drop_cols: dict[int, list[int]] = {}
    for r in rows if d.pre else ():
        ents += _pair_row(d, r, y0, x0, pick_cols, drop_cols)
    for r in rows if not d.pre else ():
        ins, n_out, _ = machine_plan(d, r.near)
        for j in range(d.k):
            mx = x0 + d.size * j
            ents.append(Entity(d.machine, y0 + r.top, mx, recipe=d.recipe))
            for t, (item, name) in enumerate(ins):
                ents.append(Entity(name, y0 + r.ins_row, mx + t, r.in_dir))
                reach = 1 if name != LONG else 2
                brow = r.ins_row + (-reach if r.in_dir == 0 else reach)
                assert belts[brow] == item, (d, brow, item)
                pick_cols[brow].append(mx + t)
            for t in range(n_out):
                ents.append(Entity(d.inserter, y0 + r.out_row, mx + t, r.out_dir))
                drop_cols.setdefault(r.out_belt, []).append(mx + t)
    for brow, cols in pick_cols.items():  # input belts: east, from the first to the last pickup
        ents += [Entity(belt, y0 + brow, x, 1) for x in range(min(cols), max(cols) + 1)]
    for brow, cols in drop_cols.items():
        ents += [Entity(belt, y0 + brow, x, 1 if d.out_east else 3) for x in range(min(cols), max(cols) + 1)]
    return ents


def _pair_row(d: Design, r: MachineRow, y0: int, x0: int, pick_cols: dict, drop_cols: dict) -> list[Entity]:
    """One row of groups (:func:`group_plan`): each A fed from the near belt hands its product to
    its B neighbours (fed from the far belt by long-handed inserters) through columns of inserters."""
    plan = group_plan(d)
    s, ents = d.size, []
    east = _transfer_dir(d.inserter)
    for j in range(d.k):
        gx = x0 + j * (len(d.group) * (s + 1) - 1)
        for i, c in enumerate(d.group):
            mx = gx + i * (s + 1)
            ents.append(Entity(d.machine, y0 + r.top, mx, recipe=d.pre if c == "A" else d.recipe))
            name, belt = (d.inserter, r.ins_row - 1) if c == "A" else (LONG, r.ins_row - 2)
            ents += [Entity(name, y0 + r.ins_row, mx + t, r.in_dir) for t in range(plan.feed[i])]
            pick_cols[belt] += [mx + t for t in range(plan.feed[i])]
            ents += [Entity(d.inserter, y0 + r.out_row, mx + t, r.out_dir) for t in range(plan.out[i])]
            drop_cols.setdefault(r.out_belt, []).extend(mx + t for t in range(plan.out[i]))
            if i + 1 < len(d.group):
                dr = east if c == "A" else (east + 2) % 4
                ents += [Entity(d.inserter, y0 + r.top + t, mx + s, dr) for t in range(plan.hand[i])]
    for belt in (r.ins_row - 1, r.ins_row - 2):  # input belts start at the block's west edge
        if pick_cols[belt]:
            pick_cols[belt].append(x0)
    return ents


def entity_count(d: Design) -> int:
    return len(design_entities(d, 0, 0))


def output_ends(d: Design, y0: int, x0: int) -> list[tuple[int, int, int]]:
    """(y, x, direction) of the cell each output belt of the block pushes into."""
    ends = []
    for e in design_entities(d, y0, x0):
        if e.name in gd.BELTS and e.direction in (1, 3) and (e.direction == 1) == d.out_east:
            nxt = (e.y, e.x + (1 if e.direction == 1 else -1))
            ends.append((*nxt, e.direction))
    rows = {y: [] for y, _, _ in ends}
    for y, x, dr in ends:
        rows[y].append((x, dr))
    out_rows = {y0 + r.out_belt for r in layout(d)[2]}
    return [(y, (max if d.out_east else min)(v)[0], v[0][1]) for y, v in rows.items() if y in out_rows]


def input_ends(d: Design, y0: int, x0: int) -> list[tuple[int, int]]:
    """The cell in front of each input belt's dead end (east of its last pickup)."""
    _, belts, _ = layout(d)
    last: dict[int, int] = {}
    for e in design_entities(d, y0, x0):
        if e.name in gd.BELTS and e.y - y0 in belts:
            last[e.y] = max(last.get(e.y, e.x), e.x)
    return [(y, x + 1) for y, x in last.items()]


def block_mask(d: Design) -> np.ndarray:
    """(height, 3k) bool: the cells block ``d`` covers."""
    height = layout(d)[0]
    m = np.zeros((height, d.width), dtype=bool)
    for e in design_entities(d, 0, 0):
        w, h = e.size
        m[e.y:e.y + h, e.x:e.x + w] = True
    return m


def join_outputs(world: World, ends: list[tuple[int, int, int]], item: str, tier: int) -> int:
    """Route every output belt end still pushing into an empty cell to a sink of ``item`` (a
    sink takes belts from all four sides; fill stops once a sink gets its item). Returns how
    many ends stay unjoined."""
    sinks = [e for e in world.entities(obstacles=False) if e.name == SINK and e.item == item]
    left = 0
    for y, x, dr in ends:
        if not (0 <= y < world.height and 0 <= x < world.width) or world.grid[0, y, x] != 0:
            continue
        goal = Goal({(s.y, s.x): enter_pred(s) for s in sinks})
        path = route(world, [(y, x, dr, False)], goal, tier, underground=True, ctx=RouteCtx(world))
        if not path:
            left += 1
            continue
        for e in path:
            world.place(e)
    return left


def place_design(world: World, d: Design, y0: int, x0: int) -> bool:
    """Place block ``d`` at (y0, x0) when all of it fits on free cells (else leave ``world`` as it was)."""
    ents = design_entities(d, y0, x0)
    g = world.grid
    for e in ents:
        w, h = e.size
        if e.y < 0 or e.x < 0 or e.y + h > world.height or e.x + w > world.width:
            return False
        if (g[:, e.y:e.y + h, e.x:e.x + w] != 0).any():
            return False
    for e in ents:
        world.place(e)
    return True


# ============================================================================ the task family


@dataclass
class ScaleFactory:
    world: World
    designs: list[tuple[Design, int, int]]  # (design, y0, x0) of each block
    stated: float                           # what the blocks deliver, from game numbers


def pair_design(pre: str, recipe: str, machine: str, inserter: str, tier: int, k: int = 1) -> Design:
    """A "pairs" design: ``pre`` (one ingredient) hands its product to ``recipe``, whose other
    ingredient comes on the far belt."""
    mid = gd.recipe(pre).results[0][0]
    x = next(i for i, _ in gd.recipe(recipe).ingredients if i != mid)
    a_in = gd.recipe(pre).ingredients[0][0]
    return Design(recipe, (x, a_in), gd.recipe(recipe).results[0][0], machine, inserter, tier, k, "pairs",
                  pre=pre)


def draw_design(rng: np.random.Generator, size: int) -> Design:
    """A random design whose k is the most the width (minus the source and sink columns) allows."""
    kind = int(rng.integers(0, len(SCALE_RECIPES) + 1 + len(TWO_STEP)))
    tier = int(rng.integers(1, 4))
    ins = pick(rng, ("fast-inserter", "bulk-inserter"))
    if kind > len(SCALE_RECIPES):
        pre, rec = TWO_STEP[kind - len(SCALE_RECIPES) - 1]
        d = pair_design(pre, rec, pick(rng, gd.ASSEMBLERS[1:]), ins, tier)
        fit = [g for g in GROUPS if min(group_plan(replace(d, group=g)).crafts) > 0
               and largest_k(replace(d, group=g), size - 3) > 0]
        d = replace(d, group=pick(rng, fit) if fit else "AB")
        return replace(d, k=largest_k(d, size - 3))
    if kind == len(SCALE_RECIPES):
        ore = pick(rng, ORES)
        d = Design(None, (ore,), smelt(ore), pick(rng, (FURNACE, "steel-furnace")), ins, tier, 1)
    else:
        r = gd.recipe(SCALE_RECIPES[kind])
        ings = tuple(i for i, _ in r.ingredients)
        if len(ings) == 2 and rng.random() < 0.5:
            ings = ings[::-1]
        d = Design(SCALE_RECIPES[kind], ings, r.results[0][0], pick(rng, gd.ASSEMBLERS[1:]), ins, tier, 1)
    fit = [v for v in variants_for(len(d.ingredients)) if layout(replace(d, variant=v))[0] <= size]
    d = replace(d, variant=pick(rng, fit))
    return replace(d, k=largest_k(d, size - 3))


def _ports(d: Design, y0: int, size: int) -> list[Entity]:
    """Sources on the left edge behind each input belt's head, a sink on the right edge."""
    _, belts, rows = layout(d)
    ents = [Entity(SOURCE, y0 + r, 0, item=d.ingredients[i]) for r, i in belts.items()]
    outs = sorted({r.out_belt for r in rows})
    ys = sorted(belts) if len(outs) > 1 else outs
    ents.append(Entity(SINK, y0 + ys[0], size - 1, item=d.product))
    return ents


def scale_factory(size: int, rng: np.random.Generator) -> ScaleFactory | None:
    """A scale task's reference: as many blocks of one random design as the height holds, each
    with its sources and sink, joined by :func:`fill` (None when a route fails: draw again)."""
    d = draw_design(rng, size)
    if d.k < 1:
        return None
    height = layout(d)[0]
    n = size // height
    top = int(rng.integers(0, size - n * height + 1))
    w = World(size, size)
    placed = []
    for b in range(n):
        y0 = top + b * height
        if not place_design(w, d, y0, 1):
            return None
        for e in _ports(d, y0, size):
            w.place(e)
        placed.append((d, y0, 1))
    ore = d.ingredients[0] if d.recipe is None else None
    if fill(w, d.tier, rng=rng, underground=False, furnace_ore=ore):
        return None
    if join_outputs(w, [e for dd, y0, x0 in placed for e in output_ends(dd, y0, x0)], d.product, d.tier):
        return None
    scatter_obstacles(w, rng, float(rng.uniform(0.0, 0.05)))
    return ScaleFactory(w, placed, n * stated_rate(d))


def build_scale(size: int, rng: np.random.Generator, throttle: bool = False) -> World | None:
    """The family builder :func:`factorion.tasks.families.solved_factory` calls."""
    f = scale_factory(size, rng)
    return None if f is None else f.world
