"""Task families, levels, constructions, routing and the curriculum (factorion.tasks)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from factorion import tasks as T
from factorion.core import blueprint as B
from factorion.core import blueprint_world as BW
from factorion.core import gamedata as gd
from factorion.core.world import IO_INPUT, IO_OUTPUT, OBSTACLE, PART, SINK, SOURCE, Entity, World

SAMPLES = Path(__file__).resolve().parents[1] / "factorion" / "samples"


def sim():
    return pytest.importorskip("factorion.sim")


def non_fixed(world: World) -> list[Entity]:
    return [e for e in world.entities() if e.name not in T.FIXED]


def fixed(world: World) -> Counter:
    return Counter(e for e in world.entities() if e.name in T.FIXED)


# ----------------------------------------------------------------------------- constants, arguments


def test_constants():
    assert T.FAMILIES == ("belt", "underground", "splitter", "smelting", "assembler1", "assembler2", "tree2")
    assert T.LEVELS == (1, 2, 3, 4, 5)
    assert T.ALL_FAMILIES == T.FAMILIES + ("scale",)
    assert set(T.MIN_SIZE) == set(T.ALL_FAMILIES)
    assert all(5 <= T.MIN_SIZE[f] <= 7 for f in T.FAMILIES) and T.MIN_SIZE["scale"] == 16


@pytest.mark.parametrize(("family", "level", "size"), [
    ("nope", 1, 11), ("belt", 0, 11), ("belt", 6, 11), ("belt", 1, 4), ("belt", 1, 33), ("tree2", 1, 6),
])
def test_make_task_rejects_bad_arguments(family, level, size):
    with pytest.raises(ValueError):
        T.make_task(family, level, size=size, seed=0)


def test_solved_factory_rejects_bad_size():
    with pytest.raises(ValueError):
        T.solved_factory("underground", 5, 0)
    with pytest.raises(ValueError):
        T.solved_factory("belt", 40, 0)


def test_n_missing_below_two_is_refused():
    with pytest.raises(ValueError):
        T.make_task("belt", 4, seed=0, n_missing=1)


# ----------------------------------------------------------------------------- constructions (no sim)


def _check_structure(fam: str, w: World) -> None:
    """Every consumer is fed (flow analysis), the construction's invariants hold."""
    flow = T.Flow(w)
    assert flow.unmet() == [], (fam, flow.unmet())
    assert not flow.orphans
    ents = w.entities()
    names = Counter(e.name for e in ents)
    assert names[SOURCE] >= 1 and names[SINK] >= 1
    for e in ents:
        if e.name in gd.BELTS:  # never side-loads: at most one feeder, and never from its front
            feeders = [f for f in flow.inp[e] if f.name in T.BELTLIKE or f.name == SOURCE]
            assert len(feeders) <= 1, (fam, e)
        if e.name in gd.UNDERGROUNDS and e.io == IO_INPUT:
            assert T.ug_partner(w, e) is not None
    if fam == "underground":
        assert any(e.name in gd.UNDERGROUNDS for e in ents)
    if fam == "splitter":
        assert names[SOURCE] + names[SINK] == 3
        assert sum(names[s] for s in gd.SPLITTERS) == 1
    if fam == "smelting":
        assert sum(names[f] for f in gd.FURNACES) == 1
    if fam in ("assembler1", "assembler2"):
        assert sum(names[a] for a in gd.ASSEMBLERS) == 1
        assert names[SOURCE] == len(T.ingredients_of(next(e.recipe for e in ents if e.recipe)))
    if fam == "tree2":
        assert sum(names[a] for a in gd.ASSEMBLERS) == 2


@pytest.mark.parametrize("family", T.FAMILIES)
def test_solved_factory_structure_and_determinism(family):
    for seed in range(12):
        w = T.solved_factory(family, 11, seed)
        _check_structure(family, w)
        assert w.shape == (11, 11)
        assert T.solved_factory(family, 11, seed) == w
    assert T.solved_factory(family, 11, 1) != T.solved_factory(family, 11, 2)


