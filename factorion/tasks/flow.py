"""Flow analysis of a partial factory (:class:`Flow`: which items reach which entity, what each
consumer still lacks) and :func:`fill`, which routes belt lines until every consumer is fed."""

from __future__ import annotations

from collections import deque

import numpy as np

from .. import gamedata as gd
from ..world import IO_INPUT, OBSTACLE, PART, SINK, SOURCE, Entity, World
from .base import (
    _BELTLIKE,
    _BELTS,
    _INSERTERS,
    _MACHINES,
    _SPLITTERS,
    _UGS,
    _inb,
    cells_of,
    fronts,
    ingredients_of,
    inserter_cells,
    product_of,
    smelt,
    step,
    ug_input_of,
    ug_partner,
)
from .routing import Goal, enter_pred, place_all, route, source_starts


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
