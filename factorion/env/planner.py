"""A scripted planner: the baseline the agent is measured against, and the expert that gives
behaviour-cloning demonstrations (:func:`actions_to_build`).

:func:`plan` completes a task's start world without looking at its solution:

1. **Keep what is there.** The start world itself is the first candidate; a copy with the
   throttled parts upgraded (belts, undergrounds and splitters to the best belt tier present,
   inserters to the fastest present, machines to the best of their kind present) the second.
2. **Skeleton** (recipe families). Machines the recipe tree needs and the world lacks are placed
   where they cover orphaned inserters, can take straight from a source or give straight to the
   sink, and lie close to them; every machine then gets the inserters it lacks (an ingredient
   nobody brings in, a product nobody takes out; a direct machine-to-machine inserter when the
   two machines are one cell apart).
3. **Routing** (:func:`factorion.tasks.fill`). Consumers that get nothing (sinks, machine
   ingredients) are fed by A* belt lines with undergrounds: from the end of a broken line, an
   inserter's drop cell or a source, to the head of a broken line, the sink or an inserter's
   pickup cell. Splitter tasks also try routes through a splitter placed near the source(s).

Step 2 and 3 run on the start world as it is ("fill": fill in the gaps), on the start world
without its belts ("strip") and on its sources, sinks and obstacles alone ("scratch"), with a few
alternative machine spots and random route costs, as long as ``budget_s`` lasts. The candidate
with the highest simulated throughput wins (ties: fewer entities).

New entities use the start world's palette (``palette="match"``, the default): the highest belt
tier, fastest inserter and best machines present in it; kinds the start world lacks use the top
ones (turbo belts, fast inserters, assembling-machine-3, steel furnace), so on level 5 the plan
may beat the reference, and so may a better layout on any level (two belts out of a source, a
sink fed from two sides). A level-2 machine downgraded when it was the only one of its kind is
not undone under "match"; ``palette="top"`` always builds and upgrades with the top parts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from factorion import tasks as T
from factorion.core import gamedata as gd
from factorion.core.world import PART, SINK, SOURCE, Entity, World, WorldError

BELT_NAMES, UGS, SPLITTER_NAMES = T.BELT_NAMES, T.UGS, T.SPLITTER_NAMES
BELTLIKE, INSERTER_NAMES, MACHINES = T.BELTLIKE, T.INSERTER_NAMES, T.MACHINES
_ONE_REACH = ("burner-inserter", "inserter", "fast-inserter", "bulk-inserter")
_FURNACES_2x2 = ("stone-furnace", "steel-furnace")


# ============================================================================ palette


@dataclass(frozen=True)
class Palette:
    tier: int
    inserter: str
    assembler: str
    furnace: str


TOP = Palette(3, "fast-inserter", "assembling-machine-3", "steel-furnace")


def palette_of(world: World, tier: int | None = None) -> Palette:
    """The best of each kind in ``world`` (the :data:`TOP` ones for kinds it lacks)."""
    names = {e.name for e in world.entities()}
    tiers = [gd.tier(n) for n in names if n in BELTLIKE]
    ins = [n for n in _ONE_REACH if n in names]
    asm = [n for n in gd.ASSEMBLERS if n in names]
    fur = [n for n in _FURNACES_2x2 if n in names]
    return Palette(tier if tier is not None else (max(tiers) if tiers else 3),
                   max(ins, key=gd.inserter_rate) if ins else "fast-inserter",
                   asm[-1] if asm else "assembling-machine-3",
                   fur[-1] if fur else "steel-furnace")


def upgrade(world: World, pal: Palette) -> World:
    """A copy with every belt-like below the palette's tier, inserter slower than its inserter
    and machine below its machine of the same kind raised to it."""
    w = world.copy()
    for e in world.entities():
        new = None
        if e.name in BELTLIKE and gd.tier(e.name) < pal.tier:
            group = gd.BELTS if e.name in BELT_NAMES else gd.UNDERGROUNDS if e.name in UGS else gd.SPLITTERS
            new = group[pal.tier]
        elif e.name in _ONE_REACH and gd.inserter_rate(e.name) < gd.inserter_rate(pal.inserter):
            new = pal.inserter
        elif e.name in gd.ASSEMBLERS and gd.crafting_speed(e.name) < gd.crafting_speed(pal.assembler):
            new = pal.assembler
        elif e.name in _FURNACES_2x2 and gd.crafting_speed(e.name) < gd.crafting_speed(pal.furnace):
            new = pal.furnace
        if new:
            T.replace(w, e, new)
    return w


# ============================================================================ skeleton


def task_stages(task) -> tuple[list[T.Stage], str | None]:
    """(stages, furnace ore) of a recipe task, from its family, recipes and items."""
    fam = task.family
    if fam == "smelting":
        ores = [i for i in task.items if T.smelt(i) and T.smelt(i) in task.items]
        ore = ores[0] if ores else next(i for i in task.items if T.smelt(i))
        return [T.Stage(None, T.smelt(ore), (ore,), True)], ore
    if fam in ("assembler1", "assembler2"):
        r = task.recipes[0]
        return [T.Stage(r, T.product_of(r), T.ingredients_of(r), True)], None
    if fam == "tree2":
        a, b = task.recipes[:2]
        pa = T.product_of(a)
        if pa not in T.ingredients_of(b):
            a, b = b, a
            pa = T.product_of(a)
        return [T.Stage(a, pa, T.ingredients_of(a), False),
                T.Stage(b, T.product_of(b), tuple(i for i in T.ingredients_of(b) if i != pa), True)], None
    return [], None


def _dist(a, b) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def _centre(m: Entity) -> tuple[float, float]:
    w, h = m.size
    return m.y + (h - 1) / 2, m.x + (w - 1) / 2


def _fits(world: World, e: Entity, ctx: T.RouteCtx) -> bool:
    if world.can_place(e):
        return False
    return not any(ctx.blocked[c] for c in T.cells_of(e))


def _machine_spots(world: World, name: str, recipe: str | None, partners: list[tuple[int, int]],
                   direct: list[tuple[int, int]], ctx: T.RouteCtx) -> list[tuple[float, Entity]]:
    """Anchors for a machine, best first: covering orphaned inserters' drop / pickup cells,
    a partner (source / sink) right behind a side cell, close to the partners."""
    H, W = world.shape
    n = gd.footprint(name)[0]
    orphan_cells = set()
    for e in world.entities():
        if e.name in INSERTER_NAMES:
            p, q = T.inserter_cells(e)
            for c in (p, q):
                if T.in_bounds(world, c) and world.grid[PART][c] == 0:
                    orphan_cells.add(c)
    out = []
    for y in range(H - n + 1):
        for x in range(W - n + 1):
            m = Entity(name, y, x, recipe=recipe)
            if not _fits(world, m, ctx):
                continue
            cells = set(T.cells_of(m))
            score = -10.0 * len(cells & orphan_cells)
            for c, s in T.side_cells(m):
                if T.in_bounds(world, c) and world.grid[PART][c] == 0 and T.step(c, s) in direct:
                    score -= 4.0
            cy, cx = _centre(m)
            score += sum(abs(cy - p[0]) + abs(cx - p[1]) for p in partners) * 0.5
            out.append((score, m))
    out.sort(key=lambda t: (t[0], t[1].y, t[1].x))
    return out


class _Skeleton:
    """Places the machines and inserters a recipe task needs into a world (in place)."""

    def __init__(self, world: World, task, pal: Palette, variant: int):
        self.w, self.task, self.pal, self.variant = world, task, pal, variant
        self.stages, self.ore = task_stages(task)

    def positions(self, item: str, kind: str) -> list[tuple[int, int]]:
        return [(e.y, e.x) for e in self.w.entities() if e.name == kind and e.item == item]

    def machine_for(self, st: T.Stage) -> Entity | None:
        for e in self.w.entities():
            if st.recipe is None and e.name in gd.FURNACES:
                return e
            if st.recipe is not None and e.name in gd.ASSEMBLERS and e.recipe == st.recipe:
                return e
        return None

    def run(self) -> bool:
        if not self.stages:
            return True
        ms = [self.machine_for(st) for st in self.stages]
        if not all(ms):
            if not self.place_machines(ms):
                return False
            ms = [self.machine_for(st) for st in self.stages]
        # the last machine first: its link inserter decides whether the first needs an output
        for m, st in reversed(list(zip(ms, self.stages, strict=True))):
            if not self.inserters(m, st, ms):
                return False
        return True

    def place_machines(self, ms: list[Entity | None]) -> bool:
        w, ctx = self.w, T.RouteCtx(self.w)
        names = [self.pal.furnace if st.recipe is None else self.pal.assembler for st in self.stages]
        final = len(self.stages) - 1
        if len(self.stages) == 2 and ms[0] is None and ms[1] is None:
            a, b = self.stages
            srcs_a = [p for i in a.from_sources for p in self.positions(i, SOURCE)]
            srcs_b = [p for i in b.from_sources for p in self.positions(i, SOURCE)]
            snk = self.positions(b.product, SINK)
            spots_b = _machine_spots(w, names[1], b.recipe, srcs_b + snk, srcs_b + snk, ctx)[:12]
            combos = []
            for sb, mb in spots_b:
                for side in range(4):
                    for shift in range(-2, 3):
                        dy, dx = T.OFF[side]
                        ma = Entity(names[0], mb.y + dy * 4 + (shift if dx else 0),
                                    mb.x + dx * 4 + (shift if dy else 0), recipe=a.recipe)
                        if not _fits(w, ma, ctx) or set(T.cells_of(ma)) & set(T.cells_of(mb)):
                            continue
                        cy, cx = _centre(ma)
                        sa = sum(abs(cy - p[0]) + abs(cx - p[1]) for p in srcs_a) * 0.5
                        combos.append((sb + sa, ma, mb))
            if not combos:
                return False
            combos.sort(key=lambda t: (t[0], t[1].y, t[1].x, t[2].y, t[2].x))
            _, ma, mb = combos[min(self.variant, len(combos) - 1)]
            w.place(mb)
            w.place(ma)
            return True
        for i, st in enumerate(self.stages):
            if ms[i] is not None:
                continue
            partners = [p for it in st.from_sources for p in self.positions(it, SOURCE)]
            if i == final:
                partners += self.positions(st.product, SINK)
            direct = list(partners)
            for j, other in enumerate(ms):  # the other machine of a tree: one cell apart is best
                if other is not None and j != i:
                    partners += [tuple(int(v) for v in _centre(other))] * 2
            spots = _machine_spots(w, names[i], st.recipe, partners, direct, T.RouteCtx(w))
            if len(self.stages) == 2 and any(ms):
                other = next(m for m in ms if m is not None)
                linked = [(s - 6.0, m) for s, m in spots
                          if self._link_cell(m, other) or self._link_cell(other, m)]
                spots = sorted(linked + spots, key=lambda t: (t[0], t[1].y, t[1].x))
            if not spots:
                return False
            m = spots[min(self.variant, len(spots) - 1)][1]
            w.place(m)
            ms[i] = m
        return True

    def _link_cell(self, src: Entity, dst: Entity):
        """A free side cell of ``dst`` from which an inserter reaches into ``src``."""
        for c, s in T.side_cells(dst):
            if (T.in_bounds(self.w, c) and self.w.grid[PART][c] == 0
                    and self.w.entity_at(*T.step(c, s)) == src):
                return c, s
        return None

    def inserters(self, m: Entity, st: T.Stage, ms: list[Entity]) -> bool:
        w = self.w
        flow = T.Flow(w, self.ore)
        ins_in = flow.input_inserters(m)
        carried = set().union(*(flow.items[i] for i in ins_in)) if ins_in else set()
        free_in = [i for i in ins_in if not flow.items[i] and self._usable_pickup(flow, i)]
        need = [x for x in st.from_sources if x not in carried]
        idx = self.stages.index(st)
        if idx == 1:  # the tree's second machine takes the first one's product
            pa = self.stages[0].product
            if pa not in carried:
                link = self._link_cell(ms[0], m)
                if link is not None:
                    c, s = link
                    w.place(T.inserter_for(self.pal.inserter, c, s, into_machine=True))
                else:
                    need.append(pa)
        for x in need[len(free_in):]:
            if not self.add_inserter(m, x, into=True):
                return False
        wants_out = st.final or (idx == 0 and len(self.stages) == 2 and not any(
            o in T.Flow(w, self.ore).inp[ms[1]] for o in T.Flow(w, self.ore).output_inserters(m)))
        if wants_out and not T.Flow(w, self.ore).output_inserters(m):
            if not self.add_inserter(m, st.product, into=False):
                return False
        return True

    def _usable_pickup(self, flow: T.Flow, ins: Entity) -> bool:
        p, _ = T.inserter_cells(ins)
        pe = flow.at.get(p)
        return (pe is None and T.in_bounds(self.w, p)) or (pe is not None and pe.name in BELTLIKE)

    def add_inserter(self, m: Entity, item: str, into: bool) -> bool:
        w = self.w
        flow = T.Flow(w, self.ore)
        targets = []
        for e in flow.ents:
            if into and (e.name == SOURCE and e.item == item
                         or (e.name in BELTLIKE and item in flow.items[e])):
                targets.append((e.y, e.x))
            if not into and (e.name == SINK and e.item == item or (
                    e.name in BELTLIKE and item in flow.demand[e] and not flow.items[e])):
                targets.append((e.y, e.x))
        best = []
        for c, s in T.side_cells(m):
            if not T.in_bounds(w, c) or w.grid[PART][c] != 0:
                continue
            o = T.step(c, s)
            if not T.in_bounds(w, o):
                continue
            oe = flow.at.get(o)
            if oe is not None:
                if into and (oe.name == SOURCE and oe.item == item or item in flow.items.get(oe, ())) and \
                        oe.name not in INSERTER_NAMES:
                    score = 0.0
                elif not into and (oe.name == SINK and oe.item == item or (
                        oe.name in BELTLIKE and item in flow.demand[oe] and not flow.items[oe])
                        or (oe.name in MACHINES and item in flow.needs(oe))):
                    score = 0.0
                else:
                    continue
            else:
                if w.grid[PART][o] != 0:
                    continue
                score = 1.0 + (min(_dist(o, t) for t in targets) if targets else 0)
            best.append((score, c, s))
        if not best:
            return False
        best.sort()
        if best[0][0] > 0:  # no direct spot: the shortest real belt line among the closest few
            routed = []
            for score, c, s in best[:6]:
                n = self._line_length(T.inserter_for(self.pal.inserter, c, s, into_machine=into), item, into)
                if n is not None:
                    routed.append((n, score, c, s))
            if routed:
                best = [min(routed)[1:]]
        _, c, s = best[0]
        w.place(T.inserter_for(self.pal.inserter, c, s, into_machine=into))
        return True

    def _line_length(self, ins: Entity, item: str, into: bool) -> int | None:
        """Entities of the belt line a new inserter ``ins`` would need (None: no route)."""
        w2 = self.w.copy()
        w2.place(ins)
        flow = T.Flow(w2, self.ore)
        p, q = T.inserter_cells(ins)
        if into:
            goal, starts_list = T.Goal(end={p}), flow.supplies(item)
            starts_list = [s for s in starts_list if s]
        else:
            goal = T.Goal()
            for consumer, it in flow.unmet():
                if it == item:
                    g = flow.goal_for(consumer, item)
                    goal.enter.update(g.enter)
                    goal.end |= g.end
            starts_list = [[(q[0], q[1], -1, False)]]
        if not goal:
            return None
        for starts in starts_list:
            path = T.route(w2, starts, goal, self.pal.tier)
            if path is not None:
                return len(path)
        return None


# ============================================================================ candidates


def _prune_orphans(world: World) -> None:
    for _ in range(4):
        flow = T.Flow(world)
        if not flow.orphans:
            return
        for e in flow.orphans:
            if world.entity_at(e.y, e.x) == e:
                world.remove(e.y, e.x)


def strip(world: World) -> World:
    w = world.copy()
    for e in world.entities():
        if e.name in BELTLIKE:
            w.remove(e.y, e.x)
    return w


def _complete(world: World, task, pal: Palette, variant: int, rng) -> World | None:
    w = world.copy()
    _prune_orphans(w)
    try:
        if not _Skeleton(w, task, pal, variant).run():
            return None
        _, ore = task_stages(task)
        T.fill(w, pal.tier, rng=rng, underground=True, furnace_ore=ore)
    except WorldError:
        return None
    return w


def _splitter_candidates(world: World, task, pal: Palette, rng, n: int) -> Iterable[World]:
    """Level-5 style splitter layouts: 1 source -> splitter -> sinks, or 2 sources -> splitter."""
    srcs = [(e.y, e.x) for e in world.entities() if e.name == SOURCE]
    if len(srcs) not in (1, 2) or any(e.name in SPLITTER_NAMES for e in world.entities()):
        return
    for k in range(n):
        w = world.copy()
        sp = T.place_splitter(w, rng, pal.tier, near=srcs[0] if k % 2 == 0 else None)
        if sp is None:
            continue
        try:
            if not T.connect_splitter(w, sp, srcs, pal.tier, rng=rng if k else None):
                continue
            T.fill(w, pal.tier, underground=True)
        except WorldError:
            continue
        yield w


def _count(world: World) -> int:
    return sum(1 for e in world.entities() if e.name not in T.FIXED)


def _palette(start: World, palette: str | Palette, tier: int | None) -> Palette:
    if isinstance(palette, Palette):
        pal = palette
    elif palette == "top":
        pal = TOP
    elif palette == "match":
        pal = palette_of(start)
    else:
        raise ValueError(f"palette must be 'match', 'top' or a Palette, got {palette!r}")
    return pal if tier is None else Palette(tier, pal.inserter, pal.assembler, pal.furnace)


def candidates(task, pal: Palette, budget_s: float = 2.0) -> Iterable[World]:
    """The worlds :func:`plan` weighs for ``task`` (see the module docstring), in the order it makes
    them, each once: the start, its upgrade, then fill / strip / scratch completions (and splitter
    layouts) with their upgrades while ``budget_s`` lasts."""
    t0 = time.perf_counter()
    start = task.world
    seen: set = set()

    def new(w: World | None) -> bool:
        if w is None or w.grid.tobytes() in seen:
            return False
        seen.add(w.grid.tobytes())
        return True

    def left() -> bool:
        return time.perf_counter() - t0 < budget_s

    if new(start):
        yield start
    has_parts = _count(start) > 0
    if has_parts and new(up := upgrade(start, pal)):
        yield up
    bases = []
    if has_parts:
        bases.append(start)
        if any(e.name in BELTLIKE for e in start.entities()):
            bases.append(strip(start))
    bases.append(T.fixed_only(start))
    rng = np.random.default_rng(0)
    for rnd in range(3):
        for base in bases:
            if not left():
                break
            w = _complete(base, task, pal, rnd, None if rnd == 0 else rng)
            if w is not None:
                yield from (c for c in (w, upgrade(w, pal)) if new(c))
        if task.family == "splitter" and left():
            for w in _splitter_candidates(T.fixed_only(start), task, pal, rng, 2):
                if new(w):
                    yield w
                if not left():
                    break


def plan(task, budget_s: float = 2.0, tier: int | None = None, palette: str | Palette = "match") -> World:
    """A complete factory for ``task`` (see the module docstring); never reads the solution.

    ``palette``: "match" (default) builds and upgrades with the best of each kind the start
    world has (top ones for kinds it lacks); "top" always with :data:`TOP` (turbo belts, fast
    inserters, assembling-machine-3, steel furnace); or a :class:`Palette`. ``tier`` overrides
    the belt tier."""
    from factorion.sim import throughput

    pal = _palette(task.world, palette, tier)
    best: list = [None, None]  # (throughput, -entities), world
    for w in candidates(task, pal, budget_s):
        key = (float(throughput(w)), -_count(w))
        if best[0] is None or key > best[0]:
            best[0], best[1] = key, w
    return best[1]


# ============================================================================ demonstrations


def _flow_order(target: World, ents: list[Entity]) -> list[Entity]:
    """``ents`` in build order: machines, inserters, then belt-likes along the item flow from
    sources and inserters (what is not reached last, row-major)."""
    want = set(ents)
    flow = T.Flow(target)
    order = [e for e in target.entities() if e in want and e.name in MACHINES]
    order += [e for e in target.entities() if e in want and e.name in INSERTER_NAMES]
    seen = set(order)
    frontier = [e for e in flow.ents if e.name in (SOURCE, *INSERTER_NAMES)]
    while frontier:
        nxt = []
        for e in frontier:
            for t in flow.out.get(e, ()):
                if t in want and t not in seen:
                    seen.add(t)
                    order.append(t)
                    nxt.append(t)
                elif t not in seen and t.name in BELTLIKE:
                    seen.add(t)
                    nxt.append(t)
        frontier = nxt
    order += [e for e in ents if e not in seen]
    return order


def actions_to_build(start: World, target: World) -> list[tuple]:
    """Edits that turn ``start`` into ``target``: ``("remove", y, x)`` for every entity of
    ``start`` that ``target`` lacks (or has otherwise), then ``("place", Entity)`` for every
    entity of ``target`` that ``start`` lacks, machines first, then inserters, then belts in
    flow order. Sources, sinks and obstacles must agree (ValueError otherwise)."""
    if start.shape != target.shape:
        raise ValueError(f"worlds differ in size: {start.shape} vs {target.shape}")
    a = {e for e in start.entities()}
    b = {e for e in target.entities()}
    fixed_a = {e for e in a if e.name in T.FIXED}
    fixed_b = {e for e in b if e.name in T.FIXED}
    if fixed_a != fixed_b or start.rates != target.rates:
        raise ValueError("start and target differ in sources, sinks or obstacles")
    gone = sorted(a - b, key=lambda e: (e.y, e.x))
    added = b - a
    new = [e for e in target.entities() if e in added]
    acts: list[tuple] = [("remove", e.y, e.x) for e in gone]
    acts += [("place", e) for e in _flow_order(target, new)]
    return acts


def apply_actions(world: World, actions: Iterable[tuple]) -> World:
    """A copy of ``world`` with ``actions`` (as from :func:`actions_to_build`) applied."""
    w = world.copy()
    for a in actions:
        if a[0] == "remove":
            w.remove(a[1], a[2])
        elif a[0] == "place":
            w.place(a[1])
        else:
            raise ValueError(f"unknown action {a!r}")
    return w


# ============================================================================ the demonstrator
#: The demonstrator's planner budget: far above what ``plan`` needs to finish every round (0.05-0.5 s on
#: 11x11 and 16x16 tasks), so it is not cut by the clock and its answer is a function of the task.
EXPERT_BUDGET_S = 60.0
EXPERT_SUCCESS = 0.99  # a plan counts when it reaches this share of the task's reference


def expert_target(task, budget_s: float = EXPERT_BUDGET_S) -> tuple[World, str]:
    """The factory the demonstrations (``make demos``) and the DAgger expert build towards for
    ``task``, and who made it: of the planner's plan (when it reaches ``EXPERT_SUCCESS`` x the
    reference) and the task's reference solution, the one :func:`actions_to_build` reaches from
    ``task.world`` in fewer edits (ties: the planner)."""
    from factorion.sim import throughput

    options = []  # (edits, rank, target, author)
    try:
        planned = plan(task, budget_s=budget_s)
        if planned is not None and float(throughput(planned)) >= EXPERT_SUCCESS * float(task.reference):
            n = len(actions_to_build(task.world, planned))
            options.append((n, 0, planned, "factorion.env.planner.plan"))
    except (ValueError, RuntimeError, WorldError):
        pass
    if task.solution is not None:
        try:
            n = len(actions_to_build(task.world, task.solution))
            options.append((n, 1, task.solution, "factorion.tasks.solved_factory (fewer edits)"))
        except ValueError:
            pass
    if not options:
        raise ValueError("expert_target: neither the planner nor the task's solution reaches the task")
    _, _, target, author = min(options, key=lambda o: o[:2])
    return target, author


def replan_target(task, state: World, budget_s: float = EXPERT_BUDGET_S) -> World | None:
    """The planner's completion of ``state`` (a state of ``task``: its sources, sinks and obstacles)
    that reaches ``EXPERT_SUCCESS`` x the reference in the fewest edits from ``state`` (ties: the
    first made), planned with the palette of ``task.world``; None when no candidate reaches it.
    Deterministic (fixed random streams, a budget far above what the rounds need), so a function of
    (task, state): the DAgger expert's target once the policy has placed pieces of its own."""
    from dataclasses import replace

    from factorion.sim import throughput

    goal = EXPERT_SUCCESS * float(task.reference)
    best: tuple | None = None
    for w in candidates(replace(task, world=state), palette_of(task.world), budget_s):
        if float(throughput(w)) >= goal:
            n = len(actions_to_build(state, w))
            if best is None or n < best[0]:
                best = (n, w)
    return None if best is None else best[1]