@pytest.mark.parametrize("family", T.FAMILIES)
def test_solved_factory_sizes(family):
    for size in sorted({T.MIN_SIZE[family], 16, 32}):
        for seed in range(3):
            w = T.solved_factory(family, size, seed)
            assert w.shape == (size, size)
            _check_structure(family, w)


def test_solved_factory_blueprint_round_trip():
    for fam in T.FAMILIES:
        w = T.solved_factory(fam, 11, 5)
        back = BW.from_blueprint(B.load_blueprints(BW.to_string(w, label=fam))[0].raw)
        assert back == w, fam


def test_throttle_construction_uses_fast_parts():
    for seed in range(5):
        w = T.solved_factory("belt", 11, seed, throttle=True)
        assert all(gd.tier(e.name) >= 1 for e in w.entities() if e.name in gd.BELTS)


# ----------------------------------------------------------------------------- routing


def test_route_goes_around_obstacles():
    w = World(5, 7)
    w.place(Entity(SOURCE, 2, 0, item="iron-plate"))
    w.place(Entity(SINK, 2, 6, item="iron-plate"))
    for y in range(0, 4):
        w.place(Entity(OBSTACLE, y, 3))
    path = T.route(w, T.source_starts(w, (2, 0)), T.Goal({(2, 6): T.enter_pred(w.entity_at(2, 6))}), 0,
                   underground=False)
    assert path and all(e.name == "transport-belt" for e in path)
    assert (path[0].y, path[0].x, path[0].direction) == (2, 1, 1)  # points away from the source
    T.place_all(w, path)
    assert T.Flow(w).unmet() == []


def test_route_jumps_a_wall_with_an_underground():
    w = World(5, 9)
    w.place(Entity(SOURCE, 2, 0, item="iron-plate"))
    w.place(Entity(SINK, 2, 8, item="iron-plate"))
    for y in range(5):
        for x in (3, 4):
            w.place(Entity(OBSTACLE, y, x))
    goal = T.Goal({(2, 8): T.enter_pred(w.entity_at(2, 8))})
    assert T.route(w, T.source_starts(w, (2, 0)), goal, 0, underground=False) is None
    path = T.route(w, T.source_starts(w, (2, 0)), goal, 0)
    assert path is not None
    ugs = [e for e in path if e.name == "underground-belt"]
    assert [e.io for e in ugs] == [IO_INPUT, IO_OUTPUT]
    T.place_all(w, path)
    assert T.ug_partner(w, ugs[0]) == ugs[1]
    assert T.Flow(w).unmet() == []


def test_route_never_points_a_belt_away_from_another_source():
    w = World(3, 7)
    w.place(Entity(SOURCE, 1, 0, item="iron-plate"))
    w.place(Entity(SOURCE, 0, 3, item="coal"))
    w.place(Entity(SINK, 1, 6, item="iron-plate"))
    path = T.route(w, T.source_starts(w, (1, 0)), T.Goal({(1, 6): T.enter_pred(w.entity_at(1, 6))}), 0,
                   underground=False)
    assert path
    assert not any((e.y, e.x) == (1, 3) and e.direction == 2 for e in path)


def test_route_to_a_dead_end_for_an_inserter():
    w = World(6, 6)
    w.place(Entity(SOURCE, 5, 0, item="iron-plate"))
    w.place(Entity("assembling-machine-1", 0, 0, recipe="iron-gear-wheel"))
    w.place(Entity("inserter", 3, 1, 2))  # picks up at (4, 1), drops into the machine
    flow = T.Flow(w)
    (m, item), = flow.unmet()
    assert item == "iron-plate"
    goal = flow.goal_for(m, item)
    assert goal.end == {(4, 1)}
    assert T.fill(w, 0) == []
    belt = w.entity_at(4, 1)
    assert belt is not None and belt.name == "transport-belt"


