"""The one roll-out loop (factorion.policy.rollout): episodes run to their end in the batched env,
ended ones drop out, the step limit and the stop rule hold, on_step sees every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorion.env.masks import OP_FINISH
from factorion.env.vector import FactorioVectorEnv
from factorion.policy.model import Policy, PolicyConfig
from factorion.policy.rollout import rollout
from factorion.tasks.levels import make_task


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    policy = Policy(PolicyConfig.preset("tiny"))
    tasks = [make_task("belt", 3, size=6, seed=s) for s in range(3)]
    cfg = policy.config

    def env(max_steps=6):
        return FactorioVectorEnv(len(tasks), 6, autoreset_mode="disabled", max_steps=max_steps,
                                 entities=cfg.entities, max_items=cfg.max_items, max_recipes=cfg.max_recipes)
    return policy, tasks, env


def test_greedy_rollout_runs_every_episode_to_its_end(setup):
    policy, tasks, env = setup
    seen = []
    r = rollout(policy, env(), tasks, greedy=True,
                on_step=lambda e, info, active: seen.append((active, info["steps"].copy())))
    assert r["ended"].all() and (r["terminated"].astype(bool) | r["truncated"].astype(bool)).all()
    assert (r["steps"] <= 6).all() and r["invalid"].sum() == 0  # masked: never an invalid action
    assert np.array_equal(r["ratio_start"], env().reset(options={"tasks": tasks})[1]["ratio"])
    assert len(seen) == r["steps"].max()
    for active, steps in seen:  # a row that ended takes no more steps
        assert (steps[~active] <= r["steps"][~active]).all()
    again = rollout(policy, env(), tasks, greedy=True)
    for k in ("ratio", "steps", "return", "entities"):
        assert np.array_equal(r[k], again[k])
    assert policy.training  # the mode is restored


def test_step_limit_and_stop(setup):
    policy, tasks, env = setup
    r = rollout(policy, env(max_steps=20), tasks, greedy=False, max_steps=1)
    assert (r["steps"] == 1).all() and not r["truncated"].any()
    assert (r["ended"] == r["terminated"].astype(bool)).all()
    calls = []
    r = rollout(policy, env(), tasks, greedy=True, stop=lambda: len(calls) >= 1,
                on_step=lambda *a: calls.append(1))
    assert len(calls) == 1 and (r["steps"] <= 1).all()
    with pytest.raises(ValueError, match="2 tasks for an env of 3"):
        rollout(policy, env(), tasks[:2])


def test_temperature_reaches_the_policy(setup, monkeypatch):
    """rollout(temperature=...) samples from softmax(logits / temperature): the policy gets it."""
    policy, tasks, env = setup
    seen = []
    forward = Policy.forward

    def spy(self, *a, **kw):
        seen.append(kw.get("temperature"))
        return forward(self, *a, **kw)

    monkeypatch.setattr(Policy, "forward", spy)
    rollout(policy, env(), tasks, greedy=False, temperature=0.5, max_steps=2)
    assert seen and set(seen) == {0.5}


def test_distinct_choice_samples_without_replacement():
    """Gumbel-top-k within a group: distinct allowed entries, as many as allowed; the first row is
    an exact sample of the distribution, the next ones samples of what is left; other rows untouched."""
    from factorion.policy.model import distinct_choice

    torch.manual_seed(0)
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, torch.finfo(torch.float32).min])  # the last is masked
    rows = logits.expand(9, 6).clone()
    chosen = torch.full((9,), 5)
    groups = torch.tensor([0, 0, 0, 0, 0, 0, 0, -1, -1])
    out = distinct_choice(rows, chosen, groups)
    assert sorted(out[:5].tolist()) == [0, 1, 2, 3, 4]  # the five allowed cells, once each
    assert out[5:].tolist() == [5, 5, 5, 5] and chosen.tolist() == [5] * 9  # the rest keep theirs
    n, first, second = 4000, torch.zeros(6), torch.zeros(6)
    for _ in range(n):
        o = distinct_choice(rows[:2], chosen[:2], groups[:2])
        first[o[0]] += 1
        second[o[1]] += 1
    p = torch.softmax(logits, 0)
    assert (first / n - p).abs().max() < 0.03  # the first row: the policy's own distribution
    assert second[0] / n < p[0] - 0.2 and second[5] == 0  # the second: without the first's entry


def test_distinct_first_reaches_the_first_step_only(setup, monkeypatch):
    """rollout(distinct_first=1) hands the policy one group per task on the first step (0.5: every
    other roll-out of each task); the rows of a group that sampled the same op take distinct cells."""
    policy, tasks, env = setup
    seen = []
    forward = Policy.forward

    def spy(self, *a, **kw):
        out = forward(self, *a, **kw)
        d = kw.get("distinct")
        seen.append((None if d is None else d.tolist(), out["action"].clone()))
        return out

    monkeypatch.setattr(Policy, "forward", spy)
    task = tasks[0]
    big = FactorioVectorEnv(8, 6, autoreset_mode="disabled", max_steps=6, entities=policy.config.entities,
                            max_items=policy.config.max_items, max_recipes=policy.config.max_recipes)
    rollout(policy, big, [task] * 4 + [tasks[1]] * 4, greedy=False, max_steps=2, distinct_first=1.0)
    assert seen[0][0] == [0, 0, 0, 0, 4, 4, 4, 4] and seen[1][0] is None
    act = seen[0][1]
    for rows in (range(4), range(4, 8)):
        for op in set(act[list(rows), 0].tolist()) - {OP_FINISH}:  # (finish has no cell to choose)
            cells = [int(act[r, 1]) for r in rows if int(act[r, 0]) == op]
            assert len(set(cells)) == len(cells)
    seen.clear()
    rollout(policy, big, [task] * 8, greedy=False, max_steps=1, distinct_first=0.5)
    assert seen[0][0] == [-1, 0, -1, 0, -1, 0, -1, 0]
    seen.clear()
    rollout(policy, big, [task] * 8, greedy=True, max_steps=1, distinct_first=1.0)
    assert seen[0][0] is None  # greedy roll-outs take no groups
