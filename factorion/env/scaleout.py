"""Scale-out search: as many parallel production lines as a task's area and supply allow.

For any task whose sinks take the product of a one-step recipe of its source items (an
assembler recipe of at most two ingredients without fluids, or smelting), :func:`scale_out`
tries the blocks of :mod:`factorion.tasks.scale` -- every variant (one side, shared input,
shared output), the 8 orientations (the task is turned and mirrored into the block's frame and
the result turned back), k = 1 .. the most that fits, the positions nearest the sources and
sinks -- joins each to the sources and sinks with :func:`factorion.tasks.flow.fill` and
:func:`factorion.tasks.scale.join_outputs`, scores it in the simulator and keeps the best. Then
it adds further blocks to the best factory while the throughput rises. Where the area holds
obstacles, blocks fitted around them (:mod:`factorion.env.scalefit`: machines that do not fit
left out, belts hopping taken cells with undergrounds) are tried too, for the first block and
for the ones added.

A sink may carry a wanted rate (``world.rates`` at the sink's cell: the text spec's
``sink ROW COL ITEM RATE`` or the blueprint tag ``rate``). With one, candidates are tried
smallest first and the search keeps the factory with the fewest entities that delivers the
wanted rate; when none does, the one with the highest throughput, and :attr:`ScaleOut.note`
says why the rate was not met.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from factorion.core import gamedata as gd
from factorion.core.world import KIND, OBSTACLE, SINK, SOURCE, Entity, World
from factorion.env.scalefit import OBSTACLE_KIND, fit_design, obstacle_positions
from factorion.tasks.base import fixed_only
from factorion.tasks.flow import fill
from factorion.tasks.scale import (
    FURNACE,
    GROUPS,
    Design,
    block_mask,
    entity_count,
    fits_belts,
    input_ends,
    join_outputs,
    layout,
    output_ends,
    per_product,
    place_design,
    stated_rate,
    variants_for,
)

TRANSFORMS = tuple((r, m) for m in (False, True) for r in range(4))
STARTS = 24  # other first blocks grown while the budget lasts
POSITIONS = 8  # positions tried per (orientation, design): those nearest the sources and sinks


@dataclass
class ScaleOut:
    world: World | None = None
    throughput: float = 0.0
    entities: int = 0
    label: str = ""
    wanted: float | None = None
    note: str = ""
    candidates: int = 0
    log: list = field(default_factory=list)  # (seconds, label, throughput) of each new best
    starts: list = field(default_factory=list)  # (throughput, entities, world, label): first blocks that work
    fit: bool = False  # blocks fitted around obstacles are tried too


def count_entities(world: World) -> int:
    return sum(1 for e in world.entities(obstacles=False) if e.name not in (SOURCE, SINK))


def wanted_rate(world: World) -> float | None:
    """The rate the sinks want (the sum of their ``rate`` tags), None when none has one."""
    rates = [world.rates[(e.y, e.x)] for e in world.entities(obstacles=False)
             if e.name == SINK and (e.y, e.x) in world.rates]
    return float(sum(rates)) if rates else None


def infer_recipe(world: World) -> tuple | None:
    """(recipe or None for smelting, ingredients, product) of the one-step recipe that turns the
    sources' items into the sinks' item, else (recipe, ingredients, product, first recipe) of a
    two-step chain (:func:`_two_step`), or None."""
    ents = world.entities(obstacles=False)
    ins = {e.item for e in ents if e.name == SOURCE}
    outs = sorted({e.item for e in ents if e.name == SINK})
    if len(outs) != 1 or outs[0] in ins:
        return None
    product = outs[0]
    for item in sorted(ins):
        r = gd.smelting_recipe_for(item)
        if r and gd.recipe(r).results[0][0] == product:
            return None, (item,), product
    for name in gd.recipe_names():
        r = gd.recipe(name)
        if (r.uses_fluid or not r.results or r.results[0][0] != product or len(r.ingredients) > 2
                or not all(i in ins for i, _ in r.ingredients)
                or not gd.machine_can_make("assembling-machine-1", name)):
            continue
        return name, tuple(i for i, _ in r.ingredients), product
    return _two_step(ins, product)


def _two_step(ins: set[str], product: str) -> tuple[str, tuple[str, ...], str, str] | None:
    """(recipe, (far item, near item), product, first recipe) of a two-step chain that "pairs"
    blocks make: a one-ingredient recipe from a source item hands its product to ``product``'s
    recipe, whose other ingredient is a source item."""
    from factorion.tasks.scale import pair_design
    for name in gd.recipe_names():
        r = gd.recipe(name)
        if (r.uses_fluid or not r.results or r.results[0][0] != product or len(r.ingredients) != 2
                or not gd.machine_can_make("assembling-machine-1", name)):
            continue
        for mid, _ in r.ingredients:
            other = next(i for i, _ in r.ingredients if i != mid)
            if other not in ins or mid in ins:
                continue
            for pre in gd.recipe_names():
                p = gd.recipe(pre)
                if (not p.uses_fluid and p.results and p.results[0][0] == mid and len(p.ingredients) == 1
                        and p.ingredients[0][0] in ins and p.ingredients[0][0] != other
                        and gd.machine_can_make("assembling-machine-1", pre)):
                    d = pair_design(pre, name, "assembling-machine-1", "fast-inserter", 0)
                    return name, d.ingredients, product, pre
    return None


def _spare(world: World) -> dict[tuple[int, int], float]:
    """Per source cell: what it can still supply (its cap, or unlimited, less what ``world`` draws)."""
    from factorion.sim import simulate
    built = any(e.name not in (SOURCE, SINK) for e in world.entities(obstacles=False))
    flow = simulate(world).flow if built else {}
    return {(e.y, e.x): world.rates.get((e.y, e.x), math.inf) - sum(flow.get((e.y, e.x), {}).values())
            for e in world.entities(obstacles=False) if e.name == SOURCE}


def designs(recipe, ingredients, product, height: int, width: int, rate_mode: bool,
            pre: str | None = None) -> list[Design]:
    """Every design worth a try: per machine tier (the top one only unless a rate is wanted),
    variant, ingredient order, blocks stacked and k, on the lowest belt tier that carries it
    (``pre``: "pairs" of machines only)."""
    if pre is not None:
        return _pair_designs(recipe, pre, height, width, rate_mode)
    if recipe is None:
        machines = gd.FURNACES if rate_mode else ("steel-furnace", FURNACE)
    else:
        machines = gd.ASSEMBLERS if rate_mode else gd.ASSEMBLERS[-1:]
    orders = [ingredients] if len(ingredients) == 1 else [ingredients, ingredients[::-1]]
    out = []
    for m in machines:
        for ings in orders:
            for v in variants_for(len(ings)):
                for stack in range(1, height // layout(Design(recipe, ings, product, m, "", 0, 1, v))[0] + 1):
                    for k in range(1, width // gd.footprint(m)[0] + 1):
                        for tier in range(4):
                            d = Design(recipe, ings, product, m, "fast-inserter", tier, k, v, stack=stack)
                            if fits_belts(d):
                                out.append(d)
                                break
    return out


def _pair_designs(recipe: str, pre: str, height: int, width: int, rate_mode: bool) -> list[Design]:
    """Every group (:data:`GROUPS`) whose machines all work, per machine tier, stacking and k."""
    from factorion.tasks.scale import group_plan, pair_design
    out = []
    for m in gd.ASSEMBLERS if rate_mode else gd.ASSEMBLERS[-1:]:
        for g in GROUPS:
            one = replace(pair_design(pre, recipe, m, "fast-inserter", 0), group=g)
            if min(group_plan(one).crafts) <= 1e-9:
                continue
            for stack in range(1, height // layout(one)[0] + 1):
                for k in range(1, width // one.width + 1):
                    for tier in range(4):
                        d = replace(one, tier=tier, k=k, stack=stack)
                        if fits_belts(d):
                            out.append(d)
                            break
    return out


def _free_positions(occ: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the top-left corners where ``mask`` covers only free cells of ``occ``."""
    h, w = mask.shape
    H, W = occ.shape
    if h > H or w > W:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    win = np.lib.stride_tricks.sliding_window_view(occ, (h, w))
    hit = (win & mask).any(axis=(2, 3))
    return np.nonzero(~hit)