def _random_route_problem(rng: np.random.Generator):
    """A task world with some of its entities removed, and a random goal and starts."""
    fam = T.FAMILIES[int(rng.integers(len(T.FAMILIES)))]
    w = T.solved_factory(fam, int(rng.choice([7, 11, 16])), int(rng.integers(1000)))
    ents = non_fixed(w)
    for i in rng.permutation(len(ents))[: int(rng.integers(len(ents) + 1))]:
        w.remove(ents[i].y, ents[i].x)
    H, W = w.shape
    free = [(int(y), int(x)) for y, x in zip(*np.nonzero(w.grid[PART] == 0), strict=True)]
    heads = [e for e in w.entities() if T.enter_pred(e) is not None]
    enter = {}
    for e in [heads[i] for i in rng.permutation(len(heads))[: int(rng.integers(0, 3))]]:
        for c in T.cells_of(e):
            enter[c] = T.enter_pred(e)
    end = {free[i] for i in rng.permutation(len(free))[: int(rng.integers(0, 3))]}
    if rng.random() < 0.1:  # a goal cell outside the world: the fast router hands over
        end.add((-1, int(rng.integers(W))))
    starts = [(y, x, int(rng.integers(-1, 4)), bool(rng.random() < 0.5))
              for y, x in [free[i] for i in rng.permutation(len(free))[:3]]]
    for s in [e for e in w.entities() if e.name == SOURCE][:1]:
        starts += T.source_starts(w, (s.y, s.x))
    exclude = {free[i] for i in rng.permutation(len(free))[:2]} if rng.random() < 0.3 else ()
    return w, starts, T.Goal(enter, end), exclude


def test_fast_route_matches_the_reference_router():
    """route (flat tables, integer states) against _route_simple (the plain A*): the same paths and
    the same draws from rng, on random problems."""
    from factorion.tasks.routing import route_simple
    rng = np.random.default_rng(0)
    found = 0
    for k in range(150):
        w, starts, goal, exclude = _random_route_problem(rng)
        tier, ug = int(rng.integers(4)), bool(rng.random() < 0.7)
        outs = []
        for fn in (T.route, route_simple):
            r = np.random.default_rng(k)
            outs.append((fn(w, starts, goal, tier, underground=ug, rng=r, exclude=exclude), r.random()))
        assert outs[0] == outs[1], k
        assert T.route(w, starts, goal, tier, underground=ug, exclude=exclude) == \
            route_simple(w, starts, goal, tier, underground=ug, exclude=exclude)
        found += bool(outs[0][0])
    assert found > 30


def test_pick_and_draws_are_numpys_draws():
    """pick(rng, seq) is rng.choice(seq); Draws(rng, n).integers(lo, hi) are rng.integers(lo, hi)
    calls one by one (values and the generator's state after, rejections included)."""
    for seed in range(60):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        names = ("a", "b", "b", "c", "d")[: 1 + seed % 5]
        assert [str(a.choice(names)) for _ in range(20)] == [T.pick(b, names) for _ in range(20)]
        if seed % 2:
            a.integers(5)
            b.integers(5)  # a half-used 32-bit buffer in the bit generator
        spans = [1, 2, 3, 4, 5, 7, 11, 16, 3 * 2**30, 2**31 + 1, 2**32 - 1]
        c = np.random.default_rng(1000 + seed)
        bounds = [(lo, lo + spans[int(c.integers(len(spans)))]) for lo in range(-3, 60)]
        want = [int(a.integers(lo, hi)) for lo, hi in bounds]
        draws = T.Draws(b, sum(hi - lo > 1 for lo, hi in bounds) - seed % 3)
        assert [draws.integers(lo, hi) for lo, hi in bounds] == want
        draws.close()
        assert a.bit_generator.state == b.bit_generator.state
    with pytest.raises(RuntimeError):
        T.Draws(np.random.default_rng(0), 3).close()


