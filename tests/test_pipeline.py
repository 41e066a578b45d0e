"""The ``make data`` pipeline: decode, chunk (windows, edge sources/sinks, examples), write, run."""

from __future__ import annotations

import copy
import json
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from factorion.core import blueprint as B
from factorion.core import blueprint_world as BW
from factorion.core.kinds import IS_MODELLED
from factorion.core.world import (
    ITEM,
    K_OBSTACLE,
    K_SINK,
    K_SOURCE,
    KIND,
    KIND_ID,
    PART,
    World,
    item_name,
)
from pipeline import chunk as C
from pipeline import decode as D
from pipeline import expert as X
from pipeline import run as R
from pipeline import write as W

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "blueprints"
HAVE_SIM = C.default_throughput() is not None
E, S, WEST, N = 1, 2, 3, 0  # cardinal directions of factorion.core.world


# ----------------------------------------------------------------------------- hand-made blueprints
def gear_line(length: int = 26) -> World:
    """An assembler making gears, an inserter dropping them on an eastbound belt of ``length`` cells."""
    w = World(3, 4 + length)
    w.place("assembling-machine-2", 0, 0, recipe="iron-gear-wheel")
    w.place("inserter", 1, 3, direction=WEST)  # picks from the west (the machine), drops east
    for x in range(4, 4 + length):
        w.place("transport-belt", 1, x, direction=E)
    return w


def bp_dict(world: World, label: str | None = None) -> dict:
    """The blueprint of ``world`` as a player would export it (no snap-to-grid)."""
    bp = BW.to_blueprint(world, label)
    bp["blueprint"].pop("snap-to-grid", None)
    return bp


def to_1_1(bp: dict) -> dict:
    """The same blueprint as a 1.1 string would hold it (8-way directions, old names)."""
    old = {v: k for k, v in B.RENAMES_1_TO_2.items() if k not in ("stack-filter-inserter",)}
    out = copy.deepcopy(bp)
    inner = out["blueprint"]
    inner["version"] = B.version_int(1, 1, 100)
    for e in inner["entities"]:
        e["name"] = old.get(e["name"], e["name"])
        if "direction" in e:
            e["direction"] //= 2
    return out


def book(*children: dict, label: str = "book") -> dict:
    entries = [{"index": i, **c} for i, c in enumerate(children)]
    return {"blueprint_book": {"label": label, "blueprints": entries, "version": B.version_int(2, 0, 0)}}


def prepared(world: World) -> C.Prepared:
    raw = bp_dict(world)["blueprint"]
    full = BW.from_blueprint(raw)
    return C.prepare(full, raw["entities"])


# ----------------------------------------------------------------------------- decode
def test_decode_books_nested_dedup_and_rejects():
    line = bp_dict(gear_line(), "line")
    other = bp_dict(gear_line(12), "short")
    text = B.encode(book(line, book(copy.deepcopy(line), other, label="inner"),
                         {"upgrade_planner": {"settings": {}}}, {"blueprint": {"entities": []}}))
    bps, rejects = D.decode_record(text, "src", "k")
    assert [b.label for b in bps] == ["line", "short"]
    assert [b.path for b in bps] == ["0", "1/1"]
    assert bps[1].book_labels == ("book", "inner")
    reasons = Counter((r.stage, r.reason) for r in rejects)
    assert reasons == {("dedup", "duplicate"): 1, ("decode", "no-entities"): 1}
    dup = next(r for r in rejects if r.reason == "duplicate")
    assert dup.path == "1/0" and dup.bp_id == bps[0].bp_id


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"), ("1abc", "bad-version-byte"), ("0!!!!", "bad-base64"),
    ("0" + "eJw=", "bad-zlib"), ("{not json", "bad-json"), ('{"foo": 1}', "bad-top-level"),
    ('{"upgrade_planner": {}}', "planner"),
    ('{"blueprint": {"entities": [{"name": "transport-belt"}]}}', "bad-entity"),
    ('{"blueprint": {"entities": [{"name": "x", "position": {"x": 0, "y": 0}}], "version": true}}',
     "bad-blueprint"),
])
def test_decode_reject_reasons(text, reason):
    bps, rejects = D.decode_record(text, "s", "k")
    assert bps == [] and [r.reason for r in rejects] == [reason]
    assert reason in D.REASONS


