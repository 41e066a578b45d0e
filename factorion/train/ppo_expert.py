"""Expert labels on the states PPO visits (DAgger-style; Ross, Gordon & Bagnell 2011), for an
auxiliary imitation term in the PPO update (as DAPG adds demonstrations to a policy gradient;
Rajeswaran et al. 2018).

Every procedural task carries its reference solution, so the simulator knows a correct next
edit in *any* state the policy reaches: :func:`expert_labels` takes the first edit of
:func:`factorion.env.planner.actions_to_build` from the env's current grid to ``task.solution``
(remove what the solution lacks, then place what is missing, machines first and belts in flow
order -- the order the BC data was written in) and ``finish`` once the throughput reaches the
success threshold. A label the env's masks reject (or the action layout cannot express) is
dropped (``ok`` False).

Why: PPO's only signal is the throughput, one scalar per episode spread over ~10-20 edits.
On this CPU a 30-minute run sees a few thousand episodes, and PPO alone did not move the
greedy policy (0.421 -> 0.421 held-out ratio); self-imitation of its own successes did not
either (0.447 -> 0.417/0.460 on level 3). The reward still drives PPO; the labels add the
per-step signal that tells it *which* edit the throughput needed, on its own state
distribution (so it learns to undo its own mistakes, which BC never saw).
"""

from __future__ import annotations

import numpy as np
import torch

from factorion.env.masks import OP_FINISH
from factorion.train.bc_samples import encode_action
from factorion.train.ppo_rollout import path_masks, taken_path_masks


def expert_labels(envs, ratio: np.ndarray, masks, success: float = 0.95,
                  mode: str = "unique") -> tuple[np.ndarray, np.ndarray]:
    """``(B, 5)`` expert actions for the current state of every env of the batched ``envs``
    (:class:`factorion.env.vector.FactorioVectorEnv`) and ``(B,)`` whether each is usable.
    ``ratio``: the current throughput ratios (``info["ratio"]``); ``masks``: the current
    :class:`factorion.env.ActionMasks` (``info["action_mask"]``).

    ``mode="unique"`` (the default): label only states whose correct next edit is unambiguous --
    ``finish`` once solved, or the one solution entity still missing -- and leave the rest to
    the reward. With several pieces missing any of them is a right next edit; a label naming
    one (the flow order's first) pulls the policy off the others it rightly picks, and runs
    with such labels fell from 0.421 to 0.264 held-out ratio in 9 minutes. Removals are never
    labelled in that mode either (BC never removes, and a half-learnt removal breaks working
    factories).

    ``mode="first"``: every state gets the first edit of ``actions_to_build`` towards the task's
    reference solution (removals included).

    ``mode="all"``: every state of every level gets the DAgger expert's label
    (:func:`factorion.train.dagger.expert_label`: the head of one fixed edit list towards the
    target the demonstrations were built to, removals of wrong pieces included), so a policy
    trained on ``make demos`` + DAgger hears the same label BC taught it in every state."""
    from factorion.env.planner import actions_to_build
    from factorion.train import dagger

    if mode not in ("unique", "first", "all"):
        raise ValueError(f"expert mode must be 'unique', 'first' or 'all', got {mode!r}")

    B = envs.num_envs
    out = np.zeros((B, 5), dtype=np.int64)
    ok = np.zeros(B, dtype=bool)
    layout = envs.layout
    for i in range(B):
        task = envs.tasks[i]
        if task is None or getattr(task, "solution", None) is None:
            continue
        if ratio[i] >= success:
            out[i, 0], ok[i] = OP_FINISH, True
            continue
        world = task.world.copy()
        world.grid = envs.grids[i].copy()
        try:
            if mode == "all":
                acts = dagger.expert_edits(task, world)
            else:
                acts = actions_to_build(world, task.solution)
        except ValueError:  # sources / sinks differ: not a state the solution can be reached from
            continue
        if mode == "unique":
            acts = [a for a in acts if a[0] == "place"]
            if len(acts) != 1:
                continue
        if not acts:  # the solution is built but throttled below the threshold: nothing to add
            continue
        a = encode_action(acts[0], layout, task.recipes)
        if a is not None:
            out[i], ok[i] = a, True
    if ok.any():
        ok &= masks.valid(out)
    return out, ok


def store_expert_labels(buf, t: int, envs, info: dict, masks: dict[str, torch.Tensor], fp_index,
                        mode: str = "unique") -> int:
    """Label step ``t`` of the rollout ``buf`` (:class:`factorion.train.ppo_rollout.Rollout`): the
    expert action, whether it is usable, and the masks along its path (``masks``: the dense
    masks as tensors, as the policy saw them). Returns the number of usable labels."""
    ex, ok = expert_labels(envs, info["ratio"], info["action_mask"], mode=mode)
    dev = buf.expert.device
    ex_t = torch.as_tensor(ex, device=dev)
    buf.expert[t], buf.expert_ok[t] = ex_t, torch.as_tensor(ok, device=dev)
    for k, m in taken_path_masks(masks, ex_t, fp_index).items():
        buf.expert_masks[k][t] = m
    return int(ok.sum())


def expert_nll(model, mb: dict, **forward_kw) -> torch.Tensor:
    """Mean negative log-likelihood of the usable expert labels of the minibatch ``mb`` (as
    :meth:`factorion.train.ppo_rollout.Rollout.flat` gives it) under ``model``, teacher-forced along
    each label's stored path masks; ``forward_kw`` go to the model (temperature, trunk cache)."""
    ok = mb["expert_ok"]
    out = model(mb["obs"], path_masks(mb["expert_masks"]), actions=mb["expert"], **forward_kw)
    nll = -(out["logprob"].float() * ok).sum() / ok.sum().clamp(min=1)
    return nll + 0.0 * out["value"].float().sum()  # (DDP wants every parameter in each backward's graph)