# ============================================================================ evaluation


def evaluate_planner(n_seeds: int = 20, size: int = 11, budget_s: float = 2.0, families=None, levels=None,
                     seed0: int = 10_000, palette: str | Palette = "match") -> dict:
    """Throughput ratio plan / reference per family and level over ``n_seeds`` tasks (seeds
    ``seed0 ..``): ``{family: {level: {"ratio": mean, "min": min, "solved": share with ratio >=
    0.999, "time_s": mean planning seconds}}}``. A ratio above 1 means the plan beats the
    reference (a better layout, or on level 5 better parts)."""
    from factorion.sim import throughput

    out: dict = {}
    for fam in families or T.FAMILIES:
        if size < T.MIN_SIZE[fam]:
            continue
        out[fam] = {}
        for lvl in levels or T.LEVELS:
            ratios, times = [], []
            for i in range(n_seeds):
                task = T.make_task(fam, lvl, size=size, seed=seed0 + i)
                t0 = time.perf_counter()
                w = plan(task, budget_s=budget_s, palette=palette)
                times.append(time.perf_counter() - t0)
                ratios.append(float(throughput(w)) / task.reference)
            out[fam][lvl] = {"ratio": float(np.mean(ratios)), "min": float(np.min(ratios)),
                             "solved": float(np.mean([r >= 0.999 for r in ratios])),
                             "time_s": float(np.mean(times))}
    return out


def format_table(result: dict) -> str:
    """A text table (mean ratio per family and level) of :func:`evaluate_planner`'s result."""
    levels = sorted({lvl for fam in result.values() for lvl in fam})
    lines = ["family       " + "".join(f"  L{lvl}   " for lvl in levels)]
    for fam, row in result.items():
        lines.append(f"{fam:<12} " + "".join(f" {row[lvl]['ratio']:5.2f} " if lvl in row else "   -   "
                                             for lvl in levels))
    return "\n".join(lines)
