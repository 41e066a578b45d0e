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
"""

from __future__ import annotations

import csv
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import gamedata as gd
from .world import IO_INPUT, IO_OUTPUT, OBSTACLE, PART, SINK, SOURCE, Entity, World

FAMILIES: tuple[str, ...] = ("belt", "underground", "splitter", "smelting", "assembler1", "assembler2",
                             "tree2")
LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
MIN_SIZE = {"belt": 5, "underground": 6, "splitter": 5, "smelting": 5, "assembler1": 5, "assembler2": 5,
            "tree2": 7}
MAX_SIZE = 32
RECIPE_FAMILIES = ("smelting", "assembler1", "assembler2", "tree2")
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

_BELTS = frozenset(gd.BELTS)
_UGS = frozenset(gd.UNDERGROUNDS)
_SPLITTERS = frozenset(gd.SPLITTERS)
_BELTLIKE = _BELTS | _UGS | _SPLITTERS
_INSERTERS = frozenset(gd.INSERTERS)
_MACHINES = frozenset(gd.ASSEMBLERS + gd.FURNACES)


# ============================================================================ the task


@dataclass
class Task:
    family: str
    level: int
    seed: int
    world: World             # the start state the agent sees
    solution: World          # the reference solution (a complete working factory, same size)
    reference: float         # throughput(solution) in items/s, > 0
    removed: list[Entity]    # entities of `solution` missing from `world` (levels 3 and 4), else []
    recipes: tuple[str, ...]  # assembler recipes the task may need; () for belt and smelting tasks
    items: tuple[str, ...]   # items at sources and sinks


# ============================================================================ small helpers


def step(c: tuple[int, int], d: int, k: int = 1) -> tuple[int, int]:
    return c[0] + k * OFF[d][0], c[1] + k * OFF[d][1]


def cells_of(e: Entity) -> list[tuple[int, int]]:
    w, h = e.size
    return [(e.y + i, e.x + j) for i in range(h) for j in range(w)]


def _inb(world: World, c: tuple[int, int]) -> bool:
    return 0 <= c[0] < world.height and 0 <= c[1] < world.width


def fronts(e: Entity) -> list[tuple[tuple[int, int], int]]:
    """(cell, direction) of the cells a belt, underground output or splitter pushes into."""
    if e.name in _BELTS or (e.name in _UGS and e.io == IO_OUTPUT):
        return [(step((e.y, e.x), e.direction), e.direction)]
    if e.name in _SPLITTERS:
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
        if not _inb(world, c):
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
        if not _inb(world, c):
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
    return tuple(sorted({e.item for e in world.entities() if e.name in (SOURCE, SINK)}))


def fixed_only(world: World) -> World:
    """A copy of ``world`` with only its sources, sinks and obstacles."""
    out = world.copy()
    for e in world.entities():
        if e.name not in FIXED:
            out.remove(e.y, e.x)
    return out


def replace(world: World, e: Entity, name: str) -> None:
    world.remove(e.y, e.x)
    world.place(Entity(name, e.y, e.x, e.direction, e.item, e.recipe, e.io))


# ============================================================================ routing


class Goal:
    """Where a route may end. ``enter[cell](din, flag)``: whether the route may end by moving
    into ``cell`` (a sink or the first entity of an existing line) travelling ``din``, ``flag``
    telling that the last thing placed was an underground output (so only a straight entry
    works; see :func:`enter_pred`). ``end``: cells where the route ends with a dead-end belt
    (an inserter picks up there)."""

    def __init__(self, enter: dict | None = None, end: Iterable[tuple[int, int]] = ()):
        self.enter: dict[tuple[int, int], Callable[[int, bool], bool]] = dict(enter or {})
        self.end = set(end)

    def __bool__(self) -> bool:
        return bool(self.enter or self.end)

    def cells(self) -> list[tuple[int, int]]:
        return [*self.enter, *self.end]


def enter_pred(e: Entity) -> Callable[[int, bool], bool] | None:
    """How a route may enter entity ``e`` (the head of a line) without side-loading."""
    if e.name == SINK:
        return lambda din, flag: not flag
    if e.name in _BELTS:
        dh = e.direction
        return lambda din, flag: din != (dh + 2) % 4 and (not flag or din == dh)
    if e.name in _SPLITTERS or (e.name in _UGS and e.io == IO_INPUT):
        dh = e.direction
        return lambda din, flag: din == dh
    return None


class _Ctx:
    """What the router must respect in a world: occupied cells, cells something already pushes
    into or an inserter reaches (blocked), sources (a belt pointing away from one is fed by it),
    and per belt tier the cells where a new underground would pair wrongly."""

    def __init__(self, world: World):
        H, W = world.shape
        self.H, self.W = H, W
        self.occ = world.grid[PART] != 0
        self.blocked = np.zeros((H, W), dtype=bool)
        self.sources: set[tuple[int, int]] = set()
        self.ug: list[set[tuple[int, int]]] = [set() for _ in gd.UNDERGROUNDS]
        self.tunnel = np.zeros((len(gd.UNDERGROUNDS), H, W), dtype=bool)

        def block(c):
            if 0 <= c[0] < H and 0 <= c[1] < W:
                self.blocked[c] = True

        for e in world.entities():
            if e.name == SOURCE:
                self.sources.add((e.y, e.x))
            elif e.name in _INSERTERS:
                for c in inserter_cells(e):
                    block(c)
            elif e.name in _BELTLIKE:
                for c, _ in fronts(e):
                    block(c)
                if e.name in _UGS:
                    t = gd.tier(e.name)
                    self.ug[t].add((e.y, e.x))
                    if e.io == IO_INPUT:
                        o = ug_partner(world, e)
                        reach = (abs(o.y - e.y) + abs(o.x - e.x) - 1) if o else gd.underground_max_distance(
                            e.name)
                        for k in range(1, reach + 1):
                            c = step((e.y, e.x), e.direction, k)
                            if 0 <= c[0] < H and 0 <= c[1] < W:
                                self.tunnel[t][c] = True


def route(world: World, starts: Sequence[tuple[int, int, int, bool]], goal: Goal, tier: int, *,
          underground: bool = True, rng: np.random.Generator | None = None, ctx: _Ctx | None = None,
          ug_cost: float = 5.0, exclude: Iterable[tuple[int, int]] = ()) -> list[Entity] | None:
    """A* route of one belt line; the entities to place, or None when there is no route.

    ``starts``: (y, x, din, flag) states: the line's first entity goes on (y, x); items arrive
    there travelling ``din`` (-1: from an inserter, any direction goes); ``flag``: that entity
    must point ``din`` (the cell is in front of a source, an underground output or a splitter).
    Belts turn freely (a belt with one feeder curves, it never side-loads), undergrounds jump
    2..max_distance cells straight ahead (tier ``tier``) and need a straight belt after them.
    A belt is never put where something already pushes into or an inserter reaches (except at
    the starts and goals), never points away from a source other than its own, and never
    points into anything but the next cell of the line or the goal.
    """
    ctx = ctx or _Ctx(world)
    H, W = ctx.H, ctx.W
    belt = gd.BELTS[tier]
    ugname = gd.UNDERGROUNDS[tier]
    maxd = gd.underground_max_distance(ugname)
    exclude = set(exclude)
    gcells = goal.cells()
    if not gcells:
        return None

    def inb(c):
        return 0 <= c[0] < H and 0 <= c[1] < W

    def free(c):
        return inb(c) and not ctx.occ[c] and not ctx.blocked[c] and c not in exclude

    def back_ok(c, d, din, flag):
        b = (c[0] - OFF[d][0], c[1] - OFF[d][1])
        return b not in ctx.sources or (flag and din == d)

    def h(c):
        return min(abs(c[0] - g[0]) + abs(c[1] - g[1]) for g in gcells)

    tie = itertools.count()
    heap: list = []
    best: dict = {}
    parent: dict = {}
    for y, x, din, flag in starts:
        c = (y, x)
        if c in goal.enter and goal.enter[c](din, flag):
            return []
        if not inb(c) or ctx.occ[c] or c in exclude:
            continue
        s = (y, x, din, bool(flag))
        if s not in best:
            best[s] = 0.0
            parent[s] = None
            heapq.heappush(heap, (h(c), next(tie), 0.0, s))

    def chain(s, last):
        out = list(last)
        while parent[s] is not None:
            s, ents = parent[s]
            out[:0] = ents
        return out

    def valid(path):
        seen = set()
        for e in path:
            c = (e.y, e.x)
            if c in seen:
                return False
            seen.add(c)
        ug_cells = {(e.y, e.x) for e in path if e.name in _UGS}
        for i, e in enumerate(path):
            if e.name in _UGS and e.io == IO_INPUT:
                o = path[i + 1]
                k = abs(o.y - e.y) + abs(o.x - e.x)
                for j in range(1, k):
                    if step((e.y, e.x), e.direction, j) in ug_cells:
                        return False
        return True

    # random cell costs (constructions) vary the routes a seed gives without making them silly
    cost = 1.0 + 0.6 * rng.random((H, W)) if rng is not None else np.ones((H, W))

    def push(s2, g2, s, ents):
        if g2 < best.get(s2, float("inf")):
            best[s2] = g2
            parent[s2] = (s, ents)
            heapq.heappush(heap, (g2 + h((s2[0], s2[1])), next(tie), g2, s2))

    while heap:
        _, _, g, s = heapq.heappop(heap)
        if g > best.get(s, float("inf")):
            continue
        y, x, din, flag = s
        c = (y, x)
        if c in goal.end:
            dirs = [din] if flag else [d for d in range(4) if din < 0 or d != (din + 2) % 4]
            options = []
            for d in dirs:
                if not back_ok(c, d, din, flag):
                    continue
                f = step(c, d)
                if inb(f):
                    fe = world.entity_at(*f)
                    if fe is not None and (fe.name in _BELTLIKE or fe.name == SINK):
                        continue
                    if fe is None and (ctx.blocked[f] or f in exclude):
                        continue
                    rank = 0 if fe is not None else (1 if d == din else 2)
                else:
                    rank = 0
                options.append((rank, d))
            for _, d in sorted(options):
                path = chain(s, [Entity(belt, y, x, d)])
                f = step(c, d)
                if valid(path) and all((e.y, e.x) != f for e in path):
                    return path
            continue
        for d in range(4):
            if flag and d != din:
                continue
            if din >= 0 and d == (din + 2) % 4:
                continue
            if not back_ok(c, d, din, flag):
                continue
            n = step(c, d)
            ents = [Entity(belt, y, x, d)]
            if n in goal.enter and goal.enter[n](d, False):
                path = chain(s, ents)
                if valid(path):
                    return path
                continue
            if free(n) or (n in goal.end and not ctx.occ[n]):
                push((n[0], n[1], d, False), g + cost[c], s, ents)
        if underground and din >= 0 and not ctx.tunnel[tier][c] and back_ok(c, din, din, flag):
            d = din
            for k in range(2, maxd + 1):
                o = step(c, d, k)
                if not inb(o) or o in ctx.ug[tier]:
                    break
                if not free(o) or ctx.tunnel[tier][o]:
                    continue
                n = step(o, d)
                ents = [Entity(ugname, y, x, d, io=IO_INPUT), Entity(ugname, o[0], o[1], d, io=IO_OUTPUT)]
                if n in goal.enter and goal.enter[n](d, True):
                    path = chain(s, ents)
                    if valid(path):
                        return path
                    continue
                if free(n) or (n in goal.end and not ctx.occ[n]):
                    push((n[0], n[1], d, True), g + ug_cost * cost[c] + 0.01 * k, s, ents)
    return None


def place_all(world: World, ents: Iterable[Entity]) -> None:
    for e in ents:
        world.place(e)


def source_starts(world: World, cell: tuple[int, int]) -> list[tuple[int, int, int, bool]]:
    """Route starts in front of a source: the first entity must point away from it (occupied
    cells are kept: a line head right in front of the source joins with no belt at all)."""
    out = []
    for d in range(4):
        c = step(cell, d)
        if _inb(world, c):
            out.append((c[0], c[1], d, True))
    return out


# ============================================================================ flow analysis


class Flow:
    """Which items reach which entity (optimistic about machines: an assembler is taken to make
    its product, a furnace the plate of what it is fed or of ``furnace_ore``), what each consumer
    still lacks, and where lines end or begin without being joined."""

    def __init__(self, world: World, furnace_ore: str | None = None):
        self.world = world
        self.furnace_ore = furnace_ore
        ents = [e for e in world.entities() if e.name != OBSTACLE]
        self.ents = ents
        at: dict[tuple[int, int], Entity] = {}
        for e in ents:
            for c in cells_of(e):
                at[c] = e
        self.at = at
        out: dict[Entity, list[Entity]] = {e: [] for e in ents}
        inp: dict[Entity, list[Entity]] = {e: [] for e in ents}
        self.dangling: list[tuple[Entity, tuple[int, int], int, bool]] = []
        self.orphans: list[Entity] = []

        def link(a, b):
            out[a].append(b)
            inp[b].append(a)

        for e in ents:
            n = e.name
            if n == SOURCE:
                for d in range(4):
                    t = at.get(step((e.y, e.x), d))
                    if t is not None and t.direction == d and (t.name in _BELTS or t.name in _SPLITTERS
                                                               or (t.name in _UGS and t.io == IO_INPUT)):
                        link(e, t)
            elif n in _BELTLIKE:
                for c, d in fronts(e):
                    t = at.get(c)
                    if t is None:
                        if _inb(world, c):
                            self.dangling.append((e, c, d, n not in _BELTS))
                    elif self._accepts_belt(t, d):
                        link(e, t)
                if n in _UGS and e.io == IO_INPUT:
                    o = ug_partner(world, e)
                    if o is None:
                        self.orphans.append(e)
                    else:
                        link(e, o)
                elif n in _UGS and ug_input_of(world, e) is None:
                    self.orphans.append(e)
            elif n in _INSERTERS:
                p, q = inserter_cells(e)
                pe, qe = at.get(p), at.get(q)
                if pe is not None and pe.name not in _INSERTERS and pe.name != SINK:
                    link(pe, e)
                if qe is not None and qe.name not in _INSERTERS and qe.name != SOURCE:
                    link(e, qe)
                elif qe is None and _inb(world, q):
                    self.dangling.append((e, q, -1, False))
        self.out, self.inp = out, inp
        self.items = self._forward()
        self.demand = self._backward()

    @staticmethod
    def _accepts_belt(t: Entity, d: int) -> bool:
        if t.name in _BELTS:
            return t.direction != (d + 2) % 4
        if t.name in _SPLITTERS or (t.name in _UGS and t.io == IO_INPUT):
            return t.direction == d
        return t.name == SINK

    def needs(self, m: Entity) -> set[str]:
        """Items a machine or sink takes in."""
        if m.name == SINK:
            return {m.item}
        if m.name in gd.ASSEMBLERS:
            return set(ingredients_of(m.recipe)) if m.recipe else set()
        if m.name in gd.FURNACES:
            if self.furnace_ore:
                return {self.furnace_ore}
            return {s.item for s in self.ents if s.name == SOURCE and smelt(s.item)}
        return set()

    def accepts(self, t: Entity | None) -> set[str] | None:
        """Items an inserter may drop into ``t`` (None: anything)."""
        if t is None or t.name in _BELTLIKE or t.name in gd.CHESTS:
            return None
        if t.name in gd.FURNACES:
            return {i for i in gd.item_names() if smelt(i)} if not self.furnace_ore else {self.furnace_ore}
        return self.needs(t)

    def _products(self, m: Entity, items) -> set[str]:
        if m.name in gd.ASSEMBLERS:
            return {product_of(m.recipe)} if m.recipe else set()
        got = set().union(*(items[i] for i in self.inp[m])) if self.inp[m] else set()
        if self.furnace_ore:
            got.add(self.furnace_ore)
        return {p for p in map(smelt, got) if p}

    def _forward(self) -> dict[Entity, set[str]]:
        items: dict[Entity, set[str]] = {e: set() for e in self.ents}
        for e in self.ents:
            if e.name == SOURCE:
                items[e] = {e.item}
        for _ in range(4 * len(self.ents) + 4):
            changed = False
            for e in self.ents:
                if e.name == SOURCE:
                    continue
                if e.name in _MACHINES:
                    new = self._products(e, items)
                elif e.name in _INSERTERS:
                    src = self.inp[e]
                    new = set().union(*(items[s] for s in src)) if src else set()
                    acc = self.accepts(self.out[e][0] if self.out[e] else None)
                    if acc is not None:
                        new &= acc
                else:
                    src = self.inp[e]
                    new = set().union(*(items[s] for s in src)) if src else set()
                if new != items[e]:
                    items[e] = new
                    changed = True
            if not changed:
                break
        return items

    def _backward(self) -> dict[Entity, set[str]]:
        dem: dict[Entity, set[str]] = {e: set() for e in self.ents}
        for _ in range(4 * len(self.ents) + 4):
            changed = False
            for e in self.ents:
                if e.name in (SINK, *_MACHINES):
                    new = self.needs(e)
                elif e.name == SOURCE:
                    continue
                else:
                    new = set().union(*(dem[t] for t in self.out[e])) if self.out[e] else set()
                if new != dem[e]:
                    dem[e] = new
                    changed = True
            if not changed:
                break
        return dem

    # ------------------------------------------------------------------ what is missing
    def unmet(self) -> list[tuple[Entity, str]]:
        """(consumer, item) pairs: sinks that get nothing of their item, machines lacking an
        ingredient."""
        res = []
        for e in self.ents:
            if e.name == SINK:
                got = set().union(*(self.items[i] for i in self.inp[e])) if self.inp[e] else set()
                if e.item not in got:
                    res.append((e, e.item))
            elif e.name in _MACHINES:
                have = set().union(*(self.items[i] for i in self.inp[e])) if self.inp[e] else set()
                if e.name in gd.FURNACES and have:
                    continue
                for x in sorted(self.needs(e) - have):
                    res.append((e, x))
        return res

    def heads(self, e: Entity) -> list[Entity]:
        """First entities of the (item-less) belt lines that end in ``e``."""
        out, seen, todo = [], {e}, deque([e])
        while todo:
            a = todo.popleft()
            feeders = [b for b in self.inp[a] if b.name in _BELTLIKE]
            if a.name in _BELTLIKE and not self.inp[a]:
                out.append(a)
            for b in feeders:
                if b not in seen and not self.items[b]:
                    seen.add(b)
                    todo.append(b)
        return out

    def input_inserters(self, m: Entity) -> list[Entity]:
        return [i for i in self.inp[m] if i.name in _INSERTERS]

    def output_inserters(self, m: Entity) -> list[Entity]:
        return [i for i in self.out[m] if i.name in _INSERTERS]

    def goal_for(self, consumer: Entity, item: str) -> Goal:
        goal = Goal()
        world = self.world
        if consumer.name == SINK:
            goal.enter[(consumer.y, consumer.x)] = enter_pred(consumer)
            for hd in self.heads(consumer):
                self._add_head(goal, hd)
            return goal
        for ins in self.input_inserters(consumer):
            if self.items[ins]:
                continue
            p, _ = inserter_cells(ins)
            pe = self.at.get(p)
            if pe is None:
                if _inb(world, p):
                    goal.end.add(p)
            elif pe.name in _BELTLIKE and not self.items[pe]:
                for hd in self.heads(pe):
                    self._add_head(goal, hd)
        return goal

    @staticmethod
    def _add_head(goal: Goal, hd: Entity) -> None:
        pred = enter_pred(hd)
        if pred is None:
            return
        for c in cells_of(hd):
            goal.enter[c] = pred

    def supplies(self, item: str) -> tuple[list, list]:
        """(line ends carrying ``item``, starts in front of sources of ``item``)."""
        ends = []
        for e, c, d, flag in self.dangling:
            if item in self.items[e] and self.world.grid[PART][c] == 0:
                ends.append((c[0], c[1], d, flag))
        srcs = []
        for e in self.ents:
            if e.name == SOURCE and e.item == item:
                srcs += source_starts(self.world, (e.y, e.x))
        return ends, srcs


def fill(world: World, tier: int, *, rng: np.random.Generator | None = None, underground: bool = True,
         furnace_ore: str | None = None, max_rounds: int = 40) -> list[tuple[Entity, str]]:
    """Route belt lines in ``world`` (in place) until every sink gets its item and every machine
    its ingredients, joining line ends to line heads, sources to sinks and inserter pickups,
    inserter drops to sinks. Returns the consumers it could not feed."""
    failed: set[tuple[Entity, str]] = set()
    for _ in range(max_rounds):
        flow = Flow(world, furnace_ore)
        todo = [u for u in flow.unmet() if u not in failed]
        if not todo:
            break
        if rng is not None:
            todo = [todo[i] for i in rng.permutation(len(todo))]
        progressed = False
        for consumer, item in todo:
            goal = flow.goal_for(consumer, item)
            ends, srcs = flow.supplies(item)
            path = None
            for starts in (ends, srcs):
                if starts and goal:
                    path = route(world, starts, goal, tier, underground=underground, rng=rng)
                    if path is not None:
                        break
            if path is None:
                failed.add((consumer, item))
                continue
            if not path:  # already joined (a source right behind a line head)
                failed.add((consumer, item))
                continue
            place_all(world, path)
            progressed = True
            break
        if not progressed:
            break
    return [u for u in Flow(world, furnace_ore).unmet()]


# ============================================================================ constructions


def _free_cells(world: World, avoid: set) -> list[tuple[int, int]]:
    ys, xs = np.nonzero(world.grid[PART] == 0)
    return [(int(y), int(x)) for y, x in zip(ys, xs, strict=True) if (int(y), int(x)) not in avoid]


def scatter_obstacles(world: World, rng: np.random.Generator, density: float,
                      avoid: set = frozenset()) -> None:
    """Random 1x1 obstacles on ``density`` of the free cells not in ``avoid``."""
    free = _free_cells(world, set(avoid))
    n = int(round(density * len(free)))
    if n <= 0:
        return
    for i in rng.choice(len(free), size=n, replace=False):
        y, x = free[int(i)]
        world.place(Entity(OBSTACLE, y, x, obstacle_name=str(rng.choice(OBSTACLE_NAMES))))


def _random_free(world: World, rng, avoid: set, need_free_neighbour: bool = True) -> tuple[int, int] | None:
    free = _free_cells(world, avoid)
    rng.shuffle(free)
    for c in free:
        around = (step(c, d) for d in range(4))
        if not need_free_neighbour or any(_inb(world, n) and world.grid[PART][n] == 0 and n not in avoid
                                          for n in around):
            return c
    return None


def _neighbours(world: World, c) -> set:
    return {step(c, d) for d in range(4)} | {c}


def _build_belt(size: int, rng, throttle: bool) -> World | None:
    w = World(size, size)
    tier = int(rng.integers(1 if throttle else 0, 4))
    item = str(rng.choice(BELT_ITEMS))
    src = _random_free(w, rng, set())
    w.place(Entity(SOURCE, *src, item=item))
    far = [c for c in _free_cells(w, _neighbours(w, src))
           if abs(c[0] - src[0]) + abs(c[1] - src[1]) >= max(2, size // 3)]
    if not far:
        return None
    snk = far[int(rng.integers(len(far)))]
    w.place(Entity(SINK, *snk, item=item))
    scatter_obstacles(w, rng, float(rng.uniform(0.05, 0.3)), _neighbours(w, src) | _neighbours(w, snk))
    if fill(w, tier, rng=rng, underground=False):
        return None
    return w


def _build_underground(size: int, rng, throttle: bool) -> World | None:
    w = World(size, size)
    tier = int(rng.integers(1 if throttle else 0, 4))
    maxd = gd.underground_max_distance(gd.UNDERGROUNDS[tier])
    item, item2 = (str(s) for s in rng.choice(BELT_ITEMS, size=2, replace=False))
    crossing = bool(rng.random() < 0.5)
    if crossing:
        col = int(rng.integers(2, size - 2))
        t2 = int(rng.integers(0, 4))
        w.place(Entity(SOURCE, 0, col, item=item2))
        for y in range(1, size - 1):
            w.place(Entity(gd.BELTS[t2], y, col, 2))
        w.place(Entity(SINK, size - 1, col, item=item2))
        lo, hi = col, col + 1
    else:
        thick = int(rng.integers(1, min(3, maxd - 1) + 1))
        col = int(rng.integers(2, max(3, size - 2 - thick)))
        if col + thick > size - 2:
            return None
        for y in range(size):
            for x in range(col, col + int(rng.integers(1, thick + 1))):
                w.place(Entity(OBSTACLE, y, x, obstacle_name="stone-wall"))
        lo, hi = col, col + thick
    left = [(y, x) for y in range(size) for x in range(0, lo - 1)]
    right = [(y, x) for y in range(size) for x in range(hi + 1, size)]
    if not left or not right:
        return None
    src = left[int(rng.integers(len(left)))]
    snk = right[int(rng.integers(len(right)))]
    if w.grid[PART][src] or w.grid[PART][snk]:
        return None
    w.place(Entity(SOURCE, *src, item=item))
    w.place(Entity(SINK, *snk, item=item))
    scatter_obstacles(w, rng, float(rng.uniform(0.0, 0.15)), _neighbours(w, src) | _neighbours(w, snk))
    if fill(w, tier, rng=rng, underground=True):
        return None
    if not any(e.name in _UGS for e in w.entities()):
        return None
    return w.transformed(int(rng.integers(4)), bool(rng.random() < 0.5))


def place_splitter(world: World, rng, tier: int, near: tuple[int, int] | None = None,
                   avoid: set = frozenset(), tries: int = 300) -> Entity | None:
    """A splitter of ``tier`` at a random spot where its cells, the cells behind it and the two
    cells in front of each output are free (optionally right in front of the cell ``near``)."""
    name = gd.SPLITTERS[tier]
    H, W = world.shape
    if near is not None:  # the splitter's back cell is ``near``: 4 directions x 2 cells
        cands = []
        for d in range(4):
            w, h = gd.footprint(name, d)
            c = step(near, d)
            for k in range(2):
                y, x = (c[0], c[1] - k) if w == 2 else (c[0] - k, c[1])
                cands.append(Entity(name, y, x, d))
        order = [cands[i] for i in rng.permutation(len(cands))]
    else:
        order = []
        for _ in range(tries):
            d = int(rng.integers(4))
            w, h = gd.footprint(name, d)
            order.append(Entity(name, int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), d))
    for e in order:
        d = e.direction
        cs = cells_of(e)
        around = [step(c, d) for c in cs] + [step(c, d, 2) for c in cs] + [step(c, (d + 2) % 4) for c in cs]
        if not all(_inb(world, c) for c in cs + around):
            continue
        if any(world.grid[PART][c] or c in avoid for c in cs):
            continue
        if any(world.grid[PART][c] for c in around if c != near):
            continue
        world.place(e)
        return e
    return None


def splitter_inputs(e: Entity) -> list[tuple[tuple[int, int], Callable]]:
    d = e.direction
    return [(c, lambda din, flag, d=d: din == d) for c in cells_of(e)]


def connect_splitter(world: World, sp: Entity, srcs: Sequence[tuple[int, int]], tier: int, *,
                     rng=None, underground: bool = True) -> bool:
    """Route one source to the splitter's inputs (split) or two sources to one input each
    (merge), in place; False when a line does not route."""
    ins = splitter_inputs(sp)
    back = (sp.direction + 2) % 4
    if len(srcs) == 1:
        path = route(world, source_starts(world, srcs[0]), Goal(dict(ins)), tier, rng=rng,
                     underground=underground)
        if path is None:
            return False
        place_all(world, path)
        return True
    order = [0, 1]
    if srcs[1] == step(ins[0][0], back) or srcs[0] == step(ins[1][0], back):
        order = [1, 0]  # a source right behind an input feeds that one
    elif srcs[0] != step(ins[0][0], back) and rng is not None and rng.random() < 0.5:
        order = [1, 0]
    for s, k in zip(srcs, order, strict=True):
        c, pred = ins[k]
        other = step(ins[1 - k][0], back)
        path = route(world, source_starts(world, s), Goal({c: pred}), tier, rng=rng, exclude={other},
                     underground=underground)
        if path is None:
            return False
        place_all(world, path)
    return True


def _build_splitter(size: int, rng, throttle: bool) -> World | None:
    w = World(size, size)
    tier = int(rng.integers(1 if throttle else 0, 4))
    item = str(rng.choice(BELT_ITEMS))
    merge = bool(rng.random() < 0.5)
    srcs = []
    for _ in range(2 if merge else 1):
        s = _random_free(w, rng, set())
        w.place(Entity(SOURCE, *s, item=item))
        srcs.append(s)
    direct = bool(rng.random() < 0.3)
    sp = place_splitter(w, rng, tier, near=srcs[0] if direct else None,
                        avoid=set().union(*(_neighbours(w, s) for s in srcs[1 if direct else 0:])))
    if sp is None:
        return None
    reserved = {step(c, d, k) for c in cells_of(sp) for d, k in ((sp.direction, 1), (sp.direction, 2),
                                                                 ((sp.direction + 2) % 4, 1))}
    snks = []
    for _ in range(1 if merge else 2):
        avoid = reserved | set().union(*(_neighbours(w, s) for s in srcs + snks))
        s = _random_free(w, rng, avoid)
        if s is None:
            return None
        w.place(Entity(SINK, *s, item=item))
        snks.append(s)
    avoid = reserved | set().union(*(_neighbours(w, s) for s in srcs + snks))
    scatter_obstacles(w, rng, float(rng.uniform(0.0, 0.15)), avoid)
    if not connect_splitter(w, sp, srcs, tier, rng=rng, underground=True):
        return None
    if fill(w, tier, rng=rng, underground=bool(rng.random() < 0.5)):
        return None
    # every sink must hang off the splitter (split) / the splitter must feed the sink (merge)
    flow = Flow(w)
    if merge:
        if not flow.out[sp] or any(not flow.out[s] for s in flow.ents if s.name == SOURCE):
            return None
    else:
        if len([t for t in flow.out[sp]]) != 2:
            return None
    return w


# ---------------------------------------------------------------------------- recipe families


@dataclass
class Stage:
    """One machine of a recipe family: its recipe (None: a furnace), product, the items it takes
    from sources, and whether its product goes to the sink (else to the next stage)."""
    recipe: str | None
    product: str
    from_sources: tuple[str, ...]
    final: bool


def recipe_stages(family: str, rng) -> tuple[list[Stage], str | None]:
    """(stages, furnace ore) of a random recipe of ``family`` (first stage feeds the second)."""
    if family == "smelting":
        ore = str(rng.choice(ORES))
        return [Stage(None, smelt(ore), (ore,), True)], ore
    if family == "assembler1":
        r = str(rng.choice(ONE_INGREDIENT))
        return [Stage(r, product_of(r), ingredients_of(r), True)], None
    if family == "assembler2":
        r = str(rng.choice(TWO_INGREDIENTS))
        return [Stage(r, product_of(r), ingredients_of(r), True)], None
    if family == "tree2":
        a, b = TREES[int(rng.integers(len(TREES)))]
        pa = product_of(a)
        return [Stage(a, pa, ingredients_of(a), False),
                Stage(b, product_of(b), tuple(i for i in ingredients_of(b) if i != pa), True)], None
    raise ValueError(f"{family!r} is not a recipe family")


def side_cells(m: Entity) -> list[tuple[tuple[int, int], int]]:
    """(cell, side) of the cells next to a machine's edges (no corners)."""
    w, h = m.size
    out = []
    for i in range(w):
        out.append(((m.y - 1, m.x + i), 0))
        out.append(((m.y + h, m.x + i), 2))
    for i in range(h):
        out.append(((m.y + i, m.x + w), 1))
        out.append(((m.y + i, m.x - 1), 3))
    return out


