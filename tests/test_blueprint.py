"""Tests for factorion.core.blueprint: exchange-string codec, book flattening, 1.x → 2.0 normalisation."""

from __future__ import annotations

import base64
import copy
import csv
import json
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factorion.core.blueprint import (
    RENAMES_1_TO_2,
    Blueprint,
    BlueprintError,
    decode,
    encode,
    iter_blueprints,
    load_blueprints,
    make_blueprint,
    normalise_blueprint,
    parse_version,
    version_int,
)

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "blueprints"
V11 = version_int(1, 1, 110)
V20 = version_int(2, 0, 0)


def _b64(data: bytes) -> str:
    return "0" + base64.b64encode(data).decode()


def _bp(entities=None, version=V11, label=None, **extra) -> dict:
    bp = {"item": "blueprint", "version": version, **extra}
    if entities is not None:
        bp["entities"] = entities
    if label is not None:
        bp["label"] = label
    return bp


CONCRETE = {"name": "concrete", "position": {"x": 1, "y": 2}}
BELT = {"entity_number": 1, "name": "transport-belt", "position": {"x": 0.5, "y": 0.5}}


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty input"),
        ("   \n\t ", "empty input"),
        ("1eNpLSS0uUchPTy0uBgAZdQQN", "unsupported version byte '1'"),
        ("[1, 2]", "unsupported version byte"),
        ("0not*base64!", "bad base64"),
        ("0abc", "bad base64"),  # wrong padding
        (_b64(b"definitely not zlib"), "bad zlib"),
        (_b64(zlib.compress(b'{"blueprint": {}}')[:-6]), "bad zlib data: truncated"),
        (_b64(zlib.compress(b"{not json")), "not JSON"),
        (_b64(zlib.compress(b"\xff\xfe\x00garbage")), "not JSON"),
        ("{nope", "not JSON"),
        ('{"blueprint": ' + "[" * 100_000 + "]" * 100_000 + "}", "not JSON"),
        (_b64(zlib.compress(b"[1, 2, 3]")), "not a JSON object"),
        ('{"blueprint": {}, "extra": 1}', r"unknown top-level key \['extra'\]"),
        ('{"blueprints": {}}', "unknown top-level key"),
        ("{}", "unknown top-level key"),
    ],
)
def test_decode_rejects(text, match):
    with pytest.raises(BlueprintError, match=match):
        decode(text)


def test_blueprint_error_is_value_error():
    assert issubclass(BlueprintError, ValueError)
    with pytest.raises(BlueprintError, match="expected text"):
        decode(None)
    assert decode(encode({"blueprint": {}}).encode()) == {"blueprint": {}}  # bytes are fine


def test_too_large_plain_and_compressed():
    obj = make_blueprint([BELT] * 50)
    s = encode(obj)
    n = len(json.dumps(obj, separators=(",", ":")))
    assert decode(s, max_bytes=n) == obj  # exactly at the cap is fine
    with pytest.raises(BlueprintError, match="too large"):
        decode(s, max_bytes=n - 1)
    with pytest.raises(BlueprintError, match="too large"):
        decode(json.dumps(obj), max_bytes=100)


def test_zlib_bomb_fails_fast():
    comp = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    bomb = b"".join(comp.compress(chunk) for _ in range(200)) + comp.flush()  # 200 MiB of zeros
    text = _b64(bomb)
    assert len(text) < 1_000_000
    t0 = time.perf_counter()
    with pytest.raises(BlueprintError, match="too large"):
        decode(text, max_bytes=1 << 20)
    assert time.perf_counter() - t0 < 1.0  # stops at the cap instead of inflating 200 MiB
    with pytest.raises(BlueprintError, match="too large"):
        decode(text)  # the default 64 MiB cap holds too


