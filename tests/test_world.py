"""The grid world: placing, removing, blueprint round trips, symmetry, the shared corpus."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factorion.core import blueprint as B
from factorion.core import blueprint_world as BW
from factorion.core import gamedata as gd
from factorion.core.world import (
    CHANNELS,
    DIR,
    IO,
    KIND,
    KIND_ID,
    KINDS,
    OBSTACLE,
    PART,
    RECIPE,
    Entity,
    World,
    WorldError,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "blueprints"


def small_factory() -> World:
    w = World(6, 8)
    w.place("source", 2, 0, item="iron-plate")
    for x in range(1, 5):
        w.place("transport-belt", 2, x, direction=1)
    w.place("sink", 2, 5, item="iron-plate")
    w.place("inserter", 1, 2, direction=2)
    w.place("underground-belt", 3, 1, direction=1, io=1)
    w.place("underground-belt", 3, 4, direction=1, io=2)
    w.place("splitter", 4, 3, direction=0)
    w.place("assembling-machine-1", 3, 5, recipe="iron-gear-wheel")
    w.place("stone-furnace", 0, 6)
    w.place(Entity(OBSTACLE, 0, 0, obstacle_name="small-electric-pole"))
    w.place(Entity(OBSTACLE, 5, 0, obstacle_name="pipe"))
    w.rates[(2, 0)] = 7.5
    return w


def test_channels_documented_once():
    assert CHANNELS == ("kind", "dir", "item", "recipe", "io", "part")
    assert KINDS[0] == "empty" and KINDS[-3:] == ("source", "sink", "obstacle")


def test_place_multi_tile_and_anchor():
    w = small_factory()
    assert w.grid[KIND, 4, 5] == KIND_ID["assembling-machine-1"]
    assert w.anchor(5, 7) == (3, 5)
    assert w.grid[PART, 5, 7] == 9
    assert w.entity_at(4, 6).recipe == "iron-gear-wheel"
    assert w.grid[RECIPE, 3, 5] > 0
    assert w.anchor(4, 4) == (4, 3)  # splitter: 2x1 facing north
    assert w.grid[IO, 3, 4] == 2


def test_place_errors_name_the_problem():
    w = small_factory()
    with pytest.raises(WorldError, match="overlaps"):
        w.place("transport-belt", 2, 3)
    with pytest.raises(WorldError, match="outside"):
        w.place("assembling-machine-1", 4, 6)
    with pytest.raises(WorldError, match="needs an item"):
        w.place("source", 0, 3)
    e = World(5, 5)
    with pytest.raises(WorldError, match="cannot make"):
        e.place("assembling-machine-1", 0, 1, recipe="iron-plate")
    with pytest.raises(WorldError, match="only assembling machines"):
        e.place("stone-furnace", 0, 2, recipe="iron-plate")
    with pytest.raises(WorldError, match="io 1"):
        e.place("underground-belt", 0, 3)
    with pytest.raises(WorldError, match="not a modelled"):
        e.place("beacon", 0, 3)
    with pytest.raises(WorldError, match="nothing to remove"):
        w.remove(1, 1)


def test_remove_clears_footprint():
    w = small_factory()
    e = w.remove(5, 7)
    assert e.name == "assembling-machine-1" and (e.y, e.x) == (3, 5)
    assert not w.grid[:, 3:6, 5:8].any()
    w.remove(2, 0)
    assert (2, 0) not in w.rates


def test_blueprint_round_trip_synthetic():
    w = small_factory()
    text = BW.to_string(w, label="t")
    bp = B.load_blueprints(text)[0]
    w2 = BW.from_blueprint(bp.raw)
    assert w2 == w
    assert w2.counts() == w.counts()
    # blueprint -> world -> blueprint -> world
    w3 = BW.from_blueprint(B.load_blueprints(BW.to_string(w2))[0].raw)
    assert w3 == w2


def test_export_loads_in_draftsman_without_warnings():
    from draftsman.blueprintable import get_blueprintable_from_string
    w = small_factory()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bp = get_blueprintable_from_string(BW.to_string(w))
    assert [str(c.message) for c in caught] == []
    names = Counter(e.name for e in bp.entities)
    assert names["infinity-chest"] == 2 and names["transport-belt"] == 4


def test_sources_and_sinks_are_tagged_infinity_chests():
    ents = BW.to_blueprint(small_factory())["blueprint"]["entities"]
    chests = [e for e in ents if e["name"] == gd.SOURCE_SINK_ENTITY]
    roles = sorted(e["tags"]["factorion"] for e in chests)
    assert roles == ["sink", "source"]
    src = next(e for e in chests if e["tags"]["factorion"] == "source")
    assert src["tags"]["rate"] == 7.5
    assert src["infinity_settings"]["filters"][0]["name"] == "iron-plate"


def test_unknown_entities_become_obstacles_of_their_footprint():
    ents = [
        {"entity_number": 1, "name": "transport-belt", "position": {"x": 0.5, "y": 0.5}},
        {"entity_number": 2, "name": "beacon", "position": {"x": 2.5, "y": 1.5}},  # 3x3
        {"entity_number": 3, "name": "some-modded-thing", "position": {"x": 4.5, "y": 0.5}},
    ]
    w = BW.from_blueprint(B.make_blueprint(ents)["blueprint"])
    assert w.shape == (3, 5)
    assert (w.grid[KIND, 0:3, 1:4] == KIND_ID[OBSTACLE]).all()
    assert w.grid[KIND, 0, 4] == KIND_ID[OBSTACLE]
    out = {e["name"] for e in BW.to_blueprint(w)["blueprint"]["entities"]}
    assert out == {"transport-belt", "beacon", gd.FILLER_OBSTACLE}  # modded -> wall, same cell
    assert BW.from_blueprint(BW.to_blueprint(w)["blueprint"]) == w


def test_half_tile_shift_is_normalised():
    # an old string with every 1x1 entity at whole coordinates (shifted by half a tile)
    ents = [{"entity_number": i + 1, "name": "transport-belt", "position": {"x": i, "y": 0},
             "direction": 4} for i in range(3)]
    w = BW.from_blueprint(B.make_blueprint(ents)["blueprint"])
    assert w.shape == (1, 3) and (w.grid[DIR] == 1).all()


def test_window_clips_entities_to_obstacles():
    w = small_factory()
    bp = BW.to_blueprint(w)["blueprint"]
    win = BW.from_blueprint(bp, window=(2, 4, 3, 3))
    assert win.shape == (3, 3)
    # the assembler at (3,5) is 3x3: inside the window only partly -> obstacle cells
    assert win.grid[KIND, 1, 1] == KIND_ID[OBSTACLE]
    assert win.grid[KIND, 0, 0] == KIND_ID["transport-belt"]


def test_1x_blueprint_directions_and_renames():
    bp = {"blueprint": {"item": "blueprint", "version": B.version_int(1, 1, 0), "entities": [
        {"entity_number": 1, "name": "stack-inserter", "position": {"x": 0.5, "y": 0.5}, "direction": 2},
        {"entity_number": 2, "name": "fast-transport-belt", "position": {"x": 1.5, "y": 0.5},
         "direction": 4},
    ]}}
    w = BW.from_blueprint(B.load_blueprints(B.encode(bp))[0].raw)
    assert w.kind_name(0, 0) == "bulk-inserter" and w.grid[DIR, 0, 0] == 1
    assert w.grid[DIR, 0, 1] == 2


def test_errors_for_bad_blueprints():
    with pytest.raises(WorldError, match="no entities"):
        BW.from_blueprint({"item": "blueprint"})
    ents = [{"entity_number": 1, "name": "transport-belt", "position": {"x": 0.5, "y": 0.5}},
            {"entity_number": 2, "name": "inserter", "position": {"x": 0.5, "y": 0.5}}]
    with pytest.raises(WorldError, match="overlap"):
        BW.from_blueprint({"entities": ents})


def test_transform_identities():
    w = small_factory()
    assert w.transformed(4) == w
    assert w.transformed(1).shape == (8, 6)
    assert w.transformed(0, mirror=True).transformed(0, mirror=True) == w
    t = w.transformed(3, mirror=True)
    assert BW.from_blueprint(B.load_blueprints(BW.to_string(t))[0].raw) == t
    assert t.counts() == w.counts()


_placeable = st.sampled_from(gd.BELTS + gd.UNDERGROUNDS + gd.SPLITTERS + gd.INSERTERS + gd.CHESTS
                             + ("assembling-machine-2", "electric-furnace", "source", "sink"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_placeable, st.integers(0, 9), st.integers(0, 9), st.integers(0, 3),
                          st.integers(1, 2)), max_size=25))
def test_round_trip_property(items):
    w = World(10, 10)
    for name, y, x, d, io in items:
        e = Entity(name, y, x, d, item="copper-plate" if name in ("source", "sink") else None,
                   io=io if name in gd.UNDERGROUNDS else 0,
                   recipe="copper-cable" if name == "assembling-machine-2" else None)
        if w.can_place(e) is None:
            w.place(e)
    w2 = BW.from_blueprint(B.load_blueprints(BW.to_string(w))[0].raw)
    assert w2 == w
    for k in range(4):
        assert w.transformed(k, mirror=bool(k % 2)).counts() == w.counts()


def _corpus_files():
    return sorted(SHARED.glob("**/*.txt")) if SHARED.is_dir() else []


def _round_trip_corpus(files) -> Counter:
    stats = Counter()
    for f in files:
        for bp in B.load_blueprints(f.read_text()):
            if not bp.entities:
                stats["empty"] += 1
                continue
            w = BW.from_blueprint(bp.raw)
            w2 = BW.from_blueprint(BW.to_blueprint(w)["blueprint"])
            assert w2 == w, f"round trip differs for {f.name} {bp.path}"
            a = w.grid[PART] == 1
            obst = int((w.grid[KIND][a] == KIND_ID[OBSTACLE]).sum())
            stats["blueprints"] += 1
            stats["obstacle_cells"] += obst
            stats["modelled"] += int(a.sum()) - obst
    return stats


def test_round_trip_corpus_sample():
    files = _corpus_files()
    if not files:
        pytest.skip("../shared/blueprints is not here")
    stats = _round_trip_corpus(files[::25])
    assert stats["blueprints"] > 50 and stats["modelled"] > 0


@pytest.mark.slow
def test_round_trip_whole_corpus():
    files = _corpus_files()
    if not files:
        pytest.skip("../shared/blueprints is not here")
    stats = _round_trip_corpus(files)
    print(dict(stats))
    assert stats["blueprints"] >= 3600


def test_grid_is_int16_and_copy_is_deep():
    w = small_factory()
    c = w.copy()
    c.remove(2, 3)
    assert w.grid[KIND, 2, 3] != 0 and c.grid[KIND, 2, 3] == 0
    assert w.grid.dtype == np.int16


def test_window_touching_no_entity_is_empty():
    w = small_factory()
    win = BW.from_blueprint(BW.to_blueprint(w)["blueprint"], window=(0, 20, 4, 4))
    assert win.shape == (4, 4) and not win.grid.any()