def inserter_for(name: str, cell: tuple[int, int], side: int, into_machine: bool) -> Entity:
    """An inserter on ``side`` of a machine: feeding it (picks up outside) or emptying it."""
    return Entity(name, cell[0], cell[1], side if into_machine else (side + 2) % 4)


def _pick_inserter_name(rng) -> str:
    return str(rng.choice(("inserter", "fast-inserter", "fast-inserter", "bulk-inserter")))


def _build_recipe(family: str, size: int, rng, throttle: bool) -> World | None:
    stages, ore = recipe_stages(family, rng)
    w = World(size, size)
    tier = int(rng.integers(0, 4))
    furnace = str(rng.choice(("stone-furnace", "steel-furnace")))
    asm = str(rng.choice(gd.ASSEMBLERS))
    machines: list[Entity] = []
    final = stages[-1]
    # final machine anywhere; tree2's first machine one cell away from it
    mname = furnace if final.recipe is None else asm
    n = gd.footprint(mname)[0]
    my, mx = (int(v) for v in rng.integers(0, size - n + 1, size=2))
    mfinal = Entity(mname, my, mx, recipe=final.recipe)
    w.place(mfinal)
    link = None
    if len(stages) == 2:
        side = int(rng.integers(4))
        shift = int(rng.integers(-2, 3))
        dy, dx = OFF[side]
        ay = my + dy * 4 + (shift if dx else 0)
        ax = mx + dx * 4 + (shift if dy else 0)
        ma = Entity(asm, ay, ax, recipe=stages[0].recipe)
        if w.can_place(ma):
            return None
        w.place(ma)
        machines.append(ma)
        # the link inserter: on mfinal's side facing ma, picking up from ma
        cands = [c for c, s in side_cells(mfinal) if s == side and w.grid[PART][c] == 0
                 and w.entity_at(*step(c, side)) == ma]
        if not cands:
            return None
        c = cands[int(rng.integers(len(cands)))]
        link = inserter_for(_pick_inserter_name(rng), c, side, into_machine=True)
        w.place(link)
    machines.append(mfinal)
    reserved: set = set()
    ports: list[tuple[str, str, tuple[int, int]]] = []  # (role, item, outside cell)
    for m, st in zip(machines, stages, strict=True):
        need = [("in", x) for x in st.from_sources] + ([("out", st.product)] if st.final else [])
        sides = side_cells(m)
        rng.shuffle(sides)
        for role, item in need:
            ok = None
            for c, s in sides:
                outside = step(c, s)
                if (_inb(w, c) and _inb(w, outside) and w.grid[PART][c] == 0 and w.grid[PART][outside] == 0
                        and c not in reserved and outside not in reserved):
                    ok = (c, s, outside)
                    break
            if ok is None:
                return None
            c, s, outside = ok
            w.place(inserter_for(_pick_inserter_name(rng), c, s, into_machine=role == "in"))
            reserved |= {outside, c}
            ports.append((role, item, outside))
    # sources and sinks: right at the inserter, or somewhere else and joined by a belt line
    for role, item, outside in ports:
        kind = SOURCE if role == "in" else SINK
        if rng.random() < DIRECT_P:
            w.place(Entity(kind, *outside, item=item))
            continue
        avoid = reserved | {c for r, _, o in ports for c in _neighbours(w, o)}
        c = _random_free(w, rng, avoid)
        if c is None:
            return None
        w.place(Entity(kind, *c, item=item))
        reserved |= _neighbours(w, c)
    scatter_obstacles(w, rng, float(rng.uniform(0.0, 0.15)), reserved)
    if fill(w, tier, rng=rng, underground=bool(rng.random() < 0.5), furnace_ore=ore):
        return None
    if throttle and not any(e.name in ("fast-inserter", "bulk-inserter") or e.name in (
            "assembling-machine-2", "assembling-machine-3", "steel-furnace") for e in w.entities()):
        return None
    return w