@pytest.mark.parametrize(
    ("entity", "match"),
    [
        ({"entity_number": 7, "position": {"x": 0, "y": 0}}, r"index 1 \(entity_number 7\) has no name"),
        ({"entity_number": 7, "name": "pipe"}, r"index 1 \(entity_number 7\) has no position"),
        ({"entity_number": 7, "name": "pipe", "position": {"x": 1}}, "index 1 .* has no position"),
        ({"entity_number": 7, "name": "pipe", "position": [1, 2]}, "index 1 .* has no position"),
        ("pipe", r"index 1 \(entity_number None\) has no name"),
    ],
)
@pytest.mark.parametrize("normalise", [True, False])
@pytest.mark.parametrize("version", [V11, V20])
def test_entity_without_name_or_position(entity, match, normalise, version):
    obj = {"blueprint": _bp([BELT, entity], version=version)}
    with pytest.raises(BlueprintError, match=match):
        list(iter_blueprints(obj, normalise=normalise))
    with pytest.raises(BlueprintError, match=match):
        load_blueprints(encode(obj), normalise=normalise)


def test_entities_not_a_list():
    with pytest.raises(BlueprintError, match="'entities' is not a list"):
        normalise_blueprint(_bp({"1": BELT}))


# ----------------------------------------------------------------------------- round trip


def test_encode_decode_round_trip():
    obj = make_blueprint([BELT, {"name": "inserter", "position": {"x": 1.5, "y": 0.5}, "direction": 4}],
                         label="héllo ✓")
    s = encode(obj)
    assert s[0] == "0"
    assert decode(s) == obj
    assert decode("  \n" + s[:40] + "\n" + s[40:] + "\r\n") == obj  # whitespace, even line-wrapped
    assert decode(encode(obj, level=1)) == obj


def test_plain_json_input():
    obj = {"blueprint": _bp([BELT], version=V20, label="plain")}
    text = "\n  " + json.dumps(obj, indent=2) + "\n"
    assert decode(text) == obj
    [bp] = load_blueprints(text)
    assert bp.label == "plain" and bp.path == () and bp.version == (2, 0, 0, 0)
    assert bp.entities == [BELT]


def test_encode_rejects_unknown_top_level():
    with pytest.raises(BlueprintError, match="unknown top-level key"):
        encode({"bp": {}})


HALF_TILES = st.integers(-500, 500).map(lambda v: v / 2)
ENTITY = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["transport-belt", "inserter", "assembling-machine-2", "pipe", "ünïcode"]),
        "position": st.fixed_dictionaries({"x": HALF_TILES, "y": HALF_TILES}),
    },
    optional={
        "direction": st.integers(0, 15),
        "recipe": st.text(max_size=12),
        "type": st.sampled_from(["input", "output"]),
    },
)


@settings(max_examples=100, deadline=None)
@given(entities=st.lists(ENTITY, max_size=20), label=st.none() | st.text(max_size=20))
def test_round_trip_property(entities, label):
    obj = make_blueprint(entities, label=label)
    assert decode(encode(obj)) == obj
    [bp] = load_blueprints(encode(obj))
    assert bp.label == label
    assert [e["entity_number"] for e in bp.entities] == list(range(1, len(entities) + 1))
    assert [{k: v for k, v in e.items() if k != "entity_number"} for e in bp.entities] == entities


# ----------------------------------------------------------------------------- books


def _book(label, entries, version=V11):
    return {"blueprint_book": {"item": "blueprint-book", "label": label, "version": version,
                               "blueprints": entries, "active_index": 0}}


def test_nested_books_three_deep():
    inner = _book("inner", [
        {"index": 0, "blueprint": _bp([BELT], label="deep-a")},
        {"index": 5, "blueprint": _bp([], label="deep-b")},
        {"index": 6, "deconstruction_planner": {"item": "deconstruction-planner"}},
    ])
    middle = _book("middle", [
        {"index": 2, **inner},
        {"index": 3, "upgrade_planner": {"item": "upgrade-planner"}},
        {"index": 4, "blueprint": _bp(label="tiles-only", tiles=[CONCRETE])},
    ])
    outer = _book("outer", [
        {"blueprint": _bp([BELT], label="top")},  # no index: list position is used
        {"index": 9, **middle},
        {"index": 1, **_book("empty", [])},
    ])
    got = load_blueprints(encode(outer))
    assert [(b.label, b.path, b.book_labels) for b in got] == [
        ("top", (0,), ("outer",)),
        ("deep-a", (9, 2, 0), ("outer", "middle", "inner")),
        ("deep-b", (9, 2, 5), ("outer", "middle", "inner")),
        ("tiles-only", (9, 4), ("outer", "middle")),
    ]
    assert all(isinstance(b, Blueprint) for b in got)
    assert got[3].entities == [] and got[3].raw["tiles"][0]["name"] == "concrete"
    assert got[2].entities == []


