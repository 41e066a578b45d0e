"""Hostile input and faults (issue 16): every row of docs/reliability.md is a test here or in
tests/test_download.py. Each case ends in a one-line error or a recorded reject, within bounded memory,
and no run loses a good dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from factorion.cli import main
from factorion.core import blueprint_world as BW
from factorion.core.blueprint import BlueprintError, decode, encode, load_blueprints, make_blueprint
from factorion.core.render import MAX_PX, render_png
from factorion.core.world import World, WorldError, check_size, max_cells, set_max_cells
from pipeline import run as R
from pipeline import write as W

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "blueprints"
PY = sys.executable
BELT = {"name": "transport-belt", "position": {"x": 0.5, "y": 0.5}}


def bp_text(*entities: dict, **extra) -> str:
    """Plain JSON (so NaN / Infinity / wrong types survive) of a blueprint holding ``entities``."""
    ents = [{"entity_number": i, **e} for i, e in enumerate(entities, 1)]
    return json.dumps({"blueprint": {"item": "blueprint", "entities": ents, **extra}})


def one_line_error(capsys, argv: list[str], code: int = 1, match: str = "") -> str:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == code, (rc, err)
    assert err.startswith("factorion: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and match in err, err
    return err


# --------------------------------------------------------------------------- 1. world size
FAR = [("2e8", "blueprint of 1x200000001 tiles"), ("1e9", "blueprint of 1x1000000001 tiles")]


@pytest.mark.parametrize("x, extent", FAR)
@pytest.mark.parametrize("cmd", [["throughput"], ["render", "--text"], ["render", "-o", "x.png"]])
def test_far_entity_is_refused_naming_its_extent(capsys, tmp_path, monkeypatch, x, extent, cmd):
    monkeypatch.chdir(tmp_path)
    text = bp_text(BELT, {"name": "transport-belt", "position": {"x": float(x), "y": 0.5}})
    assert len(text) < 250
    one_line_error(capsys, [cmd[0], text, *cmd[1:]], match=extent)
    assert not (tmp_path / "x.png").exists()


def test_snap_to_grid_and_window_over_the_limit(capsys):
    empty = bp_text(**{"snap-to-grid": {"x": 100000, "y": 100000}})
    one_line_error(capsys, ["render", empty, "--text"], match="world of 100000x100000 tiles")
    with_entity = bp_text(BELT, **{"snap-to-grid": {"x": 100000, "y": 100000}})
    one_line_error(capsys, ["throughput", with_entity], match="100000x100000")
    one_line_error(capsys, ["throughput", bp_text(BELT), "--window", "0,0,100000,100000"],
                   match="window of 100000x100000 tiles")
    one_line_error(capsys, ["render", bp_text(**{"snap-to-grid": {"x": "a", "y": 2}}), "--text"],
                   match="snap-to-grid")


def test_the_limit_is_a_flag_and_an_environment_variable(capsys):
    text = bp_text(BELT, {"name": "transport-belt", "position": {"x": 1500.5, "y": 0.5}})
    assert main(["throughput", text]) == 0  # 1x1501 cells: far under the 1M-cell limit
    wide = bp_text(BELT, {"name": "transport-belt", "position": {"x": 0.5, "y": 1100.5}},
                   {"name": "transport-belt", "position": {"x": 1100.5, "y": 0.5}})
    capsys.readouterr()
    one_line_error(capsys, ["throughput", wide], match="1101x1101 tiles (1,212,201 cells)")
    assert main(["throughput", wide, "--max-cells", "2000000"]) == 0
    assert max_cells() == 1024 * 1024  # the flag does not outlive the command
    env = {**os.environ, "FACTORION_MAX_CELLS": "10"}
    r = subprocess.run([PY, "-m", "factorion.cli", "throughput", bp_text(BELT, {**BELT, "position": {
        "x": 20.5, "y": 0.5}})], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "over the limit of 10 cells" in r.stderr and r.stderr.count("\n") == 1


def test_world_size_checked_before_allocation():
    with pytest.raises(WorldError, match="100000x100000"):
        World(100_000, 100_000)
    with pytest.raises(WorldError, match="must be positive"):
        check_size(0, 5)
    old = set_max_cells(4)
    try:
        with pytest.raises(WorldError, match="over the limit of 4 cells"):
            World(3, 2)
    finally:
        set_max_cells(old)


def test_big_world_pictures_are_downscaled(tmp_path):
    w = World(8, 100_000)
    w.place("transport-belt", 0, 0)
    img = render_png(w, tmp_path / "w.png", cell=24, title="wide")
    assert img.shape[1] <= MAX_PX and img.shape[0] < 100
    w = World(1000, 1000)
    img = render_png(w, cell=24)
    assert img.shape[:2] == (MAX_PX // 1000 * 1000,) * 2  # 4 px per cell, not 24


def test_build_of_a_huge_spec_is_refused_at_once(capsys, tmp_path):
    spec = tmp_path / "big.txt"
    spec.write_text("size 2000 2000\nsource 0 0 iron-plate\nsink 0 5 iron-plate\n")
    t = time.perf_counter()
    one_line_error(capsys, ["build", str(spec), "-o", str(tmp_path / "b.png")], match="2000x2000 tiles")
    assert time.perf_counter() - t < 30


# --------------------------------------------------------------------------- 2. malformed values
MALFORMED = [
    ({**BELT, "direction": "north"}, "direction 'north'"),
    ({**BELT, "direction": 99}, "direction 99"),
    ({"name": "assembling-machine-1", "position": {"x": 1.5, "y": 1.5}, "recipe": ["iron-gear-wheel"]},
     "recipe ['iron-gear-wheel']"),
    ({"name": "infinity-chest", "position": {"x": 0.5, "y": 0.5}, "tags": ["factorion"]}, "tags"),
    ({"name": "infinity-chest", "position": {"x": 0.5, "y": 0.5}, "infinity_settings": {"filters": ["x"]}},
     "infinity filter 'x'"),
    ({"name": "infinity-chest", "position": {"x": 0.5, "y": 0.5}, "infinity_settings": {"filters": [
        {"name": "iron-plate", "mode": "at-least", "count": "many"}]}}, "count 'many'"),
    ({"name": "transport-belt", "position": {"x": float("nan"), "y": 0.5}}, "position.x nan"),
    ({"name": "transport-belt", "position": {"x": float("inf"), "y": 0.5}}, "position.x inf"),
    ({"name": "transport-belt", "position": {"x": 1e300, "y": 0.5}}, "position.x 1e+300"),
    ({"name": "transport-belt", "position": {"x": 10 ** 400, "y": 0.5}}, "position.x 1000"),
    ({"name": "transport-belt", "position": {"x": 0.5, "y": True}}, "no position"),
    ({"name": 5, "position": {"x": 0.5, "y": 0.5}}, "has no name"),
]


@pytest.mark.parametrize("entity, field", MALFORMED, ids=[m[1] for m in MALFORMED])
@pytest.mark.parametrize("cmd", ["inspect", "throughput"])
def test_malformed_entity_fields_name_the_field(capsys, entity, field, cmd):
    err = one_line_error(capsys, [cmd, bp_text(BELT, entity)], match=field)
    assert "entity at index 1" in err and "overlap" not in err


def test_malformed_source_rate_and_book(capsys):
    f = {"index": 1, "name": "iron-plate", "mode": "at-least", "count": 100}
    src = {"name": "infinity-chest", "position": {"x": 0.5, "y": 0.5}, "infinity_settings": {"filters": [f]}}
    for rate, shown in (("fast", "'fast'"), (float("nan"), "nan"), (-5, "-5"), (0, "0")):
        text = bp_text({**src, "tags": {"factorion": "source", "rate": rate}})
        one_line_error(capsys, ["throughput", text], match=f"tags.rate {shown} is not a finite number > 0")
    one_line_error(capsys, ["inspect", json.dumps({"blueprint_book": {"blueprints": 5}})],
                   match="has blueprints 5: expected a list")
    one_line_error(capsys, ["inspect", json.dumps({"blueprint": {"label": ["x"], "entities": []}})],
                   match="label ['x']")
    one_line_error(capsys, ["inspect", '{"blueprint": ' + "[" * 5000 + "]" * 5000 + "}"], match="not JSON")


def test_the_game_accepts_nothing_else_either():
    with pytest.raises(BlueprintError, match="position.y nan"):
        make_blueprint([{"name": "transport-belt", "position": {"x": 0.5, "y": float("nan")}}])
    bp = BW.to_blueprint(World(1, 1))
    bp["blueprint"]["tags"] = {"rate": float("nan")}
    with pytest.raises(BlueprintError, match="cannot export: Out of range float values"):
        encode(bp)


def test_closed_stdin_is_one_line():
    r = subprocess.run(["bash", "-c", f"{PY} -m factorion.cli inspect - <&-"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and r.stderr == "factorion: error: cannot read standard input (is it closed?)\n"


# --------------------------------------------------------------------------- 6. real strings
def test_a_string_copied_out_of_a_book_keeps_its_index():
    obj = {"blueprint": {"entities": [{"entity_number": 1, **BELT}]}, "index": 8}
    assert len(load_blueprints(json.dumps(obj))) == 1
    assert len(load_blueprints(encode({"blueprint": obj["blueprint"]}))) == 1
    for bad in ({"index": 8}, {"index": 8, "extra": 1, "blueprint": {}}):
        with pytest.raises(BlueprintError, match="unknown top-level key"):
            decode(json.dumps(bad))


# --------------------------------------------------------------------------- 3. build accepts no nonsense
SPEC = "size 5 7\nsource 2 0 iron-plate{rate}\nsink 2 6 iron-plate\n"


@pytest.mark.parametrize("flag, value", [("--budget", v) for v in ("0", "-5", "nan", "inf", "soon")]
                         + [("--samples", "0"), ("--samples", "1000000000"), ("--seed", str(10 ** 30))])
def test_build_budget_samples_and_seed_must_be_sane(capsys, tmp_path, flag, value):
    spec = tmp_path / "t.txt"
    spec.write_text(SPEC.format(rate=""))
    one_line_error(capsys, ["build", str(spec), flag, value], code=2, match=flag)


@pytest.mark.parametrize("rate", ["nan", "inf", "-5", "0"])
def test_build_rates_must_be_finite_and_positive(capsys, tmp_path, rate):
    spec = tmp_path / "t.txt"
    spec.write_text(SPEC.format(rate=f" {rate}"))
    one_line_error(capsys, ["build", str(spec)], match=f"rate '{rate}' is not a finite number > 0")


def test_build_prints_and_writes_the_string_before_the_picture(capsys, tmp_path):
    spec = tmp_path / "t.txt"
    spec.write_text(SPEC.format(rate=" 7.5"))
    out = tmp_path / "s.txt"
    png = tmp_path / "a-folder"  # the picture cannot replace a folder: the string is out already
    png.mkdir()
    rc = main(["build", str(spec), "--budget", "0.5", "-o", str(png), "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert rc == 1 and err.count("\n") == 1 and "Is a directory" in err
    string = out.read_text().strip()
    assert string.startswith("0e") and string in stdout.splitlines()
    bp = load_blueprints(string)[0].raw
    rates = [e["tags"]["rate"] for e in bp["entities"] if "rate" in e.get("tags", {})]
    assert rates == [7.5]


@pytest.mark.parametrize("kind", ["truncated", "text", "not-a-checkpoint"])
def test_bad_checkpoint_is_one_line(capsys, tmp_path, kind):
    import torch
    ckpt = tmp_path / "p.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(64)}, "config": {"x": 1}}, ckpt)
    if kind == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:200])
    elif kind == "text":
        ckpt.write_text("hello, not a checkpoint\n")
    spec = tmp_path / "t.txt"
    spec.write_text(SPEC.format(rate=""))
    one_line_error(capsys, ["build", str(spec), "--checkpoint", str(ckpt), "--budget", "0.5"],
                   match="cannot load checkpoint")


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file when unpickled


def test_a_malicious_pickle_checkpoint_is_refused(capsys, tmp_path):
    import pickle
    import zipfile
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.ckpt"
    with zipfile.ZipFile(ckpt, "w") as z:  # torch's zip layout, holding a pickle that runs code
        z.writestr("evil/data.pkl", pickle.dumps({"state_dict": _Evil(str(marker))}))
        z.writestr("evil/version", "3\n")
    spec = tmp_path / "t.txt"
    spec.write_text(SPEC.format(rate=""))
    one_line_error(capsys, ["build", str(spec), "--checkpoint", str(ckpt), "--budget", "0.5"],
                   match="cannot load checkpoint")
    assert not marker.exists()


# --------------------------------------------------------------------------- memory of every "Found" case
def test_every_found_case_stays_under_a_gigabyte(tmp_path):
    """All the oversized inputs of issue 16 in one process: each a one-line error, peak RSS < 1 GB."""
    far = bp_text(BELT, {"name": "transport-belt", "position": {"x": 2e8, "y": 0.5}})
    spec = tmp_path / "big.txt"
    spec.write_text("size 2000 2000\nsource 0 0 iron-plate\nsink 0 5 iron-plate\n")
    cases = [["throughput", far], ["render", far, "--text"], ["render", far, "-o", str(tmp_path / "a.png")],
             ["throughput", bp_text(BELT, {**BELT, "position": {"x": 1e9, "y": 0.5}})],
             ["render", bp_text(**{"snap-to-grid": {"x": 100000, "y": 100000}}), "--text"],
             ["throughput", bp_text(BELT), "--window", "0,0,100000,100000"],
             ["build", str(spec), "-o", str(tmp_path / "b.png")]]
    script = textwrap.dedent("""
        import contextlib, io, json, sys
        sys.path.insert(0, "tests")
        from hostile_fuzz import peak_rss_kib  # this process's own peak (VmHWM)
        from factorion.cli import main
        res = []
        for argv in json.loads(sys.argv[1]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                res.append((main(argv), err.getvalue()))
        print(json.dumps({"res": res, "kib": peak_rss_kib()}))
    """)
    r = subprocess.run([PY, "-c", script, json.dumps(cases)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    got = json.loads(r.stdout.strip().splitlines()[-1])
    for (code, err), argv in zip(got["res"], cases, strict=True):
        assert code == 1 and err.count("\n") == 1 and "over the limit" in err, (argv[0], err)
    assert got["kib"] < 1024 * 1024, got["kib"]


# --------------------------------------------------------------------------- property test
def _fuzz_bases() -> list[str]:
    if not SHARED.is_dir():
        return []
    small = sorted(p for p in SHARED.rglob("*.txt") if p.stat().st_size < 3000)
    return [str(p) for p in small[37:40]]  # three small real blueprints, the same ones every run


def test_mutated_real_blueprints_never_crash_any_command():
    """Hypothesis (derandomised, 400 examples) mutates real blueprint JSON and runs every command:
    exit 0, or 1 with one error line, never a traceback; the whole process under 1 GB."""
    r = subprocess.run([PY, str(ROOT / "tests" / "hostile_fuzz.py"), "400", *_fuzz_bases()], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["examples"] == 400 and got["codes"].get("1", 0) > 100 and got["codes"].get("0", 0) > 0
    assert got["maxrss_kib"] < 1024 * 1024


# --------------------------------------------------------------------------- 4. datasets
def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    w = World(3, 20)
    w.place("assembling-machine-2", 0, 0, recipe="iron-gear-wheel")
    w.place("inserter", 1, 3, direction=3)
    for x in range(4, 20):
        w.place("transport-belt", 1, x, direction=1)
    (folder / "line.txt").write_text(BW.to_string(w, "line"))
    return folder


def _rc(tmp_path: Path, folder: Path, **kw) -> R.RunConfig:
    cfg = tmp_path / "sources.toml"
    cfg.write_text(f'[download]\ncache_dir = "{tmp_path / "cache"}"\n')
    return R.RunConfig(out=str(tmp_path / "out"), blueprints=(str(folder),), config=str(cfg), network=False,
                       workers=1, progress=False, **kw)


def _snapshot(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_run_without_records_keeps_the_previous_dataset(tmp_path):
    good = R.run(_rc(tmp_path, _corpus(tmp_path / "bps")))
    assert good["rows"] > 0
    before = _snapshot(tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(R.RunError, match="no blueprint strings"):
        R.run(_rc(tmp_path, tmp_path / "empty"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "bad.txt").write_text("0eJzLSM3JyQcABiwCFQ==garbage")
    (tmp_path / "junk" / "dir.txt").mkdir()  # a folder named *.txt: a reject, not an abort
    with pytest.raises(R.RunError, match="gave no examples"):
        R.run(_rc(tmp_path, tmp_path / "junk"))
    assert _snapshot(tmp_path / "out") == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_a_far_entity_is_a_recorded_reject_in_the_pipeline(tmp_path):
    import pandas as pd
    folder = _corpus(tmp_path / "bps")
    far = {"name": "transport-belt", "position": {"x": 2e8, "y": 0.5}}
    (folder / "far.txt").write_text(bp_text(BELT, far))
    stats = R.run(_rc(tmp_path, folder))
    assert stats["rows"] > 0
    rej = pd.read_parquet(tmp_path / "out" / "rejects.parquet")
    far = rej[rej.key == "far.txt"]
    assert far.reason.tolist() == ["rasterise"] and "1x200000001 tiles" in far.detail.iloc[0]


@pytest.mark.parametrize("direction, ok", [({}, False), ([1], False), ("north", False), (1.5, False),
                                            (None, True), (3, True)])
def test_a_malformed_1_1_direction_is_a_decode_reject_not_an_abort(capsys, direction, ok):
    """1.x directions are doubled while decoding: a value that cannot be doubled used to stop the run."""
    from pipeline.decode import decode_record
    text = json.dumps({"blueprint": {"version": (1 << 48) | (1 << 32), "entities": [
        {"entity_number": 1, **BELT, "direction": direction}]}})
    bps, rejects = decode_record(text, "s", "k")
    assert (len(bps), len(rejects)) == ((1, 0) if ok else (0, 1))
    if not ok:
        assert rejects[0].stage == "decode" and f"direction {direction!r}" in rejects[0].detail
        one_line_error(capsys, ["inspect", text], match="direction")
    else:
        assert main(["inspect", text]) == 0


def test_pipeline_max_cells_flag(tmp_path):
    old = max_cells()
    try:
        assert R.parse_args(["--max-cells", "4000000", "--sizes", "1500"]).chunk.sizes == (1500,)
        assert max_cells() == 4_000_000
    finally:
        set_max_cells(old)


def test_the_output_folder_is_replaced_whole(tmp_path):
    R.run(_rc(tmp_path, _corpus(tmp_path / "bps")))
    out = tmp_path / "out"
    assert (out / "samples.png").exists()
    R.run(_rc(tmp_path, tmp_path / "bps", n_samples=0))  # no samples.png this time
    assert not (out / "samples.png").exists()  # nothing of the old run is left beside the new one
    assert json.loads((out / "stats.json").read_text())["rows"] > 0


def test_cli_failures_are_one_line_and_exit_non_zero(tmp_path, capsys):
    for argv in (["--limit", "-1"], ["--limit", "0"], ["--workers", "0"], ["--sizes", "abc"],
                 ["--sizes", "5000"], ["--split", "nan,0,1"], ["--max-cells", "0"]):
        with pytest.raises(SystemExit) as e:
            R.parse_args(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("python -m pipeline.run: error: ")
    (tmp_path / "empty").mkdir()
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[download]\ncache_dir = "{tmp_path / "cache"}"\n')
    rc = R.main(["--out", str(tmp_path / "o"), "--config", str(cfg), "--no-network", "--blueprints",
                 str(tmp_path / "empty"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "no blueprint strings" in err.splitlines()[-1] and "Traceback" not in err


def test_out_that_is_not_a_dataset_is_refused(tmp_path):
    home = tmp_path / "out"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not a dataset"):
        R.run(_rc(tmp_path, _corpus(tmp_path / "bps")))
    assert (home / "thesis.tex").read_text() == "precious"


def _dead_pid() -> int:
    p = subprocess.Popen([PY, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_staging_is_removed_and_a_dataset_set_aside_is_restored(tmp_path):
    out = tmp_path / "out"
    pid = _dead_pid()
    (tmp_path / f".out.staging-{pid}" / "examples").mkdir(parents=True)
    old = tmp_path / f".out.old-{pid}"
    old.mkdir()
    (old / "stats.json").write_text("{}")
    live = tmp_path / f".out.staging-{os.getpid()}"  # a run still going: left alone
    live.mkdir()
    W.prepare_out(out)
    assert (out / "stats.json").read_text() == "{}"  # killed between the two renames: put back
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live.name])


def test_swap_in_exchanges_whole_folders(tmp_path):
    final, staged = tmp_path / "final", tmp_path / "staged"
    final.mkdir()
    (final / "old.txt").write_text("old")
    staged.mkdir()
    (staged / "new.txt").write_text("new")
    W.swap_in(staged, final)
    assert [p.name for p in final.iterdir()] == ["new.txt"] and not staged.exists()


WORKERS = """
import os, sys, time
sys.path.insert(0, {root!r})
from pipeline.run import ordered_map

def task(i):
    open(os.path.join({folder!r}, str(os.getpid())), "w").close()
    time.sleep(600)

def init():
    pass

for _ in ordered_map(task, range(8), 2, 4, init, ()):
    pass
"""


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    folder = tmp_path / "pids"
    folder.mkdir()
    parent = subprocess.Popen([PY, "-c", WORKERS.format(root=str(ROOT), folder=str(folder))])
    try:
        deadline = time.monotonic() + 60
        while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = [int(p.name) for p in folder.iterdir()]
        assert len(pids) == 2, "the workers did not start"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 15
    while any(W.pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [p for p in pids if W.pid_alive(p)]
    for p in alive:  # do not leave them behind whatever happens
        os.kill(p, signal.SIGKILL)
    assert alive == []
