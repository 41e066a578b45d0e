"""DAgger's expert (factorion.train.dagger): one label per state, the same every time; following the
labels from any visited state builds the task; roll-outs of a policy give episodes BC can expand;
accepted moves keep the policy's own edit where it is as short as the expert's."""

from __future__ import annotations

import pytest
import torch

from factorion.core.world import Entity
from factorion.env.planner import EXPERT_SUCCESS, apply_actions
from factorion.sim import throughput
from factorion.tasks.levels import make_task
from factorion.tasks.splits import DAGGER_SEED0
from factorion.train import dagger
from factorion.train.bc_samples import expand_episode

CASES = [("belt", 5), ("splitter", 4), ("smelting", 5), ("assembler1", 3), ("tree2", 5)]


def _stray(task):
    """The task's start with a wrong belt on the first free cell off the expert's target."""
    w = task.world.copy()
    target = dagger.expert_target(task)
    H, W = w.shape
    for y in range(H):
        for x in range(W):
            if w.grid[0, y, x] == 0 and target.grid[0, y, x] != 0:
                w.place(Entity("transport-belt", y, x, direction=(target.grid[1, y, x] + 1) % 4))
                return w
    return w


@pytest.mark.parametrize("replan", [False, True])
@pytest.mark.parametrize("fam,level", CASES)
def test_same_state_same_label(fam, level, replan):
    task = make_task(fam, level, size=11, seed=DAGGER_SEED0 + 3)
    state = _stray(task)
    a = dagger.expert_label(task, state, replan)
    dagger.clear_cache()  # a fresh process: the target is planned again
    again = make_task(fam, level, size=11, seed=DAGGER_SEED0 + 3)
    assert dagger.expert_label(again, state.copy(), replan) == a
    if state != task.world and not replan:
        assert a[0] == "remove"  # the wrong piece goes first


@pytest.mark.parametrize("fam,level", CASES)
def test_replanned_labels_build_around_the_policys_pieces(fam, level):
    """With the policy's first machine (or belt) somewhere else than the fixed target has it, the
    re-planned edits are never more than the fixed target's and following its labels solves the task."""
    task = make_task(fam, level, size=11, seed=DAGGER_SEED0 + 5)
    state = _stray(task)
    fixed, replanned = dagger.expert_edits(task, state), dagger.expert_edits(task, state, replan=True)
    assert len(replanned) <= len(fixed)
    for _ in range(2 * len(fixed) + 4):
        a = dagger.expert_label(task, state, replan=True)
        if a == ("finish",):
            break
        state = apply_actions(state, [a])
    assert throughput(state) >= EXPERT_SUCCESS * task.reference


@pytest.mark.parametrize("fam,level", CASES)
def test_following_the_labels_solves_the_task(fam, level):
    task = make_task(fam, level, size=11, seed=DAGGER_SEED0 + 5)
    state = _stray(task)
    plan = dagger.expert_edits(task, state)
    steps = []
    while (a := dagger.expert_label(task, state)) != ("finish",):
        steps.append(a)
        state = apply_actions(state, [a])
        assert len(steps) <= len(plan)
    assert steps == plan  # each label is the head of the edit list, the next list its tail
    assert throughput(state) >= EXPERT_SUCCESS * task.reference


def test_collect_gives_episodes_bc_expands():
    from factorion.policy.model import Policy, PolicyConfig
    torch.manual_seed(0)
    policy = Policy(PolicyConfig.preset("tiny")).eval()
    tasks = [make_task("belt", 5, size=7, seed=DAGGER_SEED0 + i) for i in range(2)]
    eps = dagger.collect(policy, tasks, n_rollouts=2, per_episode=2, max_steps=8, seed=0)
    assert 1 <= len(eps) <= 2 * 2 * 2
    for ep in eps:
        samples = expand_episode(**ep)
        assert samples and samples[-1]["action"][0] == 2  # the expert's continuation ends with finish
        end = apply_actions(ep["start"], ep["actions"])
        assert throughput(end) >= EXPERT_SUCCESS * ep["reference"]


def test_collect_relabels_the_states_the_roll_out_passed_through():
    """Up to three distinct visited states per roll-out, the task's start among them (the env's worlds
    are views of its live grid; keeping those gave each roll-out's final state alone)."""
    from factorion.policy.model import Policy, PolicyConfig
    torch.manual_seed(0)  # weights of a tiny policy that places a few pieces before it finishes
    policy = Policy(PolicyConfig.preset("tiny")).eval()
    task = make_task("belt", 5, size=7, seed=DAGGER_SEED0 + 1)
    eps = dagger.collect(policy, [task], n_rollouts=8, per_episode=3, max_steps=12, seed=0)
    starts = [ep["start"].grid.tobytes() for ep in eps]
    assert task.world.grid.tobytes() in starts
    assert len(eps) > 8  # more than one state of some roll-out (a final state alone: at most 8)