_BUILDERS = {"belt": _build_belt, "underground": _build_underground, "splitter": _build_splitter}


def _check(family: str, size: int) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {FAMILIES}")
    if not (MIN_SIZE[family] <= size <= MAX_SIZE):
        raise ValueError(f"family {family!r} needs a size in {MIN_SIZE[family]}..{MAX_SIZE}, got {size}")


def solved_factory(family: str, size: int, rng: np.random.Generator | int | None = None, *,
                   throttle: bool = False) -> World:
    """A complete working factory of ``family`` on a ``size`` x ``size`` grid, built by the
    family's construction (retried with fresh draws from ``rng`` until it routes).
    ``throttle``: only draw factories level 2 can slow down (belts above yellow, a fast inserter
    or a machine above the first tier)."""
    _check(family, size)
    rng = np.random.default_rng(rng)
    build = _BUILDERS.get(family)
    for _ in range(500):
        w = build(size, rng, throttle) if build else _build_recipe(family, size, rng, throttle)
        if w is not None:
            return w
    raise RuntimeError(f"could not build a {family} factory of size {size}")


# ============================================================================ levels


def _throughput(world: World) -> float:
    from .sim import throughput
    return float(throughput(world))


_MACHINE_DOWN = {"assembling-machine-3": ("assembling-machine-2", "assembling-machine-1"),
                 "assembling-machine-2": ("assembling-machine-1",),
                 "steel-furnace": ("stone-furnace",)}
