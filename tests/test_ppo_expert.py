"""Expert labels for PPO (factorion.train.ppo_expert): the first edit toward the task's reference
solution from any state, ``finish`` once solved; following them solves every family and level;
the NLL term is teacher-forced along the label's own path masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorion.env.masks import OP_FINISH, OP_PLACE, OP_REMOVE
from factorion.env.vector import FactorioVectorEnv
from factorion.policy.adapters import masks_to_tensors, obs_to_tensors
from factorion.policy.model import Policy, PolicyConfig
from factorion.tasks.base import FAMILIES
from factorion.tasks.levels import make_task
from factorion.train.bc_samples import encode_action
from factorion.train.ppo_expert import expert_labels, expert_nll, store_expert_labels
from factorion.train.ppo_rollout import Rollout


def _env(tasks, max_steps=None):
    env = FactorioVectorEnv(len(tasks), tasks[0].world.height, autoreset_mode="disabled", max_steps=max_steps)
    obs, info = env.reset(seed=0, options={"tasks": tasks})
    return env, obs, info


def test_labels_place_the_missing_piece_and_finish_when_solved():
    t3 = make_task("belt", 3, size=7, seed=1)
    t1 = make_task("belt", 1, size=7, seed=1)
    env, _, info = _env([t3, t1])
    ex, ok = expert_labels(env, info["ratio"], info["action_mask"])
    assert ok.all()
    want = encode_action(("place", t3.removed[0]), env.layout, t3.recipes)
    np.testing.assert_array_equal(ex[0], want)
    assert ex[1, 0] == OP_FINISH
    # step the expert: task 0 is solved, its next label is finish
    _, _, _, _, info = env.step(ex)
    assert info["ratio"][0] >= 0.99
    ex2, ok2 = expert_labels(env, info["ratio"], info["action_mask"])
    assert ok2[0] and ex2[0, 0] == OP_FINISH


def test_a_wrong_piece_in_the_way_is_removed_first():
    t = make_task("belt", 3, size=7, seed=1)
    gap = t.removed[0]
    env, _, info = _env([t])
    # fill the gap with a chest (a valid place the solution does not have)
    chest = env.layout.entities.index("wooden-chest")
    a = np.array([[OP_PLACE, gap.y * 7 + gap.x, chest, 0, 0]])
    assert info["action_mask"].valid(a)[0]
    _, _, _, _, info = env.step(a)
    ex, ok = expert_labels(env, info["ratio"], info["action_mask"], mode="first")
    assert ok[0] and ex[0, 0] == OP_REMOVE and ex[0, 1] == gap.y * 7 + gap.x


def _follow_labels(tasks, mode: str, no_truncation: bool = False):
    """Step every task's env along the expert's labels (``mode``) until each episode ends: the
    final ratios, the env and its last info. Every running state must get a usable label."""
    env, _, info = _env(tasks, max_steps=120)
    active = np.ones(len(tasks), dtype=bool)
    final = np.zeros(len(tasks))
    while active.any():
        ex, ok = expert_labels(env, info["ratio"], info["action_mask"], mode=mode)
        assert ok[active].all()
        ex[~active] = 0
        ex[~active, 0] = OP_FINISH
        _, _, term, trunc, info = env.step(ex)
        done = active & (term | trunc)
        final[done] = info["ratio"][done]
        assert not (no_truncation and trunc[active].any())
        active &= ~done
    return final, env, info


@pytest.mark.parametrize("level", [2, 3, 4, 5])
def test_following_the_labels_solves_every_family(level):
    tasks = [make_task(f, level, size=11, seed=5) for f in FAMILIES]
    final, _, _ = _follow_labels(tasks, "first", no_truncation=True)
    assert (final >= 0.95).all(), dict(zip(FAMILIES, final.round(3), strict=True))


def test_nll_is_teacher_forced_on_the_label_path():
    torch.manual_seed(0)
    policy = Policy(PolicyConfig.preset("tiny"))
    tasks = [make_task(f, 3, size=7, seed=2) for f in ("belt", "splitter", "smelting")]
    env, obs, info = _env(tasks)
    L = env.layout
    buf = Rollout(1, len(tasks), env.observation_space, L.n_cells, L.n_entity, L.n_variant, "cpu")
    ot, mt = obs_to_tensors(obs), masks_to_tensors(info["action_mask"])
    assert store_expert_labels(buf, 0, env, info, mt, policy.fp_index) == len(tasks)
    for k in ("grid", "task", "recipes", "step", "ratio"):
        buf.obs[k][0] = ot[k].to(buf.obs[k].dtype)
    z = torch.zeros(1, len(tasks))
    mb = buf.flat(z, z)
    with torch.no_grad():
        full = policy(ot, mt, actions=buf.expert[0])["logprob"]  # the dense masks
        nll = expert_nll(policy, mb)
    torch.testing.assert_close(nll, -full.mean(), rtol=1e-5, atol=1e-5)
    mb["expert_ok"][1:] = False  # only usable labels count
    with torch.no_grad():
        torch.testing.assert_close(expert_nll(policy, mb), -full[0], rtol=1e-5, atol=1e-5)


def test_unique_mode_labels_only_unambiguous_states():
    t3 = make_task("belt", 3, size=7, seed=1)
    t4 = next(t for s in range(20) if len((t := make_task("belt", 4, size=11, seed=s)).removed) >= 2)
    env3, _, info3 = _env([t3])
    assert expert_labels(env3, info3["ratio"], info3["action_mask"])[1][0]  # one piece missing
    env4, _, info4 = _env([t4])
    ex, ok = expert_labels(env4, info4["ratio"], info4["action_mask"])
    assert not ok[0]  # several missing: any is right, none is labelled
    assert expert_labels(env4, info4["ratio"], info4["action_mask"], mode="first")[1][0]
    # a wrong piece in the gap: the missing piece cannot be placed, and removals are not labelled
    gap = t3.removed[0]
    chest = env3.layout.entities.index("wooden-chest")
    _, _, _, _, info3 = env3.step(np.array([[OP_PLACE, gap.y * 7 + gap.x, chest, 0, 0]]))
    assert not expert_labels(env3, info3["ratio"], info3["action_mask"])[1][0]


@pytest.mark.parametrize("level", [1, 3, 5])
def test_all_mode_labels_every_state_and_solves_every_family(level):
    """``mode="all"`` (``make finetune --expert-mode all``): the DAgger expert labels every state
    on every level, and following its labels in the env solves the task."""
    tasks = [make_task(f, level, size=11, seed=7) for f in FAMILIES]
    final, env, info = _follow_labels(tasks, "all")
    assert (final >= 0.95).all(), final
    with pytest.raises(ValueError, match="mode"):
        expert_labels(env, info["ratio"], info["action_mask"], mode="some")
