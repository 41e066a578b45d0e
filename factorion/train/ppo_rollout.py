"""PPO rollout storage and returns: the ``(T, B, ...)`` buffer of one iteration (:class:`Rollout`),
the path masks stored for the update (:func:`taken_path_masks`, :func:`path_masks`), GAE with
truncation bootstrapping (:func:`compute_gae`) and the explained variance of the critic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from factorion.env.masks import STAGES
from factorion.policy.adapters import stage_mask

OBS_KEYS = ("grid", "task", "recipes", "step", "ratio")
MASK_STAGES = STAGES  # op, cell, entity, dir, variant


# ---------------------------------------------------------------------------------- GAE
def compute_gae(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor,
                truncated: torch.Tensor, final_values: torch.Tensor, next_value: torch.Tensor,
                gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns ``(T, B)`` of a rollout.

    ``values[t]`` = V(s_t); ``terminated[t]`` / ``truncated[t]``: the episode ended at step t
    (by ``finish`` / by the step limit); ``final_values[t]`` = V(final observation of step t),
    read where ``truncated[t]``; ``next_value`` ``(B,)`` = V of the observation after the last
    step. The value after step t is 0 if terminated, ``final_values[t]`` if truncated (the
    episode goes on in principle: bootstrap), else ``values[t+1]``; GAE does not run across an
    episode boundary either way.
    """
    T = rewards.shape[0]
    term, trunc = terminated.bool(), truncated.bool()
    adv = torch.zeros_like(values)
    last = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        v_next = next_value if t == T - 1 else values[t + 1]
        v_next = torch.where(trunc[t], final_values[t], v_next)
        v_next = torch.where(term[t], torch.zeros_like(v_next), v_next)
        delta = rewards[t] + gamma * v_next - values[t]
        cont = (~(term[t] | trunc[t])).to(values.dtype)
        last = delta + gamma * lam * cont * last
        adv[t] = last
    return adv, adv + values


def explained_variance(y_pred: torch.Tensor, y_true: torch.Tensor) -> float:
    var = torch.var(y_true)
    return float("nan") if var.item() == 0 else float(1 - torch.var(y_true - y_pred) / var)


# ---------------------------------------------------------------------------------- masks
def taken_path_masks(masks: Mapping[str, torch.Tensor], actions: torch.Tensor,
                     fp_index: torch.Tensor) -> dict[str, torch.Tensor]:
    """The conditional mask of each stage along the taken ``actions`` ``(B, 5)``:
    ``op (B,3)``, ``cell (B,N)``, ``entity (B,E)``, ``dir (B,4)``, ``variant (B,V)`` -- with
    :func:`factorion.policy.adapters.stage_mask`, the function the policy applies."""
    pre = [actions[:, i] for i in range(len(MASK_STAGES))]
    return {s: stage_mask(masks, s, pre[:i], fp_index) for i, s in enumerate(MASK_STAGES)}


def path_masks(pm: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Path masks as the model's *dense* mask form, every row broadcast with ``expand`` (no
    copy). Teacher-forced on the taken action, :func:`~factorion.policy.adapters.stage_mask` then picks
    exactly the stored rows (the ignored-stage override is idempotent)."""
    op, cell, ent, dr, var = (pm[s] for s in MASK_STAGES)
    B, N, E = cell.shape[0], cell.shape[1], ent.shape[1]
    return {"op": op, "cell": cell[:, None].expand(B, op.shape[1], N),
            "entity": ent[:, None].expand(B, N, E), "dir": dr[:, None, None].expand(B, N, E, dr.shape[1]),
            "variant": var[:, None].expand(B, E, var.shape[1])}


# ---------------------------------------------------------------------------------- rollout buffer
class Rollout:
    """``(T, B, ...)`` tensors of one iteration, on ``device``."""

    def __init__(self, T: int, B: int, obs_space, n_cells: int, n_entity: int, n_variant: int, device):
        def z(*shape, dtype=torch.float32):
            return torch.zeros((T, B, *shape), dtype=dtype, device=device)

        sp = obs_space.spaces
        self.obs = {"grid": z(*sp["grid"].shape[1:], dtype=torch.int16),
                    "task": z(*sp["task"].shape[1:], dtype=torch.int16),
                    "recipes": z(*sp["recipes"].shape[1:], dtype=torch.int16),
                    "step": z(1), "ratio": z(1)}
        self.masks = {"op": z(3, dtype=torch.bool), "cell": z(n_cells, dtype=torch.bool),
                      "entity": z(n_entity, dtype=torch.bool), "dir": z(4, dtype=torch.bool),
                      "variant": z(n_variant, dtype=torch.bool)}
        self.actions = z(len(MASK_STAGES), dtype=torch.long)
        self.logprobs, self.bc_logprobs, self.values, self.rewards = z(), z(), z(), z()
        self.bc_stage = {"op": z(3), "cell": z(n_cells), "entity": z(n_entity), "dir": z(4),
                         "variant": z(n_variant)}  # the reference's log-softmax along the path
        self.terminated, self.truncated = z(dtype=torch.bool), z(dtype=torch.bool)
        # expert labels (factorion.train.ppo_expert) and the masks along their path; ok: a usable label
        self.expert = z(len(MASK_STAGES), dtype=torch.long)
        self.expert_ok = z(dtype=torch.bool)
        self.expert_masks = {k: torch.zeros_like(v) for k, v in self.masks.items()}
        self.final_values = z()
        self.feats: torch.Tensor | None = None  # (T, B, tokens, d): the frozen trunk's output
        self._z = z

    def store_feats(self, t: int, x: torch.Tensor | None) -> None:
        if x is None:
            return
        if self.feats is None:
            self.feats = self._z(*x.shape[1:], dtype=x.dtype)
        self.feats[t] = x

    def flat(self, adv: torch.Tensor, ret: torch.Tensor) -> dict[str, Any]:
        def f(x):
            return x.reshape(-1, *x.shape[2:])

        return {"obs": {k: f(v) for k, v in self.obs.items()},
                "masks": {k: f(v) for k, v in self.masks.items()}, "actions": f(self.actions),
                "logprobs": f(self.logprobs), "bc_logprobs": f(self.bc_logprobs),
                "bc_stage": {k: f(v) for k, v in self.bc_stage.items()},
                "values": f(self.values), "advantages": f(adv), "returns": f(ret),
                "expert": f(self.expert), "expert_ok": f(self.expert_ok),
                "expert_masks": {k: f(v) for k, v in self.expert_masks.items()},
                **({"feats": f(self.feats)} if self.feats is not None else {})}