def test_one_bad_blueprint_in_a_book_keeps_its_siblings():
    good = bp_dict(gear_line(), "good")
    bad = {"blueprint": {"entities": [{"name": "transport-belt", "position": {"x": "a", "y": 0}}]}}
    bps, rejects = D.decode_record(B.encode(book(bad, good)), "s", "k")
    assert [b.label for b in bps] == ["good"]
    assert [(r.path, r.reason) for r in rejects] == [("0", "bad-entity")]


def test_content_hash_ignores_numbering_order_position_and_wires():
    ents = bp_dict(gear_line())["blueprint"]["entities"]
    moved = [{**e, "position": {"x": e["position"]["x"] + 7, "y": e["position"]["y"] - 3}} for e in ents]
    shuffled = list(reversed(moved))
    for i, e in enumerate(shuffled, 1):
        e["entity_number"] = i
    shuffled[0]["connections"] = {"1": {"red": [{"entity_id": 2}]}}
    assert D.content_hash(ents) == D.content_hash(shuffled)
    changed = copy.deepcopy(ents)
    next(e for e in changed if e.get("recipe"))["recipe"] = "copper-cable"
    assert D.content_hash(changed) != D.content_hash(ents)
    filtered = copy.deepcopy(ents)
    filtered[1]["filters"] = [{"index": 1, "name": "iron-plate"}]
    assert D.content_hash(filtered) != D.content_hash(ents)


def test_ids_do_not_depend_on_orjson(monkeypatch):
    ents = bp_dict(gear_line())["blueprint"]["entities"]
    ents[1]["filters"] = [{"index": 1, "name": "iron-plate"}]
    ents[2]["tags"] = {"note": "café"}
    with_orjson = D.content_hash(ents)
    monkeypatch.setattr(D, "_orjson", None)
    assert D.content_hash(ents) == with_orjson
    (bp,), _ = D.decode_record(B.encode({"blueprint": {"entities": ents}}))
    assert bp.bp_id == with_orjson


def test_same_blueprint_in_1_1_and_2_0_has_one_id():
    two = bp_dict(gear_line())
    one = to_1_1(two)
    (a,), _ = D.decode_record(B.encode(two))
    (b,), _ = D.decode_record(B.encode(one))
    assert a.bp_id == b.bp_id and b.version.startswith("1.1")
    assert b.raw["entities"] == a.raw["entities"]


def test_normalise_in_place_matches_the_project_normaliser():
    bp = to_1_1(bp_dict(gear_line()))["blueprint"]
    bp["entities"].append({"entity_number": 99, "name": "stack-filter-inserter", "direction": 2,
                           "position": {"x": 40.5, "y": 0.5},
                           "filters": [{"index": 1, "name": "iron-plate"}]})
    want = B.normalise_blueprint(bp)
    mine = copy.deepcopy(bp)
    D.normalise_in_place(mine)
    assert mine == want


# ----------------------------------------------------------------------------- windows
def test_window_slices_equal_from_blueprint_with_window():
    w = gear_line()
    for x in (20, 21, 22):
        w.remove(1, x)
    w.place("assembling-machine-1", 0, 20, recipe="iron-gear-wheel")  # straddles a window edge below
    raw = bp_dict(w)["blueprint"]
    full = BW.from_blueprint(raw)
    prep = C.prepare(full, raw["entities"])
    for top, left, size in [(0, 0, 11), (-4, 15, 11), (0, 18, 5), (-2, 25, 16)]:
        want = BW.from_blueprint(raw, window=(top, left, size, size)).grid
        got, *_ = C.build_window(prep, top, left, size)
        changed = (got != want).any(0)
        # only edge conversions differ: belts that became sources / sinks (or obstacles walked past)
        assert np.isin(got[KIND][changed], [K_SOURCE, K_SINK, K_OBSTACLE]).all()
        assert ((want[KIND][changed] >= KIND_ID["transport-belt"])
                & (want[KIND][changed] <= KIND_ID["turbo-splitter"])).all()
    # the machine clipped by a window edge is obstacle cells inside it
    got, *_ = C.build_window(prep, 0, 18, 4)
    assert (got[KIND][:3, 2:] == K_OBSTACLE).all() and (got[PART][:3, 2:] == 1).all()
    assert (got[KIND][3] == 0).all()  # below the blueprint: padding


