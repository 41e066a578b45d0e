"""Self-imitation (factorion.train.ppo_sil): returns-to-go of finished good episodes enter the buffer
with the very observations, path masks and actions of their steps; the loss pulls only where
the return beats the critic; a PPO run with it on writes its diagnostics."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from factorion.policy.model import Policy, PolicyConfig
from factorion.train.ppo import Args, train
from factorion.train.ppo_sil import SelfImitation


@pytest.fixture(scope="module")
def tiny_policy():
    torch.manual_seed(0)
    return Policy(PolicyConfig.preset("tiny", n_layers=2))


def _step(t: int, B: int = 3) -> tuple[dict, dict, torch.Tensor]:
    obs = {"grid": torch.full((B, 2, 3, 3), t, dtype=torch.int16),
           "task": torch.zeros(B, 2, dtype=torch.int16), "recipes": torch.zeros(B, 1, dtype=torch.int16),
           "step": torch.full((B, 1), float(t)), "ratio": torch.zeros(B, 1)}
    masks = {"op": torch.ones(B, 3, dtype=torch.bool), "cell": torch.ones(B, 9, dtype=torch.bool),
             "entity": torch.ones(B, 2, dtype=torch.bool), "dir": torch.ones(B, 4, dtype=torch.bool),
             "variant": torch.ones(B, 1, dtype=torch.bool)}
    actions = torch.arange(B)[:, None].repeat(1, 5) * 10 + t
    return obs, masks, actions


def test_good_episodes_enter_with_their_returns_to_go():
    sil = SelfImitation(capacity=16, n_envs=3, max_steps=4, gamma=0.5)
    # env 0: rewards 0, 0, 1 then done (return 1 > 0: kept); env 1: -0.1, done (dropped);
    # env 2: never done (nothing yet)
    rewards = [np.array([0.0, -0.1, 0.3]), np.array([0.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0])]
    dones = [np.array([False, True, False]), np.array([False, False, False]), np.array([True, False, False])]
    added = [sil.record(*_step(t), rewards[t], dones[t]) for t in range(3)]
    assert added == [0, 0, 3] and sil.size == 3 and sil.episodes_added == 1
    b = sil.batch(torch.arange(3), "cpu")
    torch.testing.assert_close(b["returns"], torch.tensor([0.25, 0.5, 1.0]))  # 0.5^2, 0.5, 1
    assert b["obs"]["grid"][:, 0, 0, 0].tolist() == [0, 1, 2]  # the steps of env 0, in order
    assert b["actions"][:, 0].tolist() == [0, 1, 2]
    # env 1 starts a new episode after its done; env 2's open episode keeps growing
    sil.record(*_step(3), np.array([0.0, 0.5, 0.0]), np.array([False, True, True]))
    assert sil.size == 3 + 3 + 4  # env 1: steps 1-3, return 0.5; env 2: steps 0-3, return 0.3
    b = sil.batch(torch.arange(3, 10), "cpu")
    assert b["actions"][:, 0].tolist() == [11, 12, 13, 20, 21, 22, 23]


def test_capacity_overwrites_the_oldest():
    sil = SelfImitation(capacity=4, n_envs=3, max_steps=8, gamma=1.0)
    for t in range(6):
        sil.record(*_step(t), np.array([1.0, 0.0, 0.0]), np.array([True, False, False]))
    assert sil.size == 4 and sil.episodes_added == 6
    assert sorted(sil.batch(torch.arange(4), "cpu")["actions"][:, 0].tolist()) == [2, 3, 4, 5]
    with pytest.raises(ValueError):
        SelfImitation(capacity=0, n_envs=1, max_steps=1, gamma=1.0)
    with pytest.raises(ValueError):
        SelfImitation(capacity=4, n_envs=1, max_steps=1, gamma=1.0).sample(2)


def test_loss_only_pulls_where_the_return_beats_the_critic():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, obs, masks, actions=None, temperature=1.0):
            n = actions.shape[0]
            return {"logprob": self.w.expand(n) - 1.0, "value": torch.tensor([0.0, 2.0])[:n] + 0 * self.w}

    sil = SelfImitation(capacity=4, n_envs=3, max_steps=2, gamma=1.0)
    sil.record(*_step(0), np.array([1.0, 1.0, 0.0]), np.array([True, True, False]))
    m = Fixed()
    loss, parts = sil.loss(m, sil.batch(torch.arange(2), "cpu"), vf_coef=0.0)
    loss.backward()
    # entry 0: R 1 > V 0, weight 1; entry 1: R 1 < V 2, weight 0: d/dw = -(1 * 1 + 0) / 2
    assert m.w.grad.item() == pytest.approx(-0.5)
    assert parts["sil/weighted"] == 0.5 and parts["sil/adv"] == pytest.approx(0.5)


def test_ppo_run_with_self_imitation(tmp_path, tiny_policy):
    init = tmp_path / "bc.pt"
    tiny_policy.save(init)
    s = train(Args(out=str(tmp_path), run="sil", init=str(init), smoke=True, wandb=False, threads=1, size=7,
                   families=("belt",), level=1, num_envs=8, num_steps=8, max_steps=4, total_steps=256,
                   critic_warmup=0, sil_coef=1.0, sil_batch=8, entity_cost=0.0, eval=False))
    rows = list(csv.DictReader(open(tmp_path / "sil" / "metrics.csv")))
    assert s["global_step"] == 256 and len(rows) == 4
    assert all(k in rows[-1] for k in ("sil/size", "sil/episodes", "sil/policy", "sil/adv"))