def test_planners_and_book_version_inheritance():
    assert list(iter_blueprints({"upgrade_planner": {"item": "upgrade-planner"}})) == []
    assert list(iter_blueprints({"deconstruction_planner": {}})) == []
    # A blueprint without its own version takes its book's.
    bp = {"item": "blueprint", "entities": [{**BELT, "direction": 2}]}
    [b] = iter_blueprints(_book("b", [{"index": 0, "blueprint": bp}], version=V11))
    assert b.version == (1, 1, 110, 0) and b.entities[0]["direction"] == 4
    [b] = iter_blueprints(_book("b", [{"index": 0, "blueprint": bp}], version=V20))
    assert b.version == (2, 0, 0, 0) and b.entities[0]["direction"] == 2


def test_iter_rejects_unknown_top_level():
    with pytest.raises(BlueprintError, match="unknown top-level key"):
        list(iter_blueprints({"nope": {}}))


# ----------------------------------------------------------------------------- normalisation


def test_normalise_1_1():
    ents = [
        {"entity_number": 1, "name": "stack-inserter", "position": {"x": 0.5, "y": 0.5}, "direction": 2},
        {"entity_number": 2, "name": "stack-filter-inserter", "position": {"x": 1.5, "y": 0.5},
         "direction": 6},
        {"entity_number": 3, "name": "filter-inserter", "position": {"x": 2.5, "y": 0.5}, "direction": 4},
        {"entity_number": 4, "name": "logistic-chest-requester", "position": {"x": 3.5, "y": 0.5},
         "request_filters": [{"index": 1, "name": "iron-plate", "count": 100}]},
        {"entity_number": 5, "name": "straight-rail", "position": {"x": 6, "y": 6}, "direction": 1},
        {"entity_number": 6, "name": "express-underground-belt", "position": {"x": 4.5, "y": 0.5},
         "direction": 2, "type": "input"},
        {"entity_number": 7, "name": "assembling-machine-2", "position": {"x": 8.5, "y": 8.5},
         "recipe": "iron-gear-wheel"},
        {"entity_number": 8, "name": "transport-belt", "position": {"x": 5.5, "y": 0.5}},
    ]
    bp = _bp(ents, tiles=[{"name": "stone-path", "position": {"x": 0, "y": 0}}])
    before = copy.deepcopy(bp)
    out = normalise_blueprint(bp)
    assert bp == before  # input untouched
    assert out["version"] == V20
    got = [(e["name"], e.get("direction")) for e in out["entities"]]
    assert got == [
        ("bulk-inserter", 4),
        ("bulk-inserter", 12),
        ("fast-inserter", 8),
        ("requester-chest", None),
        ("legacy-straight-rail", 2),
        ("express-underground-belt", 4),
        ("assembling-machine-2", None),
        ("transport-belt", None),  # absent direction (north) stays absent
    ]
    assert out["entities"][5]["type"] == "input"
    assert out["entities"][6]["recipe"] == "iron-gear-wheel"
    assert out["entities"][3]["request_filters"] == ents[3]["request_filters"]
    assert out["tiles"] == bp["tiles"] and "direction" not in out["tiles"][0]
    assert normalise_blueprint(out) == out  # idempotent: re-stamped 2.0
    out["entities"][0]["name"] = "changed"
    assert bp["entities"][0]["name"] == "stack-inserter"


@pytest.mark.parametrize("old", sorted(RENAMES_1_TO_2))
def test_every_rename(old):
    [b] = load_blueprints(encode({"blueprint": _bp([{**BELT, "name": old}])}))
    assert b.entities[0]["name"] == RENAMES_1_TO_2[old]
    [b] = load_blueprints(encode({"blueprint": _bp([{**BELT, "name": old}])}), normalise=False)
    assert b.entities[0]["name"] == old