def test_batched_draws_build_what_one_by_one_draws_build():
    """scatter_obstacles and place_splitter (batched draws, bulk writes) against the plain loops
    they replace (one rng call and one world.place at a time)."""
    for seed in range(40):
        base = T.solved_factory("belt", 11, seed)
        avoid = {(int(seed) % 11, 3)}
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        w1 = base.copy()
        T.scatter_obstacles(w1, a, 0.3, avoid)
        w2 = base.copy()
        free = T.free_cells(w2, set(avoid))
        for i in b.choice(len(free), size=int(round(0.3 * len(free))), replace=False):
            y, x = free[int(i)]
            w2.place(Entity(OBSTACLE, y, x, obstacle_name=str(b.choice(T.OBSTACLE_NAMES))))
        assert w1 == w2 and w1.obstacles == w2.obstacles
        assert a.bit_generator.state == b.bit_generator.state
        tier = seed % 4
        sp = T.place_splitter(w1, a, tier, tries=50)
        order = []
        for _ in range(50):
            d = int(b.integers(4))
            fw, fh = gd.footprint(gd.SPLITTERS[tier], d)
            y, x = int(b.integers(0, 11 - fh + 1)), int(b.integers(0, 11 - fw + 1))
            order.append(Entity(gd.SPLITTERS[tier], y, x, d))
        want = None
        for e in order:
            cs = T.cells_of(e)
            around = [T.step(c, e.direction, k) for k in (1, 2) for c in cs] + [
                T.step(c, (e.direction + 2) % 4) for c in cs]
            if all(T.in_bounds(w2, c) and not w2.grid[PART][c] for c in cs + around):
                want = e
                break
        assert sp == want
        assert a.bit_generator.state == b.bit_generator.state


def test_entities_without_obstacles():
    for fam in T.FAMILIES:
        w = T.solved_factory(fam, 11, 3)
        assert w.entities(obstacles=False) == [e for e in w.entities() if e.name != OBSTACLE]


# ----------------------------------------------------------------------------- curriculum


def test_curriculum_promotes_after_successes():
    c = T.Curriculum(families=("belt", "smelting"), window=10, promote_at=0.8)
    assert c.state()["belt"]["level"] == 1
    for i in range(10):
        c.update("belt", 1, i != 0)  # 9 of 10
    assert c.state()["belt"]["level"] == 2
    assert c.state()["smelting"]["level"] == 1
    for _ in range(10):
        c.update("smelting", 1, False)
    assert c.state()["smelting"]["level"] == 1
    assert c.state()["smelting"]["success_rate"] == 0.0


def test_curriculum_needs_a_full_window_and_stops_at_max_level():
    c = T.Curriculum(families=("belt",), window=5, promote_at=0.5, max_level=3, start_level=2)
    for _ in range(4):
        c.update("belt", 2, True)
    assert c.level["belt"] == 2
    c.update("belt", 2, True)
    assert c.level["belt"] == 3
    for _ in range(20):
        c.update("belt", 3, True)
    assert c.level["belt"] == 3
    c.update("belt", 1, False)  # a rehearsal episode does not count
    assert c.state()["belt"]["success_rate"] == 1.0


