"""Flow analysis of a partial factory (:class:`Flow`: which items reach which entity, what each
consumer still lacks) and :func:`fill`, which routes belt lines until every consumer is fed."""

from __future__ import annotations

from collections import deque
from functools import cache, cached_property

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import IO_INPUT, PART, SINK, SOURCE, Entity, World
from factorion.tasks.base import (
    BELT_NAMES,
    BELTLIKE,
    INSERTER_NAMES,
    OFF,
    SPLITTER_NAMES,
    UGS,
    cells_of,
    fronts,
    ingredients_of,
    inserter_cells,
    product_of,
    smelt,
)
from factorion.tasks.routing import Goal, RouteCtx, enter_pred, route, source_starts

# entity classes of the flow analysis
_C_OTHER, _C_SOURCE, _C_SINK, _C_ASM, _C_FURN, _C_INS, _C_BELT, _C_UG_IN, _C_UG_OUT, _C_SPLIT = range(10)
_FURNACES = frozenset(gd.FURNACES)
_ASSEMBLERS = frozenset(gd.ASSEMBLERS)
_CHESTS = frozenset(gd.CHESTS)


def _cls(e: Entity) -> int:
    n = e.name
    if n == SOURCE:
        return _C_SOURCE
    if n == SINK:
        return _C_SINK
    if n in BELT_NAMES:
        return _C_BELT
    if n in UGS:
        return _C_UG_IN if e.io == IO_INPUT else _C_UG_OUT
    if n in SPLITTER_NAMES:
        return _C_SPLIT
    if n in INSERTER_NAMES:
        return _C_INS
    if n in _ASSEMBLERS:
        return _C_ASM
    if n in _FURNACES:
        return _C_FURN
    return _C_OTHER


@cache
def _ug_reach(name: str) -> int:
    return gd.underground_max_distance(name)


@cache
def _smeltable() -> frozenset[str]:
    return frozenset(i for i in gd.item_names() if smelt(i))


# item sets as int bit masks in the analysis: bit _BITS[name] stands for item ``name``
_BITS: dict[str, int] = {}
_NAMES: list[str] = []
_SMELT: list[int] = []  # by bit index: the bit of what smelting the item gives (0: nothing)


def _bit(name: str) -> int:
    i = _BITS.get(name)
    if i is None:
        i = _BITS[name] = len(_NAMES)
        _NAMES.append(name)
        _SMELT.append(-1)
    return 1 << i


def _mask(names) -> int:
    m = 0
    for x in names:
        m |= _bit(x)
    return m


def _names(m: int) -> set[str]:
    out = set()
    while m:
        low = m & -m
        out.add(_NAMES[low.bit_length() - 1])
        m ^= low
    return out


def _smelted(m: int) -> int:
    """The plates the items of mask ``m`` smelt into."""
    out = 0
    while m:
        low = m & -m
        i = low.bit_length() - 1
        if _SMELT[i] < 0:
            p = smelt(_NAMES[i])
            _SMELT[i] = _bit(p) if p else 0
        out |= _SMELT[i]
        m ^= low
    return out


def _cell_maps(ents: list[Entity], cls: list[int]) -> tuple[dict, dict]:
    """Entity and entity index by cell: every cell of machines, splitters and other multi-cell
    entities, the anchor of the rest."""
    at: dict[tuple[int, int], Entity] = {}
    ati: dict[tuple[int, int], int] = {}
    for i, e in enumerate(ents):
        for c in (cells_of(e) if cls[i] in (_C_ASM, _C_FURN, _C_SPLIT, _C_OTHER) else ((e.y, e.x),)):
            at[c] = e
            ati[c] = i
    return at, ati