@pytest.mark.parametrize("version", [version_int(0, 17, 79), version_int(0, 15, 40), version_int(1, 0, 0)])
def test_old_versions_are_normalised(version):
    out = normalise_blueprint(_bp([{**BELT, "direction": 6}], version=version))
    assert out["entities"][0]["direction"] == 12 and out["version"] == V20


def test_2_0_unchanged():
    ents = [{"entity_number": 1, "name": "stack-inserter", "position": {"x": 0.5, "y": 0.5}, "direction": 6}]
    bp = _bp(ents, version=version_int(2, 0, 28), wires=[[1, 1, 2, 1]])
    assert normalise_blueprint(bp) == bp
    assert normalise_blueprint(bp) is not bp
    assert normalise_blueprint(_bp([BELT], version=None)) == _bp([BELT], version=None)  # no version: as 2.0


def test_tiles_only_blueprint():
    [b] = load_blueprints(encode({"blueprint": _bp(tiles=[CONCRETE])}))
    assert b.entities == [] and "entities" not in b.raw


def test_make_blueprint():
    src = [{"entity_number": 99, "name": "pipe", "position": {"x": 0.5, "y": 0.5}}, BELT]
    obj = make_blueprint(src, label="L", icons=[{"index": 1, "signal": {"name": "pipe"}}])
    bp = obj["blueprint"]
    assert bp["item"] == "blueprint" and bp["label"] == "L" and bp["version"] == V20
    assert [e["entity_number"] for e in bp["entities"]] == [1, 2]
    assert src[0]["entity_number"] == 99  # input untouched
    assert bp["icons"][0]["signal"]["name"] == "pipe"
    assert "label" not in make_blueprint([])["blueprint"]
    assert make_blueprint([], version=(1, 1, 110, 0))["blueprint"]["version"] == V11
    with pytest.raises(BlueprintError, match="has no position"):
        make_blueprint([{"name": "pipe"}])


# ----------------------------------------------------------------------------- versions


def test_versions():
    assert version_int(1, 1, 110) == 281479278886912
    assert parse_version(281479278886912) == (1, 1, 110, 0)
    assert parse_version(version_int(2, 0, 28, 3)) == (2, 0, 28, 3)
    assert version_int(2, 0, 0) == 2 << 48
    for bad in (-1, 1 << 64, "1.1", 1.5, True):
        with pytest.raises(BlueprintError, match="bad version"):
            parse_version(bad)
    with pytest.raises(BlueprintError, match="out of range"):
        version_int(1, 1 << 16, 0)


# ----------------------------------------------------------------------------- real corpus


def _manifest() -> dict[Path, dict]:
    """MANIFEST.tsv rows keyed by file: <source with / → __>/<sha256[:16]>.txt."""
    with open(CORPUS / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {CORPUS / r["source"].replace("/", "__") / f"{r['sha256'][:16]}.txt": r for r in rows}


def test_corpus_all_files_decode():
    """Every shared blueprint string decodes, and blueprint/entity counts match MANIFEST.tsv."""
    if not CORPUS.is_dir():
        pytest.skip(f"blueprint corpus not present at {CORPUS}")
    files = sorted(CORPUS.glob("*/*.txt"))
    if not files:
        pytest.skip(f"no blueprint files under {CORPUS}")
    manifest = _manifest() if (CORPUS / "MANIFEST.tsv").is_file() else {}
    mismatches, n_bp = [], 0
    for path in files:
        try:
            bps = load_blueprints(path.read_text(encoding="utf-8"))
        except BlueprintError as e:
            pytest.fail(f"{path.relative_to(CORPUS)}: {e}")
        n_bp += len(bps)
        for b in bps:
            assert b.raw.get("version", V20) == V20  # everything normalised to 2.0
        row = manifest.get(path)
        if row is not None:
            got = (len(bps), sum(len(b.entities) for b in bps))
            want = (int(row["blueprints"]), int(row["entities"]))
            if got != want:
                mismatches.append((str(path.relative_to(CORPUS)), want, got))
    assert not mismatches, mismatches[:10]
    assert n_bp > 0
    if manifest:
        assert len(files) == len(manifest)