def _ports_distance(fixed: dict, d: Design, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Per position (ys, xs): Manhattan distance from the sources to the input belt heads plus
    from the output ends to the nearest sink (how far the routes fill lays will run).
    ``fixed``: {item: [(y, x) of its sources]} and "sink": [(y, x)]."""
    _, belts, _ = layout(d)
    dist = np.zeros(len(ys), np.int64)

    def nearest(cells, y, x):
        if not cells:
            return np.full(len(ys), 99)
        return np.min([np.abs(y - cy) + np.abs(x - cx) for cy, cx in cells], axis=0)

    for r, i in belts.items():
        dist += nearest(fixed.get(i, []), ys + r, xs - 1)
    for y, x, _ in output_ends(d, 0, 0):
        dist += nearest(fixed["sink"], ys + y, xs + x)
    return dist


def _fixed_cells(world: World, spare: dict[tuple[int, int], float]) -> dict:
    """{"sink": [(y, x)], item: [(y, x) of its sources that can still supply some]}."""
    out: dict = {"sink": []}
    for e in world.entities(obstacles=False):
        if e.name == SINK:
            out["sink"].append((e.y, e.x))
        elif e.name == SOURCE and spare.get((e.y, e.x), math.inf) > 1e-9:
            out.setdefault(e.item, []).append((e.y, e.x))
    return out


def _supply_bound(d: Design, spares: dict[str, list[float]]) -> float:
    """The product a block can make from the sources it can reach: each input belt is fed by
    one source, the ones with the most to spare."""
    per = per_product(d)
    _, belts, _ = layout(d)
    bound = stated_rate(d)
    for i in set(d.ingredients):
        n = sum(1 for v in belts.values() if d.ingredients[v] == i)
        bound = min(bound, sum(sorted(spares.get(i, []), reverse=True)[:n]) / per[i])
    return bound


def _try(base: World, d: Design, y0: int, x0: int, around: bool = False) -> World | None:
    """``base`` with block ``d`` at (y0, x0) joined to the sources and sinks, or None when it does
    not fit (``around``: fitted around the obstacles it covers, :func:`fit_design`)."""
    w = base.copy()
    if around:
        got = fit_design(w, d, y0, x0)
        if got is None:
            return None
        ins, outs = got
    elif place_design(w, d, y0, x0):
        ins, outs = input_ends(d, y0, x0), output_ends(d, y0, x0)
    else:
        return None
    ore = d.ingredients[0] if d.recipe is None else None
    # the cell in front of each input belt's end stays empty while fill joins the sources, so
    # every input belt is fed from a source, never from the end of another block's input belt
    plugs = [c for c in ins if 0 <= c[0] < w.height and 0 <= c[1] < w.width
             and w.grid[KIND][c] == 0]
    for c in plugs:
        w.place(Entity(OBSTACLE, *c))
    fill(w, d.tier, underground=True, furnace_ore=ore)
    for c in plugs:
        w.remove(*c)
    join_outputs(w, outs, d.product, d.tier)
    return w


def _back(world: World, r: int, m: bool) -> World:
    out = world.transformed(rotate=(4 - r) % 4)
    return out.transformed(mirror=True) if m else out


def _candidates(base: World, ds: list[Design], rate_mode: bool, wanted: float | None,
                spare: dict[tuple[int, int], float], positions: int = POSITIONS, around: tuple = (False,)
                ) -> tuple[list[tuple], dict, bool]:
    """([(bound, entity estimate, design, rotation, mirror, y0, x0, fitted)] in the order to try
    them, {(rotation, mirror): the base world turned into that frame}, whether the order is
    smallest first: a wanted rate some design meets). ``spare``: what each source can still
    supply; ``around``: which placements to list: solid blocks on free cells (False), blocks
    fitted around the obstacles they cover (True, :mod:`factorion.env.scalefit`)."""
    frames = {(r, m): base.transformed(rotate=r, mirror=m) for r, m in TRANSFORMS}
    spares: dict[str, list[float]] = {}
    for e in base.entities(obstacles=False):
        if e.name == SOURCE and spare.get((e.y, e.x), math.inf) > 1e-9:
            spares.setdefault(e.item, []).append(spare.get((e.y, e.x), math.inf))
    bounds = {d: _supply_bound(d, spares) for d in ds}
    est = {d: entity_count(d) for d in ds}
    ds = [d for d in ds if bounds[d] > 1e-9]
    if rate_mode and wanted is not None:
        meets = [d for d in ds if bounds[d] >= wanted * (1 - 1e-9)]
        rate_mode, ds = (True, meets) if meets else (False, ds)  # none meets it: the most we can
    out = []
    for (r, m), fw in frames.items():
        occ = fw.grid[KIND] != 0
        # a source cell of the frame: the same source in the base world (sizes may swap)
        fspare = _spare_in_frame(base, fw, r, m, spare)
        fixed = _fixed_cells(fw, fspare)
        for d, fitted in ((d, f) for d in ds for f in around):
            mask = block_mask(d)
            ys, xs = obstacle_positions(fw.grid, mask) if fitted else _free_positions(occ, mask)
            if not len(ys):
                continue
            order = np.argsort(_ports_distance(fixed, d, ys, xs), kind="stable")[:positions]
            for j in order.tolist():
                out.append((bounds[d], est[d], d, r, m, int(ys[j]), int(xs[j]), fitted))
    if rate_mode:
        out.sort(key=lambda c: (c[1], -c[0]))
    else:
        out.sort(key=lambda c: (-c[0], c[1]))
    return out, frames, rate_mode


def _spare_in_frame(base: World, fw: World, r: int, m: bool, spare: dict) -> dict:
    """``spare`` keyed by the source cells of frame ``fw`` (``base`` turned by (r, m))."""
    probe = World(*base.shape)
    for (y, x), v in spare.items():
        probe.rates[(y, x)] = v
        probe.place(Entity(SOURCE, y, x, item="iron-plate"))
    turned = probe.transformed(rotate=r, mirror=m)
    return dict(turned.rates)


def _better(res: ScaleOut, thr: float, n: int) -> bool:
    if res.world is None:
        return True
    cap = res.wanted if res.wanted is not None else math.inf
    return (min(thr, cap), -n) > (min(res.throughput, cap) + 1e-9, -res.entities)


def scale_out(world: World, budget_s: float = 10.0, fit_obstacles: bool = True) -> ScaleOut:
    """The best scale-out factory for ``world``'s sources and sinks within ``budget_s`` (see the
    module docstring); ``ScaleOut.world`` is None when the task is not a one-step recipe or no
    block fits. ``fit_obstacles``: also try blocks fitted around obstacles
    (:mod:`factorion.env.scalefit`); False: solid blocks on free cells only."""
    t0 = time.perf_counter()
    res = ScaleOut(wanted=wanted_rate(world))
    got = infer_recipe(world)
    if got is None:
        res.note = "scale-out: the sinks' item is not one or two steps from the sources' items"
        return res
    recipe, ings, product = got[:3]
    base = fixed_only(world)
    rate_mode = res.wanted is not None
    ds = designs(recipe, ings, product, max(world.shape), max(world.shape), rate_mode,
                 got[3] if len(got) > 3 else None)
    spare = _spare(base)
    supply_bound = _total_supply(world, ds[0], spare) if ds else 0.0
    tried: set = set()
    for positions in (POSITIONS, 4 * POSITIONS, 16 * POSITIONS):  # more positions while all fell short
        if _first_block(res, base, ds, rate_mode, spare, positions, tried, t0, budget_s):
            break
    res.fit = fit_obstacles and has_obstacles(base)
    if res.fit and not _met(res, res.throughput):  # blocks fitted around the obstacles
        _first_block(res, base, ds, rate_mode, spare, 4 * POSITIONS, tried, t0, budget_s, around=(True,))
    if res.world is not None and not _met(res, res.throughput):
        _extend(res, ds, supply_bound, t0, budget_s)
        _other_starts(res, ds, supply_bound, t0, budget_s)
    _explain(res, supply_bound)
    return res


def has_obstacles(world: World) -> bool:
    return bool((world.grid[KIND] == OBSTACLE_KIND).any())


def _describe(d: Design, fitted: bool) -> str:
    return d.describe() + (" fitted around obstacles" if fitted else "")


def _met(res: ScaleOut, thr: float) -> bool:
    return res.wanted is not None and thr >= res.wanted * (1 - 1e-9)


def _other_starts(res: ScaleOut, ds: list[Design], supply_bound: float, t0: float, budget_s: float) -> None:
    """While the budget lasts: grow each other working first block (best first, at most
    :data:`STARTS`) as :func:`_extend` grew the best one, and keep what beats the best so far
    (a first block that leaves more room may end with more machines)."""
    seen = {res.label}
    for thr, n, (w, r, m), label in sorted(res.starts, key=lambda s: (-s[0], s[1]))[:STARTS]:
        if time.perf_counter() - t0 > budget_s or res.throughput >= supply_bound * (1 - 1e-9):
            return
        if label in seen and abs(thr - res.throughput) < 1e-9:
            continue
        seen.add(label)
        alt = ScaleOut(world=_back(w, r, m), throughput=thr, entities=n, label=label, wanted=res.wanted,
                       fit=res.fit)
        _extend(alt, ds, supply_bound, t0, budget_s)
        res.candidates += alt.candidates
        if _better(res, alt.throughput, alt.entities):
            res.world, res.throughput, res.entities = alt.world, alt.throughput, alt.entities
            res.label = alt.label
            res.log.append((round(time.perf_counter() - t0, 3), res.label + " (another first block)",
                            alt.throughput))


def _first_block(res: ScaleOut, base: World, ds: list[Design], rate_mode: bool, spare: dict, positions: int,
                 tried: set, t0: float, budget_s: float, around: tuple = (False,)) -> bool:
    """Try single blocks (``positions`` per orientation and design, those in ``tried`` skipped),
    best first, keeping the best in ``res``. True when the search is over: the budget is spent
    or no design could beat the best. ``around``: as for :func:`_candidates`."""
    from factorion.sim import throughput
    cands, frames, rate_mode = _candidates(base, ds, rate_mode, res.wanted, spare, positions, around)
    for bound, est, d, r, m, y0, x0, fitted in cands:
        if time.perf_counter() - t0 > budget_s:
            return True
        if res.world is not None and not rate_mode and bound <= res.throughput * (1 + 1e-9):
            # sorted by bound: nothing left can beat the best; more positions may for the
            # larger designs that did not route here
            return res.throughput >= cands[0][0] * (1 - 1e-9)
        if res.world is not None and rate_mode and res.throughput >= res.wanted * (1 - 1e-9) \
                and est >= res.entities:
            return True
        if (d, r, m, y0, x0, fitted) in tried:
            continue
        tried.add((d, r, m, y0, x0, fitted))
        w = _try(frames[(r, m)], d, y0, x0, fitted)
        res.candidates += 1
        if w is None:
            continue
        thr = float(throughput(w))
        n = count_entities(w)
        label = f"scale-out: {_describe(d, fitted)}"
        if thr > 0:
            res.starts.append((thr, n, (w, r, m), label))
        if thr > 0 and _better(res, thr, n):
            res.world, res.throughput, res.entities = _back(w, r, m), thr, n
            res.label = label
            res.log.append((round(time.perf_counter() - t0, 3), res.label, thr))
    return False


def _total_supply(world: World, d: Design, spare: dict) -> float:
    """The product all sources together could make (the most any build delivers)."""
    per = per_product(d)
    tot = {i: 0.0 for i in d.ingredients}
    for e in world.entities(obstacles=False):
        if e.name == SOURCE and e.item in tot:
            tot[e.item] += spare.get((e.y, e.x), math.inf)
    return min(tot[i] / per[i] for i in tot)


def _extend(res: ScaleOut, ds: list[Design], supply_bound: float, t0: float, budget_s: float) -> None:
    """Add blocks to the best factory while that raises its throughput (and a wanted rate is
    not met yet), the designs tried in order of their rate, within the budget."""
    from factorion.sim import throughput
    while time.perf_counter() - t0 < budget_s:
        if res.wanted is not None and res.throughput >= res.wanted * (1 - 1e-9):
            return
        if res.throughput >= supply_bound * (1 - 1e-9):
            return
        around = (False, True) if res.fit else (False,)
        cands, frames, _ = _candidates(res.world, ds, False, None, _spare(res.world), around=around)
        improved = False
        for _bound, _est, d, r, m, y0, x0, fitted in cands:
            if time.perf_counter() - t0 > budget_s:
                return
            w = _try(frames[(r, m)], d, y0, x0, fitted)
            res.candidates += 1
            if w is None:
                continue
            thr = float(throughput(w))
            if thr > res.throughput * (1 + 1e-6):
                res.world, res.throughput, res.entities = _back(w, r, m), thr, count_entities(w)
                res.label += f" + {_describe(d, fitted)}"
                res.log.append((round(time.perf_counter() - t0, 3), res.label, thr))
                improved = True
                break
        if not improved:
            return


def _explain(res: ScaleOut, supply_bound: float) -> None:
    if res.wanted is None:
        return
    if res.world is not None and res.throughput >= res.wanted * (1 - 1e-9):
        res.note = f"wanted rate {res.wanted:g}/s met: {res.throughput:.4g}/s with {res.entities} entities"
        return
    got = f"wanted rate {res.wanted:g}/s not met: built {res.throughput:.4g}/s"
    if supply_bound < res.wanted * (1 - 1e-9):
        res.note = f"{got}; the sources supply at most {supply_bound:.4g}/s of the product"
    elif res.world is None:
        res.note = f"{got}; no block of parallel machines fits the area"
    else:
        res.note = f"{got}; that is the most the blocks that fit the area (and route) deliver"