_INSERTER_DOWN = {"fast-inserter": ("inserter",), "bulk-inserter": ("inserter",)}


def throttle_candidates(solution: World, rng) -> list[World]:
    """Worlds with one part of ``solution`` made slower: a run of belts, an underground pair or a
    splitter a tier lower, an inserter slower, a machine a tier lower (shuffled). A lowered belt
    tier or inserter kind stays in use elsewhere in the world, so the fix can be read off it."""
    out: list[World] = []
    ents = solution.entities()
    for e in ents:
        w = solution.copy()
        if e.name in _BELTS and gd.tier(e.name) > 0:
            low = gd.BELTS[int(rng.integers(0, gd.tier(e.name)))]
            run, c = [e], e
            for _ in range(int(rng.integers(0, 4))):
                n = solution.entity_at(*step((c.y, c.x), c.direction))
                if n is None or n.name != e.name:
                    break
                run.append(n)
                c = n
            for r in run:
                replace(w, r, low)
        elif e.name in _UGS and e.io == IO_INPUT and gd.tier(e.name) > 0:
            o = ug_partner(solution, e)
            if o is None:
                continue
            low = gd.UNDERGROUNDS[int(rng.integers(0, gd.tier(e.name)))]
            replace(w, e, low)
            replace(w, o, low)
        elif e.name in _SPLITTERS and gd.tier(e.name) > 0:
            replace(w, e, gd.SPLITTERS[int(rng.integers(0, gd.tier(e.name)))])
        elif e.name in _INSERTER_DOWN:
            replace(w, e, str(rng.choice(_INSERTER_DOWN[e.name])))
        elif e.name in _MACHINE_DOWN:
            replace(w, e, str(rng.choice(_MACHINE_DOWN[e.name])))
        else:
            continue
        # a belt tier or inserter kind lowered must still be seen elsewhere (the clue the fix needs)
        if e.name in _BELTLIKE and gd.tier(e.name) not in {gd.tier(o.name) for o in w.entities()
                                                            if o.name in _BELTLIKE}:
            continue
        if e.name in _INSERTERS and not any(o.name == e.name for o in w.entities()):
            continue
        out.append(w)
    return [out[i] for i in rng.permutation(len(out))]


