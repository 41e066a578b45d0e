"""make evaluate and factorion build, on tiny settings (no checkpoint: the baselines)."""

from __future__ import annotations

import numpy as np
import pytest

from factorion.build import build, infer_task, parse_spec, validate_export
from factorion.cli import main
from factorion.core import blueprint_world as BW
from factorion.core.blueprint import load_blueprints
from factorion.core.world import WorldError
from factorion.evaluate import EvalConfig, evaluate, mined_tasks, summary, write_report
from factorion.sim import throughput

SPEC = """size 9 9
source 4 0 iron-plate
sink 4 8 iron-gear-wheel
obstacle 1 3 2 2
"""


def test_parse_spec_and_errors():
    w = parse_spec(SPEC)
    assert w.shape == (9, 9)
    assert w.counts()["source"] == 1 and w.counts()["obstacle"] == 4
    with pytest.raises(WorldError, match="size H W"):
        parse_spec("source 1 1 iron-plate")
    with pytest.raises(WorldError, match="line 2"):
        parse_spec("size 5 5\nsource 1 iron-plate")
    with pytest.raises(WorldError, match="unknown keyword"):
        parse_spec("size 5 5\nlamp 1 1")


def test_infer_task_families():
    assert infer_task(parse_spec(SPEC)).family == "assembler1"
    assert infer_task(parse_spec(SPEC)).recipes == ("iron-gear-wheel",)
    belt = parse_spec("size 5 5\nsource 0 0 iron-plate\nsink 4 4 iron-plate")
    assert infer_task(belt).family == "belt"
    smelt = parse_spec("size 7 7\nsource 0 0 iron-ore\nsink 6 6 iron-plate")
    assert infer_task(smelt).family == "smelting"
    tree = parse_spec("size 11 11\nsource 0 0 copper-plate\nsource 10 0 iron-plate\n"
                      "sink 5 10 electronic-circuit")
    t = infer_task(tree)
    assert t.family == "tree2" and t.recipes == ("copper-cable", "electronic-circuit")
    with pytest.raises(WorldError, match="no recipe chain"):
        infer_task(parse_spec("size 5 5\nsource 0 0 iron-plate\nsink 4 4 rocket-part"))


def test_build_gives_a_working_factory_the_game_loads():
    r = build(parse_spec(SPEC), budget_s=1.0)
    assert r.throughput > 0 and throughput(r.world) == pytest.approx(r.throughput)
    assert validate_export(r.blueprint) == []
    assert BW.from_blueprint(load_blueprints(r.blueprint)[0].raw) == r.world


def test_build_without_the_scale_out_search():
    """scale_out=False leaves the scale-out search out (its candidate wins this task otherwise)."""
    from factorion.tasks.levels import make_task
    task = make_task("smelting", 5, size=7, seed=3)
    full, bare = build(task, budget_s=2.0), build(task, budget_s=2.0, scale_out=False)
    assert full.method.startswith("scale-out") and not bare.method.startswith("scale-out")
    assert bare.throughput > 0 and bare.note == ""


def test_build_cli(tmp_path, capsys):
    spec = tmp_path / "task.txt"
    spec.write_text(SPEC)
    png = tmp_path / "b.png"
    assert main(["build", str(spec), "--budget", "1", "-o", str(png)]) == 0
    out = capsys.readouterr().out
    assert "throughput:" in out and "loads it cleanly" in out and png.exists()
    assert main(["build", str(spec), "--budget", "1", "-o", str(png), "--no-scale-out"]) == 0
    assert "scale-out: off" in capsys.readouterr().out
    assert main(["build", str(tmp_path / "nope.txt")]) == 1


def test_evaluate_tiny_report(tmp_path):
    cfg = EvalConfig(sizes=(7,), levels=(1, 5), families=("belt", "assembler1"), n_seeds=1, n_mined=0,
                     out=str(tmp_path / "eval"), planner_budget_s=0.5)
    df, builds = evaluate(cfg, progress=False)
    assert set(df.agent) == {"random", "planner"} and len(df) == 2 * 2 * 2
    s = summary(df)
    assert s.loc["planner", "ratio"] > s.loc["random", "ratio"]
    # sources are capped at the reference's draw: nothing beats the reference
    assert (df.ratio <= 1 + 1e-6).all()
    report = write_report(df, builds, cfg)
    text = report.read_text()
    assert "| planner |" in text and (tmp_path / "eval" / "bars.png").exists()
    assert (tmp_path / "eval" / "best_worst.png").exists() and (tmp_path / "eval" / "results.csv").exists()