class Flow:
    """Which items reach which entity (optimistic about machines: an assembler is taken to make
    its product, a furnace the plate of what it is fed or of ``furnace_ore``), what each consumer
    still lacks, and where lines end or begin without being joined.

    ``ents``, ``at``, ``dangling`` and ``orphans`` are built at once; ``out``, ``inp``, ``items``
    and ``demand`` (dicts keyed by entity) on first use, from index lists the analysis runs on
    (hashing entities is most of what a dict-based analysis costs)."""

    def __init__(self, world: World, furnace_ore: str | None = None):
        self.world = world
        self.furnace_ore = furnace_ore
        self._H, self._W = world.shape
        self.ents = ents = world.entities(obstacles=False)
        self._cls = cls = [_cls(e) for e in ents]
        self.at, self._ati = _cell_maps(ents, cls)
        self._out, self._inp, self._dangling, orphans = self._links()
        self.dangling: list[tuple[Entity, tuple[int, int], int, bool]] = [(ents[i], c, d, f)
                                                                          for i, c, d, f in self._dangling]
        self.orphans: list[Entity] = [ents[i] for i in orphans]
        self._furnace_needs = ({furnace_ore} if furnace_ore else
                               {s.item for s, k in zip(ents, cls, strict=True)
                                if k == _C_SOURCE and smelt(s.item)})
        self._items = self._forward_i()
        self._demand = self._backward_i()

    # ------------------------------------------------------------------ links (index lists)
    def _links(self) -> tuple[list[list[int]], list[list[int]], list, list[int]]:
        """(out, inp, dangling, orphans) by entity index: who passes items to whom, the line ends
        with nothing ahead (entity, cell ahead, direction, pushes-only flag), the unpaired
        undergrounds."""
        n = len(self.ents)
        out: list[list[int]] = [[] for _ in range(n)]
        inp: list[list[int]] = [[] for _ in range(n)]
        dangling: list[tuple[int, tuple[int, int], int, bool]] = []
        orphans: list[int] = []

        def link(i: int, j: int) -> None:
            out[i].append(j)
            inp[j].append(i)

        for i, e in enumerate(self.ents):
            k = self._cls[i]
            if k == _C_SOURCE:
                self._source_links(i, e, link)
            elif k in (_C_BELT, _C_UG_IN, _C_UG_OUT, _C_SPLIT):
                self._beltlike_links(i, e, k, link, dangling, orphans)
            elif k == _C_INS:
                self._inserter_links(i, e, link, dangling)
        return out, inp, dangling, orphans

    def _source_links(self, i: int, e: Entity, link) -> None:
        ati, ents, cls = self._ati, self.ents, self._cls
        for d in range(4):
            dy, dx = OFF[d]
            j = ati.get((e.y + dy, e.x + dx))
            if j is not None and ents[j].direction == d and cls[j] in (_C_BELT, _C_SPLIT, _C_UG_IN):
                link(i, j)

    def _beltlike_links(self, i: int, e: Entity, k: int, link, dangling: list, orphans: list[int]) -> None:
        ati, ents, cls = self._ati, self.ents, self._cls
        for c, d in fronts(e):
            j = ati.get(c)
            if j is None:
                if 0 <= c[0] < self._H and 0 <= c[1] < self._W:
                    dangling.append((i, c, d, k != _C_BELT))
                continue
            kj = cls[j]
            if kj == _C_BELT:
                ok = ents[j].direction != (d + 2) % 4
            elif kj in (_C_SPLIT, _C_UG_IN):
                ok = ents[j].direction == d
            else:
                ok = kj == _C_SINK
            if ok:
                link(i, j)
        if k == _C_UG_IN:
            o = self._partner(i)
            if o is None:
                orphans.append(i)
            else:
                link(i, o)
        elif k == _C_UG_OUT and self._input_of(i) is None:
            orphans.append(i)

    def _inserter_links(self, i: int, e: Entity, link, dangling: list) -> None:
        ati, cls = self._ati, self._cls
        p, q = inserter_cells(e)
        pj, qj = ati.get(p), ati.get(q)
        if pj is not None and cls[pj] not in (_C_INS, _C_SINK):
            link(pj, i)
        if qj is not None and cls[qj] not in (_C_INS, _C_SOURCE):
            link(i, qj)
        elif qj is None and 0 <= q[0] < self._H and 0 <= q[1] < self._W:
            dangling.append((i, q, -1, False))

    def _ug_scan(self, i: int, d: int, want: int) -> int | None:
        """The first underground of class ``want`` with entity i's name and direction within its
        reach going ``d`` (None when there is none or the grid ends first)."""
        e = self.ents[i]
        dy, dx = OFF[d]
        y, x = e.y, e.x
        for _ in range(_ug_reach(e.name)):
            y += dy
            x += dx
            if not (0 <= y < self._H and 0 <= x < self._W):
                return None
            j = self._ati.get((y, x))
            if j is not None and self._cls[j] == want:
                o = self.ents[j]
                if o.name == e.name and o.direction == e.direction:
                    return j
        return None

    def _partner(self, i: int) -> int | None:
        """The output underground i pairs with (``ug_partner``, on the cell map)."""
        return self._ug_scan(i, self.ents[i].direction, _C_UG_OUT)

    def _input_of(self, j: int) -> int | None:
        """The input underground that pairs with output j (``ug_input_of``, on the cell map)."""
        i = self._ug_scan(j, (self.ents[j].direction + 2) % 4, _C_UG_IN)
        return i if i is not None and self._partner(i) == j else None

    # ------------------------------------------------------------------ entity-keyed views
    @cached_property
    def out(self) -> dict[Entity, list[Entity]]:
        ents = self.ents
        return {e: [ents[j] for j in js] for e, js in zip(ents, self._out, strict=True)}

    @cached_property
    def inp(self) -> dict[Entity, list[Entity]]:
        ents = self.ents
        return {e: [ents[j] for j in js] for e, js in zip(ents, self._inp, strict=True)}

    @cached_property
    def items(self) -> dict[Entity, set[str]]:
        return {e: _names(m) for e, m in zip(self.ents, self._items, strict=True)}

    @cached_property
    def demand(self) -> dict[Entity, set[str]]:
        return {e: _names(m) for e, m in zip(self.ents, self._demand, strict=True)}

    @cached_property
    def _index(self) -> dict[Entity, int]:
        return {e: i for i, e in enumerate(self.ents)}

    # ------------------------------------------------------------------ the analysis
    @staticmethod
    def _accepts_belt(t: Entity, d: int) -> bool:
        if t.name in BELT_NAMES:
            return t.direction != (d + 2) % 4
        if t.name in SPLITTER_NAMES or (t.name in UGS and t.io == IO_INPUT):
            return t.direction == d
        return t.name == SINK

    def needs(self, m: Entity) -> set[str]:
        """Items a machine or sink takes in."""
        if m.name == SINK:
            return {m.item}
        if m.name in gd.ASSEMBLERS:
            return set(ingredients_of(m.recipe)) if m.recipe else set()
        if m.name in gd.FURNACES:
            return set(self._furnace_needs)
        return set()

    def accepts(self, t: Entity | None) -> set[str] | None:
        """Items an inserter may drop into ``t`` (None: anything)."""
        if t is None or t.name in BELTLIKE or t.name in gd.CHESTS:
            return None
        if t.name in gd.FURNACES:
            return set(_smeltable()) if not self.furnace_ore else {self.furnace_ore}
        return self.needs(t)

    def _forward_i(self) -> list[int]:
        """Items reaching each entity (bit masks, :func:`_bit`): the least fixpoint of the
        transfer rules (sources give their item; an assembler its product, a furnace the plates of
        what it gets; an inserter what it picks up that its target accepts; anything else what it
        gets), by a worklist."""
        ents, cls, inp, out = self.ents, self._cls, self._inp, self._out
        n = len(ents)
        ore = _bit(self.furnace_ore) if self.furnace_ore else 0
        items = [0] * n
        acc: list[int] = [-1] * n  # -1: takes anything
        queued = [True] * n
        for i, e in enumerate(ents):
            if cls[i] == _C_SOURCE:
                items[i] = _bit(e.item)
                queued[i] = False
            elif cls[i] == _C_INS and out[i]:
                a = self.accepts(ents[out[i][0]])
                if a is not None:
                    acc[i] = _mask(a)
        todo = deque(i for i in range(n) if queued[i])
        while todo:
            i = todo.popleft()
            queued[i] = False
            k = cls[i]
            if k == _C_ASM:
                r = ents[i].recipe
                new = _bit(product_of(r)) if r else 0
            else:
                new = 0
                for s in inp[i]:
                    new |= items[s]
                if k == _C_FURN:
                    new = _smelted(new | ore)
                elif k == _C_INS:
                    new &= acc[i]
            if new != items[i]:
                items[i] = new
                for j in out[i]:
                    if not queued[j] and cls[j] != _C_SOURCE:
                        queued[j] = True
                        todo.append(j)
        return items

    def _backward_i(self) -> list[int]:
        """Items each entity's outputs lead to a consumer of (bit masks; least fixpoint, by a
        worklist)."""
        ents, cls, inp, out = self.ents, self._cls, self._inp, self._out
        n = len(ents)
        dem = [0] * n
        queued = [False] * n
        for i, e in enumerate(ents):
            k = cls[i]
            if k in (_C_SINK, _C_ASM, _C_FURN):
                dem[i] = _mask(self.needs(e))
            elif k != _C_SOURCE:
                queued[i] = True
        todo = deque(i for i in range(n) if queued[i])
        while todo:
            i = todo.popleft()
            queued[i] = False
            new = 0
            for t in out[i]:
                new |= dem[t]
            if new != dem[i]:
                dem[i] = new
                for j in inp[i]:
                    if not queued[j] and cls[j] not in (_C_SINK, _C_ASM, _C_FURN, _C_SOURCE):
                        queued[j] = True
                        todo.append(j)
        return dem

    # ------------------------------------------------------------------ what is missing
    def _got(self, i: int) -> int:
        items = self._items
        got = 0
        for s in self._inp[i]:
            got |= items[s]
        return got

    def _unmet_i(self) -> list[tuple[int, str]]:
        res = []
        for i, e in enumerate(self.ents):
            k = self._cls[i]
            if k == _C_SINK:
                if not self._got(i) & _bit(e.item):
                    res.append((i, e.item))
            elif k in (_C_ASM, _C_FURN):
                have = self._got(i)
                if k == _C_FURN and have:
                    continue
                for x in sorted(self.needs(e) - _names(have)):
                    res.append((i, x))
        return res

    def unmet(self) -> list[tuple[Entity, str]]:
        """(consumer, item) pairs: sinks that get nothing of their item, machines lacking an
        ingredient."""
        ents = self.ents
        return [(ents[i], x) for i, x in self._unmet_i()]

    def _heads_i(self, i0: int) -> list[int]:
        inp, cls, items = self._inp, self._cls, self._items
        out, seen, todo = [], {i0}, deque([i0])
        while todo:
            a = todo.popleft()
            if cls[a] in (_C_BELT, _C_UG_IN, _C_UG_OUT, _C_SPLIT) and not inp[a]:
                out.append(a)
            for b in inp[a]:
                if cls[b] in (_C_BELT, _C_UG_IN, _C_UG_OUT, _C_SPLIT) and b not in seen and not items[b]:
                    seen.add(b)
                    todo.append(b)
        return out

    def heads(self, e: Entity) -> list[Entity]:
        """First entities of the (item-less) belt lines that end in ``e``."""
        return [self.ents[i] for i in self._heads_i(self._index[e])]

    def input_inserters(self, m: Entity) -> list[Entity]:
        return [i for i in self.inp[m] if i.name in INSERTER_NAMES]

    def output_inserters(self, m: Entity) -> list[Entity]:
        return [i for i in self.out[m] if i.name in INSERTER_NAMES]

    def _goal_for_i(self, ci: int) -> Goal:
        goal = Goal()
        ents, cls, items = self.ents, self._cls, self._items
        consumer = ents[ci]
        if cls[ci] == _C_SINK:
            goal.enter[(consumer.y, consumer.x)] = enter_pred(consumer)
            for hd in self._heads_i(ci):
                self._add_head(goal, ents[hd])
            return goal
        H, W = self.world.shape
        for ins in self._inp[ci]:
            if cls[ins] != _C_INS or items[ins]:
                continue
            p, _ = inserter_cells(ents[ins])
            pe = self._ati.get(p)
            if pe is None:
                if 0 <= p[0] < H and 0 <= p[1] < W:
                    goal.end.add(p)
            elif cls[pe] in (_C_BELT, _C_UG_IN, _C_UG_OUT, _C_SPLIT) and not items[pe]:
                for hd in self._heads_i(pe):
                    self._add_head(goal, ents[hd])
        return goal

    def goal_for(self, consumer: Entity, item: str) -> Goal:
        return self._goal_for_i(self._index[consumer])

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
        part = self.world.grid[PART]
        items = self._items
        b = _bit(item)
        for i, c, d, flag in self._dangling:
            if items[i] & b and part[c] == 0:
                ends.append((c[0], c[1], d, flag))
        srcs = []
        for e, k in zip(self.ents, self._cls, strict=True):
            if k == _C_SOURCE and e.item == item:
                srcs += source_starts(self.world, (e.y, e.x))
        return ends, srcs


