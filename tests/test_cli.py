"""The command line: inspect, render, throughput, and one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from PIL import Image
from worlds import hand_world  # noqa: E402

from factorion.cli import main, read_input
from factorion.core import blueprint_world as BW
from factorion.core.blueprint import encode, make_blueprint
from factorion.core.render import render_text

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "blueprints"


@pytest.fixture
def string() -> str:
    return BW.to_string(hand_world(), label="hand made")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, expect_code: int = 1, match: str = "") -> None:
    assert code == expect_code
    assert err.startswith("factorion: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert match in err


# --------------------------------------------------------------------------- inspect


def test_inspect_string(capsys, string):
    code, out, err = run(capsys, "inspect", string)
    assert code == 0 and err == ""
    assert "game version: 2.0.0.0" in out
    assert "blueprints: 1" in out
    assert "'hand made'" in out
    assert "transport-belt" in out and "infinity-chest" in out and "small-electric-pole" in out
    assert "modelled entities: 7 (sources 1, sinks 1); obstacle cells: 1" in out
    assert "world size: 4x8" in out


def test_inspect_file_and_stdin(capsys, string, tmp_path, monkeypatch):
    f = tmp_path / "bp.txt"
    f.write_text(string + "\n")
    code, from_file, _ = run(capsys, "inspect", str(f))
    assert code == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(string))
    code, from_stdin, _ = run(capsys, "inspect", "-")
    assert code == 0 and from_stdin == from_file == run(capsys, "inspect", string)[1]


def test_inspect_book_lists_blueprints(capsys):
    bp = make_blueprint([{"name": "transport-belt", "position": {"x": 0.5, "y": 0.5}}], label="one")
    book = {"blueprint_book": {"item": "blueprint-book", "label": "bk", "blueprints": [
        {"index": 0, **bp}, {"index": 1, **make_blueprint([], label="empty")}]}}
    code, out, _ = run(capsys, "inspect", encode(book))
    assert code == 0
    assert "blueprints: 2" in out
    assert "[0] path 0  'bk / one': 1 entities, world 1x1" in out
    assert "[1] path 1  'bk / empty': 0 entities, world not rasterised" in out
    assert "not rasterised: [1] blueprint has no entities" in out


def test_read_input_kinds(tmp_path, string):
    assert read_input(string) == string
    assert read_input('  {"blueprint": {}}') == '  {"blueprint": {}}'
    f = tmp_path / "x.txt"
    f.write_text("\ufeff" + string)
    assert read_input(str(f)) == string


# --------------------------------------------------------------------------- render


def test_render_png(capsys, string, tmp_path):
    out = tmp_path / "w.png"
    code, stdout, err = run(capsys, "render", string, "-o", str(out))
    assert code == 0 and err == "" and "wrote" in stdout
    with Image.open(out) as im:
        assert im.size == (8 * 24, 4 * 24)
    code, _, _ = run(capsys, "render", string, "-o", str(out), "--cell", "10", "--title", "t")
    with Image.open(out) as im:
        assert im.size[0] == 80 and im.size[1] > 40


def test_render_text_matches_library(capsys, string):
    code, out, err = run(capsys, "render", string, "--text")
    assert code == 0 and err == ""
    w = BW.from_blueprint(json.loads(json.dumps(BW.to_blueprint(hand_world())))["blueprint"])
    assert out == render_text(w, key=True) + "\n"
    assert out.splitlines()[:4] == [
        "...↟Aaa.",
        "S>>>aaa.",
        "....aaa.",
        "#......K",
    ]


def test_render_window_and_index(capsys, string):
    code, out, _ = run(capsys, "render", string, "--text", "--window", "1,0,2,3", "--index", "-1")
    assert code == 0
    assert out.splitlines()[:2] == ["S>>", "..."]


# --------------------------------------------------------------------------- throughput


def test_throughput_uses_sim(capsys, string, monkeypatch):
    class Result:
        def report(self):
            return "throughput: 0.5 items/s"

        def to_dict(self):
            return {"throughput": 0.5}

    seen = []
    fake = types.ModuleType("factorion.sim")
    fake.simulate = lambda world: seen.append(world) or Result()
    monkeypatch.setitem(sys.modules, "factorion.sim", fake)
    code, out, _ = run(capsys, "throughput", string)
    assert code == 0 and out == "throughput: 0.5 items/s\n"
    assert seen[0].shape == (4, 8)
    code, out, _ = run(capsys, "throughput", string, "--json")
    assert code == 0 and json.loads(out) == {"throughput": 0.5}


def test_throughput_without_sim_is_one_line(capsys, string, monkeypatch):
    monkeypatch.setitem(sys.modules, "factorion.sim", None)  # import fails
    code, _, err = run(capsys, "throughput", string)
    assert_one_line_error(code, err, 1, "simulator is not available")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("arg, match", [
    ("", "empty input"),
    ("   ", "empty input"),
    ("0eNgarbage!!", "bad base64"),
    ("0eNq1kk1qwzAQRq8i", "bad"),
    ("{not json", "not JSON"),
    ('{"foo": 1}', "unknown top-level key"),
    ("no/such/file.txt", "no such file"),
])
def test_bad_input_one_line(capsys, arg, match):
    for cmd in ("inspect", "render", "throughput"):
        extra = ["--text"] if cmd == "render" else []
        code, out, err = run(capsys, cmd, arg, *extra)
        assert_one_line_error(code, err, 1, match)


def test_bad_files(capsys, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, _, err = run(capsys, "inspect", str(empty))
    assert_one_line_error(code, err, 1, "empty input")
    code, _, err = run(capsys, "inspect", str(tmp_path))
    assert_one_line_error(code, err, 1, "cannot read")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\xff\xfe garbage")
    code, _, err = run(capsys, "inspect", str(garbage))
    assert_one_line_error(code, err, 1)


def test_bad_usage_exits_2(capsys, string, tmp_path):
    for argv in ([], ["nope"], ["inspect"], ["inspect", string, "--bogus"], ["render", string],
                 ["render", string, "--text", "--window", "1,2"],
                 ["render", string, "--text", "--window", "0,0,0,3"],
                 ["render", string, "--text", "--cell", "x"]):
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, 2)


def test_other_failures_exit_1(capsys, string, tmp_path):
    code, _, err = run(capsys, "render", string, "--text", "--index", "5")
    assert_one_line_error(code, err, 1, "out of range")
    code, _, err = run(capsys, "render", string, "-o", str(tmp_path / "no" / "dir" / "x.png"))
    assert_one_line_error(code, err, 1, "No such file")
    planner = encode({"upgrade_planner": {"item": "upgrade-planner"}})
    code, _, err = run(capsys, "inspect", planner)
    assert_one_line_error(code, err, 1, "no blueprints")


def test_help_and_version(capsys):
    code, out, _ = run(capsys, "-h")
    assert code == 0 and "inspect" in out and "throughput" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("factorion ")


# --------------------------------------------------------------------------- console script


def test_console_script(string, tmp_path):
    exe = Path(sys.executable).with_name("factorion")
    if not exe.exists():
        pytest.skip("console script not installed (pip install -e .)")
    r = subprocess.run([str(exe), "render", "-", "--text"], input=string, capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1] == "S>>>aaa."
    r = subprocess.run([str(exe), "inspect", "garbage-that-is-not-a-file"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("factorion: error: ") and r.stderr.count("\n") == 1


# --------------------------------------------------------------------------- real blueprints


def _corpus_file() -> Path:
    files = sorted(SHARED.glob("**/*.txt")) if SHARED.is_dir() else []
    if not files:
        pytest.skip("no shared blueprint corpus")
    return min(files[:50], key=lambda p: p.stat().st_size)  # a small one, picked deterministically


def test_real_blueprint_smoke(capsys, tmp_path):
    f = _corpus_file()
    code, out, err = run(capsys, "inspect", str(f))
    assert code == 0, err
    assert "blueprints:" in out and "entities by name" in out
    code, out, err = run(capsys, "render", str(f), "-o", str(tmp_path / "real.png"), "--window", "0,0,32,32")
    if code == 1 and "overlap" in err:  # rasterising refused this one: still a clean one-line error
        assert_one_line_error(code, err, 1)
        return
    assert code == 0, err
    with Image.open(tmp_path / "real.png") as im:
        assert im.size == (32 * 24, 32 * 24)