def test_edge_belts_become_sources_and_sinks_with_the_inferred_item():
    prep = prepared(gear_line())
    grid, n_src, n_snk, n_ph = C.build_window(prep, -4, 10, 11)
    assert (n_src, n_snk, n_ph) == (1, 1, 0)
    row = 5  # the belt row (full row 1) in the window
    assert grid[KIND, row, 0] == K_SOURCE and grid[KIND, row, 10] == K_SINK
    assert item_name(int(grid[ITEM, row, 0])) == item_name(int(grid[ITEM, row, 10])) == "iron-gear-wheel"
    assert (grid[KIND, row, 1:10] == KIND_ID["transport-belt"]).all()
    if HAVE_SIM:
        assert C.default_throughput()(C.window_world(prep, grid, -4, 10)) == pytest.approx(15.0)


def test_edge_item_inference_from_consumers_and_placeholder():
    # a belt feeding an assembler (inserter picks from the belt): the belt carries its ingredient
    w = World(5, 24)
    for x in range(0, 24):
        w.place("transport-belt", 0, x, direction=E)
    w.place("inserter", 1, 20, direction=N)  # picks from the north (the belt), drops south (the machine)
    w.place("assembling-machine-2", 2, 19, recipe="iron-gear-wheel")
    for x in range(0, 12):  # an unrelated belt nobody feeds or empties: the placeholder
        w.place("transport-belt", 4, x, direction=E)
    prep = prepared(w)
    grid, _, _, n_ph = C.build_window(prep, -3, 2, 8)
    items = {(int(y), int(x)): item_name(int(grid[ITEM, y, x]))
             for y, x in zip(*np.nonzero(grid[ITEM]), strict=True)}
    assert items[(3, 0)] == items[(3, 7)] == "iron-plate"  # inferred from the recipe
    assert n_ph == 2 and items[(7, 0)] == items[(7, 7)] == "iron-plate"  # placeholder: most common item


def test_entering_underground_moves_the_source_to_its_output():
    w = World(1, 30)
    for x in range(0, 8):
        w.place("transport-belt", 0, x, direction=E)
    w.place("underground-belt", 0, 8, direction=E, io=1)
    w.place("underground-belt", 0, 12, direction=E, io=2)
    for x in range(13, 30):
        w.place("transport-belt", 0, x, direction=E)
    prep = prepared(w)
    grid, n_src, n_snk, _ = C.build_window(prep, -5, 8, 11)
    assert (n_src, n_snk) == (1, 1)
    assert grid[KIND, 5, 0] == K_OBSTACLE  # the input: part of the world outside now
    assert grid[KIND, 5, 4] == K_SOURCE and grid[KIND, 5, 10] == K_SINK
    if HAVE_SIM:
        assert C.default_throughput()(C.window_world(prep, grid, -5, 8)) == pytest.approx(15.0)


def broken_footprint(grid: np.ndarray):
    """The first entity of ``grid`` whose footprint is not wholly its own, else None."""
    w = World(*grid.shape[1:])
    w.grid = grid.copy()
    for e in w.entities():
        ww, hh = e.size
        fp = grid[:, e.y:e.y + hh, e.x:e.x + ww]
        if fp.shape[1:] != (hh, ww) or (fp[KIND] != grid[KIND, e.y, e.x]).any() or (fp[PART] == 1).sum() != 1:
            return e
    return None


def test_a_source_moved_past_a_splitter_cell_leaves_no_half_splitter():
    """Regression: the entering cell is a splitter's lower cell whose outputs curve, so the source
    moves down the line; the splitter cell it moved past became an obstacle and the other half stayed
    a splitter whose footprint covered the obstacle (World.remove of it then erased the obstacle)."""
    w = World(5, 14)
    w.place("transport-belt", 2, 13, direction=WEST)
    w.place("transport-belt", 2, 12, direction=WEST)
    w.place("splitter", 1, 11, direction=WEST)
    w.place("transport-belt", 1, 10, direction=N)
    w.place("transport-belt", 2, 10, direction=S)
    for x in range(0, 11):
        w.place("transport-belt", 0, x, direction=WEST)
        w.place("transport-belt", 3, x, direction=WEST)
    prep = prepared(w)
    for left in range(4):
        win, *_ = C.build_window(prep, -3, left, 12)
        assert broken_footprint(win) is None, left


