"""factorion build's search (factorion.build.build) and the build agent of make evaluate."""

from __future__ import annotations

import pytest

from factorion import build as B
from factorion import evaluate as E
from factorion.build import build, infer_task, load_policy, parse_spec, validate_export
from factorion.sim import throughput
from factorion.tasks.levels import make_task
from factorion.tasks.splits import BENCH_SEED0

SPEC = """size 9 9
source 4 0 iron-plate
sink 4 8 iron-gear-wheel
"""


@pytest.fixture(scope="module")
def tiny_policy():
    torch = pytest.importorskip("torch")
    from factorion.policy.model import Policy, PolicyConfig
    torch.manual_seed(0)
    return Policy(PolicyConfig.preset("tiny")).eval()


def test_success_threshold_is_shared():
    assert B.SUCCESS == E.SUCCESS


def test_build_stops_at_success_on_a_task_with_a_reference(tiny_policy):
    t = make_task("belt", 5, size=7, seed=BENCH_SEED0)
    r = build(t, checkpoint=tiny_policy, budget_s=30.0)
    assert r.ratio is not None and r.ratio >= B.SUCCESS and r.stopped_early
    assert r.seconds < 30.0 and r.method.startswith("planner")
    assert throughput(r.world) == pytest.approx(r.throughput)
    assert validate_export(r.blueprint) == []


def test_build_samples_the_policy_within_the_budget(tiny_policy):
    """A task with no reference (as the CLI's) spends its budget: the planner, the greedy
    roll-out and batched sampled roll-outs, each checked in the simulator; never worse than the
    planner alone."""
    w = parse_spec(SPEC)
    alone = build(w, budget_s=0.5)
    build(w, checkpoint=tiny_policy, budget_s=0.5, samples=4)  # warm-up: a fresh clone compiles kernels
    r = build(w, checkpoint=tiny_policy, budget_s=3.0, samples=4)
    assert r.reference == 0 and r.ratio is None and not r.stopped_early
    assert r.candidates > 3  # 2 planner runs + the greedy roll-out + sampled ones
    assert 2.5 < r.seconds < 8.0 and r.cpu_seconds > 0
    assert r.throughput >= alone.throughput > 0
    assert throughput(r.world) == pytest.approx(r.throughput)
    assert validate_export(r.blueprint) == []


def test_build_loads_a_checkpoint_path(tmp_path, tiny_policy):
    path = tmp_path / "p.pt"
    tiny_policy.save(path)
    assert load_policy(str(path)).config == tiny_policy.config
    assert load_policy(None) is None and load_policy(tiny_policy) is tiny_policy
    r = build(infer_task(parse_spec(SPEC)), checkpoint=str(path), budget_s=1.0)
    assert r.throughput > 0


def test_build_agent_in_evaluate(tmp_path, tiny_policy):
    path = tmp_path / "p.pt"
    tiny_policy.save(path)
    cfg = E.EvalConfig(sizes=(7,), levels=(2, 5), families=("belt", "assembler1"), n_seeds=1, n_mined=0,
                       agents=("planner", "build"), planner_budget_s=0.5, build_budget_s=3.0,
                       build_checkpoint=str(path), out=str(tmp_path / "eval"))
    df, builds = E.evaluate(cfg, progress=False)
    b = df[df.agent == "build"]
    assert len(b) == 4 and set(b.task) == set(df[df.agent == "planner"].task)
    assert b.ratio.between(0, 1 + 1e-6).all() and b.success.all()  # the planner solves these
    assert (b.seconds < 3.0 + 2.0).all() and (b.cpu_seconds >= 0).all() and (b.entities > 0).all()
    assert b.export_ok.eq(True).all() and b.method.str.startswith("planner").all()
    assert (b.candidates >= 1).all()
    # the build agent is at least as good as the planner it starts with
    p = df[df.agent == "planner"].set_index("task").ratio
    assert (b.set_index("task").ratio >= p - 1e-9).all()
    text = E.write_report(df, builds, cfg).read_text()
    assert "| build |" in text and "## `factorion build` (the build agent)" in text
    assert "s_p90" in text and "Exported strings factorio-draftsman loads: 4/4" in text
    assert "build: 3 s budget" in text


def test_evaluate_cli_build_checkpoint_default():
    assert E.resolve_build_checkpoint(None, {"bc": "pyproject.toml", "ppo": "nope.pt"}) == "pyproject.toml"
    assert E.resolve_build_checkpoint(None, {"ppo": "README.md", "bc": "pyproject.toml"}) == "README.md"
    assert E.resolve_build_checkpoint(None, {}) is None
    assert E.resolve_build_checkpoint("none", {"bc": "x"}) is None
    assert E.resolve_build_checkpoint("a.pt", {}) == "a.pt"


def test_evaluate_main_with_the_build_agent(tmp_path, capsys):
    out = tmp_path / "eval"
    assert E.main(["--sizes", "7", "--levels", "5", "--families", "belt", "--n-seeds", "1", "--n-mined", "0",
                   "--agents", "build", "--build-budget", "1", "--checkpoint", "none",
                   "--out", str(out)]) == 0
    assert "build" in capsys.readouterr().out
    text = (out / "report.md").read_text()
    assert "policy none (planner only)" in text and "| build |" in text


def test_keep_fixed_restores_or_rejects_a_lost_obstacle():
    from factorion.core.world import Entity
    start = parse_spec("size 5 5\nsource 2 0 iron-plate\nsink 2 4 iron-plate\nobstacle 0 2")
    assert B.keep_fixed(start, start) is start
    lost = start.copy()
    lost.remove(0, 2)
    assert B.keep_fixed(start, lost) == start
    covered = lost.copy()
    covered.place(Entity("transport-belt", 0, 2, 2))
    assert B.keep_fixed(start, covered) is None
    moved = lost.copy()
    moved.place(Entity("obstacle", 1, 2))
    assert B.keep_fixed(start, moved) is None


def test_build_without_the_planner_runs_the_policy_alone(tiny_policy):
    """``planner=False``: every candidate is the start or a policy roll-out, none the planner's."""
    t = make_task("belt", 5, size=7, seed=BENCH_SEED0)
    r = build(t, checkpoint=tiny_policy, budget_s=2.0, samples=4, planner=False)
    assert r.candidates >= 1 and all(not m.startswith("planner") for _, m, _ in r.log)
    assert r.method == "start" or r.method.startswith("policy")
    assert throughput(r.world) == pytest.approx(r.throughput)
    assert r.model == "a Policy object"
    with pytest.raises(ValueError, match="needs a policy"):
        build(t, checkpoint=None, planner=False)
    assert load_policy("none") is None
    assert build(t, checkpoint="none", budget_s=1.0).model == "none (planner only)"


def test_build_cli_names_its_model_and_runs_without_the_planner(tmp_path, capsys, tiny_policy):
    from factorion.cli import main
    spec = tmp_path / "task.txt"
    spec.write_text(SPEC)
    ckpt = tmp_path / "p.pt"
    tiny_policy.save(ckpt)
    png = str(tmp_path / "b.png")
    assert main(["build", str(spec), "--budget", "1", "-o", png, "--checkpoint", "none"]) == 0
    assert "model: none (planner only); planner: on" in capsys.readouterr().out
    assert main(["build", str(spec), "--budget", "1", "-o", png, "--checkpoint", str(ckpt),
                 "--no-planner"]) == 0
    out = capsys.readouterr().out
    assert f"model: {ckpt}; planner: off" in out and "by planner" not in out
    assert main(["build", str(spec), "--checkpoint", "none", "--no-planner"]) == 1