def removable(world: World) -> list[Entity]:
    return [e for e in world.entities() if e.name not in FIXED]


def _apply_level(solution: World, ref: float, level: int, rng, n_missing: int) -> tuple[World, list] | None:
    if level == 1:
        return solution.copy(), []
    if level == 2:
        for w in throttle_candidates(solution, rng)[:16]:
            t = _throughput(w)
            if 0 < t < ref * (1 - 1e-6):
                return w, []
        return None
    if level == 5:
        return fixed_only(solution), []
    ents = removable(solution)
    if level == 3:
        for i in rng.permutation(len(ents))[:24]:
            w = solution.copy()
            e = ents[int(i)]
            w.remove(e.y, e.x)
            if _throughput(w) < ref * (1 - 1e-6):
                return w, [e]
        return None
    hi = min(n_missing, len(ents))
    if hi < 2:
        return None
    for _ in range(12):
        n = int(rng.integers(2, hi + 1))
        pick = sorted(int(i) for i in rng.choice(len(ents), size=n, replace=False))
        w = solution.copy()
        for i in pick:
            w.remove(ents[i].y, ents[i].x)
        if _throughput(w) < ref * (1 - 1e-6):
            return w, [ents[i] for i in pick]
    return None


def task_recipes(family: str, solution: World) -> tuple[str, ...]:
    if family not in RECIPE_FAMILIES:
        return ()
    rs = {e.recipe for e in solution.entities() if e.recipe}
    ms = [e for e in solution.entities() if e.name in gd.ASSEMBLERS]
    # producers first: a recipe whose product another machine here takes comes first
    prods = {product_of(r) for r in rs}
    return tuple(sorted(rs, key=lambda r: (any(i in prods for i in ingredients_of(r)), r))) if ms else ()