def test_mined_windows_come_from_val_when_the_test_split_is_empty(tmp_path):
    """The embedded sample's 21 blueprints leave the test split empty (hash split): the benchmark
    then takes held-out windows from val, never from train."""
    import pyarrow.dataset as ds

    from pipeline import run as R

    out = tmp_path / "data"
    assert R.main(["--out", str(out), "--sizes", "11", "--no-network", "--no-progress", "--samples", "0",
                   "--workers", "1"]) == 0
    test_rows = sum(ds.dataset(str(f)).count_rows() for f in (out / "examples" / "test").glob("*.parquet"))
    assert test_rows == 0
    bench = mined_tasks(EvalConfig(data=str(out), n_mined=3))
    val_ids = set(ds.dataset(str(out / "examples" / "val")).to_table(columns=["example_id"])["example_id"]
                  .to_pylist())
    assert bench and all(b.id.split("/")[-1] in val_ids for b in bench)
    # partial windows (1 entity removed) and whole windows (level 5: every modelled entity removed)
    assert {"N1", "L5"} <= {b.group for b in bench}
    for b in bench:
        if b.group == "L5":
            assert b.level == 5 and throughput(b.task.world) == 0 < b.task.reference


def test_restored_share():
    from factorion.tasks.base import restored
    assert restored(10.0, 4.0, 10.0) == 1.0 and restored(7.0, 4.0, 10.0) == 0.5
    assert restored(2.0, 4.0, 10.0) == 0.0 and restored(12.0, 4.0, 10.0) == 1.0
    assert np.isnan(restored(5.0, 10.0, 10.0))


def test_policy_agents_greedy_and_best_of_k(tmp_path):
    """Each checkpoint runs twice: NAME (greedy) and NAME@K (best of greedy + K samples, never
    below greedy); the report has success by family x level for every agent."""
    import torch

    from factorion.policy.model import Policy, PolicyConfig
    torch.manual_seed(0)
    Policy(PolicyConfig.preset("tiny")).save(tmp_path / "p.pt")
    cfg = EvalConfig(sizes=(7,), levels=(3, 5), families=("belt",), n_seeds=2, n_mined=0, agents=("planner",),
                     checkpoints={"p": str(tmp_path / "p.pt")}, policy_samples=2, max_steps=6,
                     out=str(tmp_path / "eval"), planner_budget_s=0.5)
    df, builds = evaluate(cfg, progress=False)
    assert set(df.agent) == {"planner", "p", "p@2"}
    g = df[df.agent == "p"].set_index("task")
    b = df[df.agent == "p@2"].set_index("task")
    assert (b.ratio >= g.ratio - 1e-9).all()
    for (agent, _), w in builds.items():  # the best state's world is the one scored
        if agent == "p@2":
            assert np.isfinite(throughput(w))
    text = write_report(df, builds, cfg).read_text()
    assert "### p@2" in text and "### planner" in text and "| all |" in text


def test_planner_plus_policy_agent_and_unknown_agents(tmp_path, capsys):
    """planner+policy is the build agent without its scale-out search: never a scale-out winner,
    its own report section; an unknown --agents name is a one-line parser error."""
    import torch

    from factorion.evaluate import main as eval_main
    from factorion.policy.model import Policy, PolicyConfig
    torch.manual_seed(0)
    Policy(PolicyConfig.preset("tiny")).save(tmp_path / "p.pt")
    cfg = EvalConfig(sizes=(7,), levels=(5,), families=("smelting",), n_seeds=1, n_mined=0,
                     agents=("build", "planner+policy"), build_checkpoint=str(tmp_path / "p.pt"),
                     build_budget_s=2.0, out=str(tmp_path / "eval"))
    df, builds = evaluate(cfg, progress=False)
    pp = df[df.agent == "planner+policy"]
    assert len(pp) == 1 and not pp.method.str.startswith("scale-out").any()
    assert df[df.agent == "build"].method.str.startswith("scale-out").all()
    assert "## `planner+policy`" in write_report(df, builds, cfg).read_text()
    with pytest.raises(SystemExit):
        eval_main(["--agents", "planner,plannr", "--out", str(tmp_path / "x")])
    assert "unknown plannr" in capsys.readouterr().err


def test_evaluate_user_worlds(tmp_path, capsys):
    """python -m factorion.evaluate_user: seeded user worlds (one source per ingredient on the left
    edge, the sink on the right, no caps), the planner against the planner + a policy, a row each."""
    import torch

    from factorion.evaluate_user import main as user_main
    from factorion.evaluate_user import user_world
    from factorion.policy.model import Policy, PolicyConfig
    w = user_world("circuit", 3)
    assert w.shape == (11, 11) and user_world("circuit", 3) == w and not w.rates
    assert {e.item for e in w.entities() if e.name == "source"} == {"iron-plate", "copper-plate"}
    torch.manual_seed(0)
    Policy(PolicyConfig.preset("tiny")).save(tmp_path / "p.pt")
    out = tmp_path / "u.csv"
    assert user_main(["--kinds", "gear", "--n", "1", "--budget", "1", "--checkpoint", str(tmp_path / "p.pt"),
                      "--out", str(out), "--no-progress"]) == 0
    import pandas as pd
    df = pd.read_csv(out)
    assert len(df) == 1 and df.planner[0] > 0 and df.planner_policy[0] >= df.planner[0] - 1e-9
    assert "planner+policy" in capsys.readouterr().out