def test_curriculum_sample():
    c = T.Curriculum(window=3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        c.update("tree2", 1, True)
    seen = Counter(c.sample(rng) for _ in range(2000))
    assert {f for f, _ in seen} == set(T.FAMILIES)
    assert all(lvl in ((1, 2) if f == "tree2" else (1,)) for f, lvl in seen)
    assert seen[("tree2", 1)] > 0  # rehearsal
    with pytest.raises(ValueError):
        T.Curriculum(families=("nope",))


# ----------------------------------------------------------------------------- tasks (need the sim)


def _check_task(t: T.Task, n_missing: int = 5) -> None:
    thr = sim().throughput
    assert t.reference > 0
    assert thr(t.solution) == pytest.approx(t.reference, rel=1e-9)
    assert t.world.shape == t.solution.shape
    assert fixed(t.world) == fixed(t.solution)
    assert t.items == T.world_items(t.solution)
    if t.family in ("belt", "underground", "splitter", "smelting"):
        assert t.recipes == ()
    else:
        assert t.recipes and all(r in gd.recipe_names() for r in t.recipes)
    if t.level == 1:
        assert t.world == t.solution and t.removed == []
    elif t.level == 2:
        assert 0 < thr(t.world) < t.reference
        assert t.removed == []
        assert len(non_fixed(t.world)) == len(non_fixed(t.solution))
    elif t.level in (3, 4):
        n = len(t.removed)
        assert (n == 1) if t.level == 3 else (2 <= n <= n_missing)
        assert set(non_fixed(t.world)) | set(t.removed) == set(non_fixed(t.solution))
        assert not set(non_fixed(t.world)) & set(t.removed)
        assert thr(t.world) < t.reference
        w = t.world.copy()
        T.place_all(w, t.removed)
        assert w == t.solution
    else:
        assert non_fixed(t.world) == [] and t.removed == []


@pytest.mark.parametrize("family", T.FAMILIES)
def test_every_level_sets_up(family):
    sim()
    for level in T.LEVELS:
        for seed in range(2):
            _check_task(T.make_task(family, level, size=11, seed=seed))


@pytest.mark.parametrize("size", [16, 32])
def test_references_at_larger_sizes(size):
    thr = sim().throughput
    for fam in T.FAMILIES:
        t = T.make_task(fam, 1, size=size, seed=size)
        assert t.solution.shape == (size, size)
        assert t.reference > 0 and thr(t.solution) == t.reference


def test_make_task_at_minimum_sizes():
    sim()
    for fam in T.FAMILIES:
        for level in (2, 3):
            _check_task(T.make_task(fam, level, size=T.MIN_SIZE[fam], seed=1))


def test_make_task_is_deterministic():
    sim()
    for fam in ("belt", "splitter", "tree2"):
        a = T.make_task(fam, 4, seed=7)
        b = T.make_task(fam, 4, seed=7)
        assert a.world == b.world and a.solution == b.solution and a.removed == b.removed
        assert a.reference == b.reference
    # levels other than 2 share the seed's reference solution
    assert T.make_task("belt", 1, seed=3).solution == T.make_task("belt", 5, seed=3).solution
    t = T.make_task("belt", 1)
    assert isinstance(t.seed, int) and T.make_task("belt", 1, seed=t.seed).world == t.world


def test_n_missing_bounds_level_4():
    sim()
    for seed in range(4):
        t = T.make_task("belt", 4, seed=seed, n_missing=2)
        assert len(t.removed) == 2


@pytest.mark.slow
@pytest.mark.parametrize("family", T.FAMILIES)
def test_many_tasks(family):
    sim()
    for size in (11, 16, 32):
        for level in T.LEVELS:
            for seed in range(10 if size == 11 else 3):
                _check_task(T.make_task(family, level, size=size, seed=100 + seed))


@pytest.mark.slow
def test_references_reach_reference_for_many_seeds():
    thr = sim().throughput
    for fam in T.FAMILIES:
        for seed in range(30):
            t = T.make_task(fam, 1, size=11, seed=1000 + seed)
            assert t.reference > 0 and thr(t.solution) == t.reference


# ----------------------------------------------------------------------------- samples


def test_write_samples(tmp_path):
    sim()
    files = T.write_samples(tmp_path, per_family=1, size=11, seed=0)
    assert len(files) == len(T.FAMILIES)
    rows = list(csv.DictReader(open(tmp_path / "MANIFEST.tsv"), delimiter="\t"))
    assert [r["family"] for r in rows] == list(T.FAMILIES)
    for r in rows:
        text = (tmp_path / r["file"]).read_text().strip()
        w = BW.from_blueprint(B.load_blueprints(text)[0].raw)
        assert w == T.make_task(r["family"], 1, size=int(r["size"]), seed=int(r["seed"])).solution
        assert float(r["reference"]) > 0


def test_embedded_samples_exist_and_load():
    rows = list(csv.DictReader(open(SAMPLES / "MANIFEST.tsv"), delimiter="\t"))
    assert {r["family"] for r in rows} == set(T.FAMILIES)
    for r in rows:
        text = (SAMPLES / r["file"]).read_text().strip()
        w = BW.from_blueprint(B.load_blueprints(text)[0].raw)
        assert w.shape == (int(r["size"]), int(r["size"]))
        assert float(r["reference"]) > 0
        assert T.Flow(w).unmet() == []