def cap_sources(solution: World) -> None:
    """Cap every source at what the reference solution draws from it (``world.rates``).

    With unlimited sources a faster belt or inserter anywhere would beat the reference, so the
    reference would measure the tier drawn rather than the task; capped, the reference solution
    is the best any build can do with this supply (a build can only tie it), and a throughput
    ratio of 1 means solved."""
    from .sim import simulate
    res = simulate(solution)
    for e in solution.entities():
        if e.name == "source":
            used = sum(res.flow.get((e.y, e.x), {}).values())
            if used > 0:
                solution.rates[(e.y, e.x)] = float(used)


def make_task(family: str, level: int, size: int = 11, seed: int | None = None,
              n_missing: int | None = None) -> Task:
    """A task of ``family`` at ``level`` on a ``size`` x ``size`` grid; the same seed gives the
    same task (and, level 2 aside, the same reference solution at every level)."""
    _check(family, size)
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level}")
    if n_missing is None:
        n_missing = 5
    if n_missing < 2:
        raise ValueError(f"n_missing must be at least 2, got {n_missing}")
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    fam = FAMILIES.index(family)
    for attempt in range(60):
        rng = np.random.default_rng([seed, fam, size, attempt])
        solution = solved_factory(family, size, rng, throttle=level == 2)
        ref = _throughput(solution)
        if ref <= 0:
            continue
        cap_sources(solution)
        got = _apply_level(solution, ref, level, np.random.default_rng([seed, fam, size, attempt, level]),
                           n_missing)
        if got is None:
            continue
        world, removed = got
        assert ref > 0
        return Task(family, level, seed, world, solution, ref, removed, task_recipes(family, solution),
                    world_items(solution))
    raise RuntimeError(f"no {family} task at level {level}, size {size}, seed {seed}")


