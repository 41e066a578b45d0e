"""The shipped policy (factorion/policy/default.pt, `make policy`): at most 2 MB, loads, acts on a task,
and is what `factorion build` runs by default; the export that writes it; the policy-alone evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorion.build import DEFAULT_CHECKPOINT, build, load_policy
from factorion.policy.model import Policy, PolicyConfig
from factorion.tasks.levels import make_task
from factorion.train.export import export

needs_default = pytest.mark.skipif(not DEFAULT_CHECKPOINT.exists(), reason="no shipped policy (make policy)")


def test_export_writes_half_precision_that_loads_back(tmp_path):
    torch.manual_seed(0)
    p = Policy(PolicyConfig.preset("cpu"))
    p.save(tmp_path / "full.pt")
    r = export(tmp_path / "full.pt", tmp_path / "half.pt", note="test")
    assert r["bytes"] < (tmp_path / "full.pt").stat().st_size
    raw = torch.load(tmp_path / "half.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values() if v.is_floating_point())
    q = Policy.load_from_checkpoint(tmp_path / "half.pt")
    for (k, a), b in zip(p.state_dict().items(), q.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=2e-3, rtol=1e-2), k
    with pytest.raises(ValueError, match="MB"):
        export(tmp_path / "full.pt", tmp_path / "big.pt", max_mb=0.01)
    assert not (tmp_path / "big.pt").exists()


@needs_default
def test_the_shipped_policy_loads_and_builds():
    assert DEFAULT_CHECKPOINT.stat().st_size <= 2 * 2**20
    policy = load_policy("default")
    assert policy.config == PolicyConfig.from_dict(PolicyConfig.preset("cpu").to_dict())
    task = make_task("belt", 5, size=11, seed=20_000)
    r = build(task, checkpoint="default", budget_s=3.0, samples=4, planner=False)
    assert r.model.startswith("default") and (r.method == "start" or r.method.startswith("policy"))
    assert np.isfinite(r.throughput)


def test_policy_alone_evaluation_rows(tmp_path):
    from factorion.evaluate_learned import main
    torch.manual_seed(0)
    Policy(PolicyConfig.preset("tiny")).save(tmp_path / "p.pt")
    rows = main(["--checkpoint", str(tmp_path / "p.pt"), "--families", "belt", "--levels", "1", "5",
                 "--n-seeds", "1", "--samples", "2", "--max-steps", "6", "--out", str(tmp_path / "r.csv"),
                 "--no-progress"])
    assert [(r["level"], r["seed"]) for r in rows] == [(1, 20_000), (5, 20_000)]
    assert rows[0]["solved"]  # level 1 starts complete: the start state counts
    assert all(r["best_ratio"] >= r["greedy_ratio"] for r in rows)
    assert (tmp_path / "r.csv").exists()


def test_make_policy_commands_parse():
    """Every pretrain / demos command of `make policy` is one their parsers take (a typo in a flag would
    surface two hours into the run); each stage starts from the one before's checkpoint."""
    import shlex
    import shutil
    import subprocess
    from pathlib import Path

    from factorion.train.pretrain import build_parser as pretrain_parser
    from pipeline.demos import build_parser as demos_parser

    if shutil.which("make") is None:
        pytest.skip("no make")
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(["make", "-n", "-s", "policy", "STAMP="], cwd=root, capture_output=True, text=True,
                          check=True).stdout.replace("\\\n", " ")
    parsers = {"factorion.train.pretrain": pretrain_parser(), "pipeline.demos": demos_parser()}
    runs = []
    for line in text.splitlines():
        words = shlex.split(line)
        if "-m" in words and words[words.index("-m") + 1] in parsers:
            i = words.index("-m") + 1
            runs.append((words[i], parsers[words[i]].parse_args(words[i + 1:])))
    assert [m for m, _ in runs].count("factorion.train.pretrain") == 5 and len(runs) == 7
    stages = [a for m, a in runs if m == "factorion.train.pretrain"]
    for before, after in zip(stages, stages[1:], strict=False):
        assert after.init == f"{before.out}/last.ckpt"
    assert [s.dagger_accept for s in stages] == [False, False, True, True, True]
    for before, after in zip(stages[2:], stages[3:], strict=False):  # stage 3's later parts: new tasks
        assert after.dagger_seed0 >= before.dagger_seed0 + before.dagger_rounds * before.dagger_tasks


def test_make_finetune_flags_parse():
    """`make finetune`'s flags are fields of ppo.Args (its defaults were chosen at equal wall time)."""
    import shlex
    import shutil
    import subprocess
    from pathlib import Path

    from factorion.train.finetune import parse

    if shutil.which("make") is None:
        pytest.skip("no make")
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(["make", "-n", "-s", "finetune", "STAMP="], cwd=root, capture_output=True,
                          text=True, check=True).stdout.replace("\\\n", " ")
    words = shlex.split(next(line for line in text.splitlines() if "factorion.train.finetune" in line))
    args = parse(words[words.index("factorion.train.finetune") + 1:])
    assert (args.bc_kl_coef, args.bc_kl_coef_end, args.temperature) == (0.3, 0.1, 0.7)
