"""The one roll-out loop (factorion.policy.rollout): episodes run to their end in the batched env,
ended ones drop out, the step limit and the stop rule hold, on_step sees every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
