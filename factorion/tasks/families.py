"""The constructions of the task families (:data:`~factorion.tasks.FAMILIES`): fixed parts first,
random obstacles, then belt lines routed by :func:`~factorion.tasks.fill`; :func:`solved_factory`
draws a complete working factory of a family."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import (
    K_OBSTACLE,
    KIND,
    OBSTACLE,
    PART,
    SINK,
    SOURCE,
    Entity,
    World,
    obstacle_size,
)
from factorion.tasks.base import (
    ALL_FAMILIES,
    BELT_ITEMS,
    DIRECT_P,
    MAX_SIZE,
    MIN_SIZE,
    OBSTACLE_NAMES,
    OFF,
    ONE_INGREDIENT,
    ORES,
    SCALE_FAMILIES,
    TREES,
    TWO_INGREDIENTS,
    UGS,
    Draws,
    cells_of,
    in_bounds,
    ingredients_of,
    pick,
    product_of,
    smelt,
    step,
)
from factorion.tasks.flow import Flow, fill
from factorion.tasks.routing import Goal, place_all, route, source_starts


def free_cells(world: World, avoid: set) -> list[tuple[int, int]]:
    ys, xs = np.nonzero(world.grid[PART] == 0)
    cells = zip(ys.tolist(), xs.tolist(), strict=True)
    return [c for c in cells if c not in avoid] if avoid else list(cells)


def scatter_obstacles(world: World, rng: np.random.Generator, density: float,
                      avoid: set = frozenset()) -> None:
    """Random 1x1 obstacles on ``density`` of the free cells not in ``avoid``."""
    free = free_cells(world, set(avoid))
    n = int(round(density * len(free)))
    if n <= 0:
        return
    cells = [free[i] for i in rng.choice(len(free), size=n, replace=False).tolist()]
    draws = Draws(rng, n)  # rng.choice(OBSTACLE_NAMES) per obstacle, drawn at once
    names = [OBSTACLE_NAMES[draws.integers(0, len(OBSTACLE_NAMES))] for _ in cells]
    draws.close()
    if all(obstacle_size(name, 0) == (1, 1) for name in set(names)):
        # what world.place does for 1x1 obstacles on free cells, at once
        ys, xs = [y for y, _ in cells], [x for _, x in cells]
        world.grid[:, ys, xs] = 0
        world.grid[KIND, ys, xs] = K_OBSTACLE
        world.grid[PART, ys, xs] = 1
        world.obstacles.extend({"name": name, "position": {"x": x + 1 / 2, "y": y + 1 / 2}}
                               for (y, x), name in zip(cells, names, strict=True))
        return
    for (y, x), name in zip(cells, names, strict=True):
        world.place(Entity(OBSTACLE, y, x, obstacle_name=name))


def _random_free(world: World, rng, avoid: set, need_free_neighbour: bool = True) -> tuple[int, int] | None:
    free = free_cells(world, avoid)
    rng.shuffle(free)
    for c in free:
        around = (step(c, d) for d in range(4))
        if not need_free_neighbour or any(in_bounds(world, n) and world.grid[PART][n] == 0 and n not in avoid
                                          for n in around):
            return c
    return None


def _neighbours(world: World, c) -> set:
    return {step(c, d) for d in range(4)} | {c}


def _build_belt(size: int, rng, throttle: bool) -> World | None:
    w = World(size, size)
    tier = int(rng.integers(1 if throttle else 0, 4))
    item = pick(rng, BELT_ITEMS)
    src = _random_free(w, rng, set())
    w.place(Entity(SOURCE, *src, item=item))
    far = [c for c in free_cells(w, _neighbours(w, src))
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
    if not any(e.name in UGS for e in w.entities(obstacles=False)):
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
                cands.append((y, x, d))
        order = [cands[i] for i in rng.permutation(len(cands))]
    else:  # tries x (direction, row, column), as scalar rng.integers calls would draw them
        order = []
        draws = Draws(rng, tries * (1 + (H >= 3) + (W >= 3)))
        for _ in range(tries):
            d = draws.integers(4)
            w, h = gd.footprint(name, d)
            order.append((draws.integers(0, H - h + 1), draws.integers(0, W - w + 1), d))
        draws.close()
    part = world.grid[PART].tolist()
    for y, x, d in order:
        w, h = gd.footprint(name, d)
        cs = [(y + i, x + j) for i in range(h) for j in range(w)]
        dy, dx = OFF[d]
        around = ([(cy + dy, cx + dx) for cy, cx in cs] + [(cy + 2 * dy, cx + 2 * dx) for cy, cx in cs]
                  + [(cy - dy, cx - dx) for cy, cx in cs])
        if not all(0 <= cy < H and 0 <= cx < W for cy, cx in cs + around):
            continue
        if any(part[cy][cx] or (cy, cx) in avoid for cy, cx in cs):
            continue
        if any(part[c[0]][c[1]] for c in around if c != near):
            continue
        e = Entity(name, y, x, d)
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
    item = pick(rng, BELT_ITEMS)
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
        ore = pick(rng, ORES)
        return [Stage(None, smelt(ore), (ore,), True)], ore
    if family == "assembler1":
        r = pick(rng, ONE_INGREDIENT)
        return [Stage(r, product_of(r), ingredients_of(r), True)], None
    if family == "assembler2":
        r = pick(rng, TWO_INGREDIENTS)
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
    return pick(rng, ("inserter", "fast-inserter", "fast-inserter", "bulk-inserter"))


def _build_recipe(family: str, size: int, rng, throttle: bool) -> World | None:
    stages, ore = recipe_stages(family, rng)
    w = World(size, size)
    tier = int(rng.integers(0, 4))
    furnace = pick(rng, ("stone-furnace", "steel-furnace"))
    asm = pick(rng, gd.ASSEMBLERS)
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
                if (in_bounds(w, c) and in_bounds(w, outside) and w.grid[PART][c] == 0
                        and w.grid[PART][outside] == 0
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
            "assembling-machine-2", "assembling-machine-3", "steel-furnace")
            for e in w.entities(obstacles=False)):
        return None
    return w


_BUILDERS = {"belt": _build_belt, "underground": _build_underground, "splitter": _build_splitter}


def check_factory(family: str, size: int) -> None:
    if family not in ALL_FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {ALL_FAMILIES}")
    if not (MIN_SIZE[family] <= size <= MAX_SIZE):
        raise ValueError(f"family {family!r} needs a size in {MIN_SIZE[family]}..{MAX_SIZE}, got {size}")


def solved_factory(family: str, size: int, rng: np.random.Generator | int | None = None, *,
                   throttle: bool = False) -> World:
    """A complete working factory of ``family`` on a ``size`` x ``size`` grid, built by the
    family's construction (retried with fresh draws from ``rng`` until it routes).
    ``throttle``: only draw factories level 2 can slow down (belts above yellow, a fast inserter
    or a machine above the first tier)."""
    check_factory(family, size)
    if family in SCALE_FAMILIES:
        raise ValueError(f"the {family!r} family is built by factorion.tasks.scale.scale_factory")
    rng = np.random.default_rng(rng)
    build = _BUILDERS.get(family)
    for _ in range(500):
        w = build(size, rng, throttle) if build else _build_recipe(family, size, rng, throttle)
        if w is not None:
            return w
    raise RuntimeError(f"could not build a {family} factory of size {size}")