def test_pretrain_runs_a_dagger_round(tmp_path):
    from factorion.policy.model import Policy
    from factorion.train.pretrain import main
    r = main(["--smoke", "--out", str(tmp_path / "bc"), "--logger", "none", "--no-progress",
              "--dagger-rounds", "1", "--dagger-tasks", "2", "--dagger-share", "0.5", "--max-minutes", "2"])
    assert r["steps"] >= 6  # BC's 6 steps, then the DAgger round's
    assert Policy.load_from_checkpoint(r["last"]).config.d_model == 32
    assert Policy.load_from_checkpoint(tmp_path / "bc" / "bc.ckpt").config.d_model == 32  # before DAgger
    # one AdamW throughout: the round continued BC's optimiser (its step count holds both phases)
    def adam_steps(path):
        state = torch.load(path, map_location="cpu", weights_only=True)["optimizer_states"][0]["state"]
        return int(max(float(v["step"]) for v in state.values()))
    bc_steps = adam_steps(tmp_path / "bc" / "bc.ckpt")
    assert bc_steps == 6 and adam_steps(r["last"]) == bc_steps + r["steps"]


def test_pretrain_init_starts_from_a_checkpoints_policy(tmp_path):
    """--init: the policy's sizes (and weights) come from the checkpoint, the optimiser is fresh."""
    import torch

    from factorion.policy.model import Policy, PolicyConfig
    from factorion.train.pretrain import main
    torch.manual_seed(0)
    Policy(PolicyConfig.preset("tiny", n_layers=2)).save(tmp_path / "init.pt")
    r = main(["--smoke", "--out", str(tmp_path / "bc"), "--logger", "none", "--no-progress",
              "--init", str(tmp_path / "init.pt"), "--dagger-rounds", "0", "--max-minutes", "1"])
    assert Policy.load_from_checkpoint(r["last"]).config.n_layers == 2  # tiny has 1


@pytest.mark.parametrize("fam,level", [("belt", 5), ("tree2", 5)])
def test_an_accepted_move_is_the_policys_when_no_longer_than_the_experts(fam, level):
    """The expert's second edit taken first is as short a path (the order of placements is free):
    accepted, and its episode still builds the task. A wrong piece is not: the expert's edits stay."""
    task = make_task(fam, level, size=11, seed=DAGGER_SEED0 + 5)
    plan = dagger.expert_edits(task, task.world, replan=True)
    assert len(plan) >= 2 and plan[1][0] == "place"
    other = apply_actions(task.world, [plan[1]])
    ep = dagger._episode(task, task.world, True, nxt=other)
    assert ep["actions"][0] == plan[1] != plan[0]
    assert len(ep["actions"]) <= len(plan)
    assert throughput(apply_actions(task.world, ep["actions"])) >= EXPERT_SUCCESS * task.reference

    wrong = dagger._episode(task, task.world, True, nxt=_stray(task))
    assert wrong["actions"] == plan
    assert dagger._episode(task, task.world, True)["actions"] == plan  # no next state: the expert's


def test_collect_with_accepted_moves_builds_every_task_in_no_more_edits():
    from factorion.policy.model import Policy, PolicyConfig
    torch.manual_seed(0)
    policy = Policy(PolicyConfig.preset("tiny")).eval()
    tasks = [make_task("belt", 5, size=7, seed=DAGGER_SEED0 + i) for i in range(3)]
    plain = dagger.collect(policy, tasks, n_rollouts=4, per_episode=3, max_steps=12, seed=0)
    accepted = dagger.collect(policy, tasks, n_rollouts=4, per_episode=3, max_steps=12, seed=0, accept=True)
    assert [e["start"] for e in plain] == [e["start"] for e in accepted]  # the same visited states
    assert any(p["actions"] != a["actions"] for p, a in zip(plain, accepted, strict=True))  # one move kept
    for p, a in zip(plain, accepted, strict=True):
        assert len(a["actions"]) <= len(p["actions"])
        assert throughput(apply_actions(a["start"], a["actions"])) >= EXPERT_SUCCESS * a["reference"]


def test_pretrain_passes_dagger_seed0_and_accept_to_the_rounds(tmp_path, monkeypatch):
    from factorion.train.pretrain import main
    seen = []
    real = dagger.collect

    def spy(policy, tasks, **kw):
        tasks = list(tasks)
        seen.append(([t.seed for t in tasks], kw.get("accept")))
        return real(policy, tasks, **kw)

    monkeypatch.setattr(dagger, "collect", spy)
    first = DAGGER_SEED0 + 4096
    main(["--smoke", "--out", str(tmp_path / "bc"), "--logger", "none", "--no-progress",
          "--dagger-rounds", "1", "--dagger-tasks", "2", "--dagger-share", "0.5", "--max-minutes", "2",
          "--dagger-seed0", str(first), "--dagger-accept"])
    assert seen and seen[0][1] is True
    assert set(seen[0][0]) <= {first, first + 1}
    with pytest.raises(SystemExit):  # outside the DAgger range of tasks.splits
        main(["--smoke", "--out", str(tmp_path / "bad"), "--dagger-seed0", "20000"])