def fill(world: World, tier: int, *, rng: np.random.Generator | None = None, underground: bool = True,
         furnace_ore: str | None = None, max_rounds: int = 40) -> list[tuple[Entity, str]]:
    """Route belt lines in ``world`` (in place) until every sink gets its item and every machine
    its ingredients, joining line ends to line heads, sources to sinks and inserter pickups,
    inserter drops to sinks. Returns the consumers it could not feed."""
    failed: set[tuple[Entity, str]] = set()
    flow = None  # the analysis of the world as it is now (None: the world changed since)
    for _ in range(max_rounds):
        flow = Flow(world, furnace_ore)
        unmet = flow._unmet_i()
        ents = flow.ents
        todo = [(i, x) for i, x in unmet if (ents[i], x) not in failed]
        if not todo:
            break
        if rng is not None:
            todo = [todo[i] for i in rng.permutation(len(todo))]
        progressed = False
        ctx = None  # the router's view of the world, built once per round (the world is unchanged)
        for ci, item in todo:
            goal = flow._goal_for_i(ci)
            ends, srcs = flow.supplies(item)
            path = None
            for starts in (ends, srcs):
                if starts and goal:
                    ctx = ctx or RouteCtx(world)
                    path = route(world, starts, goal, tier, underground=underground, rng=rng, ctx=ctx)
                    if path is not None:
                        break
            if path is None or not path:  # no route / already joined (a source right behind a line head)
                failed.add((ents[ci], item))
                continue
            for e in path:
                world.place(e)
            flow = None
            progressed = True
            break
        if not progressed:
            break
    if flow is None:
        flow = Flow(world, furnace_ore)
    return flow.unmet()