def test_candidate_windows_filter_and_small_blueprints_are_centred():
    prep = prepared(gear_line(6))
    cands = C.candidate_windows(prep, 16, C.ChunkConfig(sizes=(16,)))
    assert cands == [((3 - 16) // 2, (10 - 16) // 2)]
    few = World(1, 3)
    for x in range(3):
        few.place("transport-belt", 0, x, direction=E)
    assert C.candidate_windows(prepared(few), 11, C.ChunkConfig()) == []


def test_examples_levels_targets_and_actions_restore_the_window():
    prep = prepared(gear_line())
    cfg = C.ChunkConfig(sizes=(11,), max_removed=4)
    wins = list(C.iter_windows(prep, "0123456789abcdef", cfg, None))
    assert wins and all(w.n_modelled >= cfg.min_entities for w in wins)
    for win in wins:
        exs = C.make_examples(win, "0123456789abcdef", cfg, None)
        assert [e.level for e in exs] == [1, 3, 4, 5]
        assert exs[0].targets == [] and exs[0].actions == [] and exs[0].start_grid is win.grid
        assert len(exs[1].targets) == 1 and 2 <= len(exs[2].targets) <= 4
        assert len(exs[3].targets) == win.n_modelled  # level 5: the whole build
        assert not IS_MODELLED[exs[3].start_grid[KIND]].any()
        for ex in exs[1:]:
            start = World(*ex.start_grid.shape[1:])
            start.grid = ex.start_grid.copy()
            for a in ex.actions:
                assert a["op"] == "place"
                start.place(a["name"], a["y"], a["x"], direction=a["direction"], recipe=a["recipe"],
                            io=a["io"])
            assert np.array_equal(start.grid, win.grid)
            removed = {(t["y"], t["x"]) for t in ex.targets}
            fixed = set(zip(*np.nonzero(np.isin(win.grid[KIND], [K_SOURCE, K_SINK])), strict=True))
            assert not fixed & removed


def test_examples_are_deterministic():
    prep = prepared(gear_line())
    cfg = C.ChunkConfig(sizes=(11,))
    a = [(w.top, w.left, [e.targets for e in C.make_examples(w, "feedbeef00000000", cfg, None)])
         for w in C.iter_windows(prep, "feedbeef00000000", cfg, None)]
    b = [(w.top, w.left, [e.targets for e in C.make_examples(w, "feedbeef00000000", cfg, None)])
         for w in C.iter_windows(prep, "feedbeef00000000", cfg, None)]
    assert a == b


def test_flow_order_matches_the_planner():
    planner = pytest.importorskip("factorion.env.planner")
    tasks = pytest.importorskip("factorion.tasks")
    if not HAVE_SIM:
        pytest.skip("tasks need factorion.sim")
    rng = random.Random(0)
    checked = 0
    for fam in tasks.FAMILIES:
        for seed in range(3):
            full = tasks.make_task(fam, 1, size=11, seed=seed).solution
            ents = [e for e in full.entities() if e.name not in ("source", "sink", "obstacle")]
            for n in (2, 3, 5):
                start = full.copy()
                removed = [start.remove(e.y, e.x) for e in rng.sample(ents, min(n, len(ents)))]
                assert X.expert_actions(start, full, removed) == planner.actions_to_build(start, full)
                checked += 1
    assert checked > 40


# ----------------------------------------------------------------------------- write
def test_split_is_deterministic_hash_based_and_near_its_fractions():
    ids = [f"{i:016x}" for i in range(20_000)]
    splits = [W.split_of(i, 0) for i in ids]
    assert splits == [W.split_of(i, 0) for i in ids]
    share = Counter(splits)
    assert abs(share["train"] / len(ids) - 0.8) < 0.02 and abs(share["test"] / len(ids) - 0.1) < 0.02
    assert [W.split_of(i, 1) for i in ids[:200]] != splits[:200]  # the seed reshuffles


def test_schema_is_documented_field_by_field():
    for schema in (W.EXAMPLE_SCHEMA, W.BLUEPRINT_SCHEMA, W.REJECT_SCHEMA):
        assert all(f.metadata and f.metadata[b"doc"] for f in schema)
    md = W.schema_markdown(W.EXAMPLE_SCHEMA)
    assert "`grid`" in md and "`targets`" in md


def test_split_writer_rolls_files_and_writes_atomically(tmp_path):
    rows = [{"example_id": str(i), "bp_id": "b", "split": "train", "grid_shape": [6, 1, 1],
             "grid": b"\0" * 12, "start_grid": b"\0" * 12, "level": 1, "n_removed": 0, "targets": [],
             "actions": []}
            for i in range(25)]
    with W.SplitWriter(tmp_path / "ex", rows_per_group=4, rows_per_file=10) as wr:
        for r in rows:
            wr.add(r)
    files = sorted((tmp_path / "ex" / "train").iterdir())
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert len(pd.read_parquet(tmp_path / "ex" / "train")) == 25
    assert pq.ParquetFile(files[0]).metadata.num_row_groups == 3


# ----------------------------------------------------------------------------- end to end
def _config(tmp_path: Path) -> str:
    cfg = tmp_path / "sources.toml"
    cfg.write_text("[download]\ncache_dir = \"" + str(tmp_path / "cache") + "\"\n")
    return str(cfg)


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "bps"
    d.mkdir()
    line = bp_dict(gear_line(), "gear line")
    w2 = World(6, 20)
    w2.place("source", 2, 0, item="iron-ore")
    for x in range(1, 6):
        w2.place("transport-belt", 2, x, direction=E)
    w2.place("inserter", 3, 5, direction=N)
    w2.place("stone-furnace", 4, 5)
    w2.place("inserter", 4, 7, direction=WEST)
    for x in range(8, 19):
        w2.place("transport-belt", 4, x, direction=E)
    w2.place("sink", 4, 19, item="iron-plate")
    smelt = bp_dict(w2, "smelter")
    overlap = bp_dict(gear_line(8), "overlap")
    overlap["blueprint"]["entities"].append(dict(overlap["blueprint"]["entities"][-1], entity_number=999))
    (d / "line.txt").write_text(B.encode(line))
    (d / "book.txt").write_text(B.encode(book(to_1_1(line), smelt, book(bp_dict(gear_line(30), "long")))))
    (d / "bad.txt").write_text("0eJzLSM3JyQcABiwCFQ==garbage")
    (d / "planner.txt").write_text(json.dumps({"deconstruction_planner": {"settings": {}}}))
    (d / "overlap.txt").write_text(B.encode(overlap))
    return d


def _run(tmp_path: Path, out: str, workers: int, **kw) -> dict:
    folder = tmp_path / "bps" if (tmp_path / "bps").exists() else _folder(tmp_path)
    rc = R.RunConfig(out=str(tmp_path / out), blueprints=(str(folder),), config=_config(tmp_path),
                     network=False, workers=workers, progress=False,
                     chunk=C.ChunkConfig(sizes=(11, 16), **kw))
    return R.run(rc)


def test_end_to_end_on_hand_made_strings(tmp_path):
    stats = _run(tmp_path, "out", workers=1)
    out = tmp_path / "out"
    ex = pd.read_parquet(out / "examples")
    assert pq.read_schema(next((out / "examples" / "train").glob("*.parquet"))).equals(
        W.EXAMPLE_SCHEMA, check_metadata=False)
    assert len(ex) == stats["rows"] > 0 and set(ex.level) == {1, 3, 4, 5}
    assert (ex.n_removed == ex.targets.map(len)).all()
    for _, row in ex.iterrows():
        g = np.frombuffer(row.grid, "<i2").reshape(row.grid_shape)
        assert g.shape == (6, row.window_size, row.window_size)
        assert row.example_id.startswith(row.bp_id)
    bps = pd.read_parquet(out / "blueprints.parquet")
    assert set(bps.label) >= {"gear line", "smelter", "long"}
    assert set(ex.bp_id) <= set(bps.bp_id)
    rej = pd.read_parquet(out / "rejects.parquet")
    reasons = Counter(zip(rej.stage, rej.reason, strict=True))
    assert reasons[("decode", "bad-base64")] == 1 and reasons[("decode", "planner")] == 1
    assert reasons[("chunk", "rasterise")] == 1 and reasons[("dedup", "duplicate")] == 1
    assert reasons[("chunk", "internal")] == 0
    assert rej[rej.reason == "duplicate"].key.tolist() == ["line.txt"]  # the book (larger) came first
    card = (out / "card.md").read_text()
    for part in ("## Counts", "## Entities", "## Reference throughput", "## Rejects", "## Schema",
                 "bad-base64"):
        assert part in card
    assert json.loads((out / "stats.json").read_text())["rows"] == stats["rows"]
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    if HAVE_SIM:
        assert (ex.reference_throughput > 0).all()
        assert (ex[ex.level == 1].start_throughput == ex[ex.level == 1].reference_throughput).all()
        assert (out / "samples.png").stat().st_size > 0


def test_no_blueprint_in_two_splits_and_same_output_for_any_worker_count(tmp_path):
    a = _run(tmp_path, "w1", workers=1)
    b = _run(tmp_path, "w2", workers=2)
    assert a["rows"] == b["rows"]
    ea = pd.read_parquet(tmp_path / "w1" / "examples").sort_values("example_id").reset_index(drop=True)
    eb = pd.read_parquet(tmp_path / "w2" / "examples").sort_values("example_id").reset_index(drop=True)
    assert ea.example_id.tolist() == eb.example_id.tolist()
    assert ea.start_grid.tolist() == eb.start_grid.tolist()
    per_bp = ea.groupby("bp_id").split.nunique()
    assert (per_bp == 1).all()
    for bp_id, split in ea.groupby("bp_id").split.first().items():
        assert split == W.split_of(bp_id, 0)
    bps = pd.read_parquet(tmp_path / "w1" / "blueprints.parquet")
    assert bps.bp_id.is_unique


def test_rerun_replaces_the_dataset(tmp_path):
    _run(tmp_path, "out", workers=1)
    stats = _run(tmp_path, "out", workers=1, max_removed=2)
    ex = pd.read_parquet(tmp_path / "out" / "examples")
    assert len(ex) == stats["rows"] and ex[ex.level < 5].n_removed.max() <= 2
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def _handful() -> list[Path]:
    files = sorted(SHARED.rglob("*.txt"), key=lambda p: (p.stat().st_size, str(p)))
    return [files[int(q * (len(files) - 1))] for q in (0.3, 0.45, 0.6, 0.75, 0.85)]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/blueprints is not there")
def test_end_to_end_on_a_handful_of_shared_blueprints(tmp_path):
    src = tmp_path / "handful"
    src.mkdir()
    for i, p in enumerate(_handful()):  # symlinks: the shared files are never copied
        (src / f"{i}-{p.name}").symlink_to(p)
    (src / "MANIFEST.tsv").symlink_to(SHARED / "MANIFEST.tsv")
    rc = R.RunConfig(out=str(tmp_path / "out"), blueprints=(str(src),), config=_config(tmp_path),
                     network=False, workers=2, progress=False)
    stats = R.run(rc)
    ex = pd.read_parquet(tmp_path / "out" / "examples")
    assert stats["rows"] == len(ex) > 0
    assert (ex.groupby("bp_id").split.nunique() == 1).all()
    assert pq.read_schema(next((tmp_path / "out" / "examples").rglob("part-*.parquet"))).equals(
        W.EXAMPLE_SCHEMA, check_metadata=False)
    rej = pd.read_parquet(tmp_path / "out" / "rejects.parquet")
    assert not (rej.reason == "internal").any(), rej[rej.reason == "internal"].detail.tolist()
    bps = pd.read_parquet(tmp_path / "out" / "blueprints.parquet")
    assert set(bps.url.str.startswith("https://github.com/")) == {True}  # provenance from MANIFEST.tsv
    for r in ex.itertuples():  # no entity is left with part of its footprint (splitters at the edge)
        for buf in (r.grid, r.start_grid):
            assert broken_footprint(np.frombuffer(buf, "<i2").reshape(r.grid_shape)) is None, r.example_id
    if HAVE_SIM:
        level1 = ex[ex.level == 1]
        assert (level1.reference_throughput > 0).all() and math.isfinite(level1.reference_throughput.sum())


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/blueprints is not there")
def test_tenth_of_the_shared_corpus_decodes_and_chunks_without_internal_errors(tmp_path):
    src = tmp_path / "tenth"
    src.mkdir()
    for i, p in enumerate(sorted(SHARED.rglob("*.txt"))[::10]):
        (src / f"{i:04d}-{p.name}").symlink_to(p)
    (src / "MANIFEST.tsv").symlink_to(SHARED / "MANIFEST.tsv")
    stats = R.run(R.RunConfig(out=str(tmp_path / "out"), blueprints=(str(src),), config=_config(tmp_path),
                              network=False, workers=2, progress=False))
    assert stats["rows"] > 1000
    assert not any(k.endswith("/internal") for k in stats["rejects_by_reason"])