# ============================================================================ curriculum


class Curriculum:
    """Per-family levels that go up when the success rate over the last ``window`` episodes at
    the current level reaches ``promote_at``. ``sample`` picks the family least far along
    (ties at random) half the time and a uniformly random family otherwise; it plays the
    family's current level, or, one time in ten, a random earlier level (rehearsal; those
    results do not count towards promotion)."""

    def __init__(self, families: Sequence[str] = FAMILIES, start_level: int = 1, promote_at: float = 0.8,
                 window: int = 100, max_level: int = 5, rehearse: float = 0.1):
        for f in families:
            if f not in FAMILIES:
                raise ValueError(f"unknown family {f!r}")
        if not (LEVELS[0] <= start_level <= max_level <= LEVELS[-1]):
            raise ValueError(f"need {LEVELS[0]} <= start_level <= max_level <= {LEVELS[-1]}")
        self.families = tuple(families)
        self.promote_at = promote_at
        self.window = window
        self.max_level = max_level
        self.rehearse = rehearse
        self.level = {f: start_level for f in self.families}
        self.results = {f: deque(maxlen=window) for f in self.families}
        self.episodes = {f: 0 for f in self.families}

    def sample(self, rng: np.random.Generator) -> tuple[str, int]:
        if rng.random() < 0.5:
            low = min(self.level.values())
            pool = [f for f in self.families if self.level[f] == low]
        else:
            pool = list(self.families)
        fam = pool[int(rng.integers(len(pool)))]
        lvl = self.level[fam]
        if lvl > LEVELS[0] and rng.random() < self.rehearse:
            lvl = int(rng.integers(LEVELS[0], lvl))
        return fam, lvl

    def update(self, family: str, level: int, success: bool) -> None:
        self.episodes[family] += 1
        if level != self.level[family]:
            return
        res = self.results[family]
        res.append(bool(success))
        if (len(res) >= self.window and sum(res) / len(res) >= self.promote_at
                and self.level[family] < self.max_level):
            self.level[family] += 1
            res.clear()

    def state(self) -> dict:
        return {f: {"level": self.level[f],
                    "success_rate": (sum(self.results[f]) / len(self.results[f])) if self.results[f] else 0.0,
                    "window_episodes": len(self.results[f]),
                    "episodes": self.episodes[f]}
                for f in self.families}


# ============================================================================ embedded sample


def write_samples(out_dir: str | Path = "factorion/samples", per_family: int = 3, size: int = 11,
                  seed: int = 0) -> list[Path]:
    """Write each family's reference factory for seeds ``seed .. seed+per_family-1`` as blueprint
    exchange strings ``<family>-<i>.txt`` plus ``MANIFEST.tsv`` (file, family, size, seed,
    reference items/s)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, files = [], []
    for fam in FAMILIES:
        for i in range(per_family):
            t = make_task(fam, 1, size=size, seed=seed + i)
            name = f"{fam}-{i}.txt"
            text = t.solution.to_string(label=f"factorion {fam} size {size} seed {seed + i}")
            (out / name).write_text(text + "\n")
            rows.append((name, fam, size, seed + i, f"{t.reference:.6g}"))
            files.append(out / name)
    with open(out / "MANIFEST.tsv", "w", newline="") as f:
        wr = csv.writer(f, delimiter="\t", lineterminator="\n")
        wr.writerow(("file", "family", "size", "seed", "reference"))
        wr.writerows(rows)
    return files
