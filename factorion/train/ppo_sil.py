"""Self-imitation for PPO (Oh, Guo, Singh & Lee, *Self-Imitation Learning*, ICML 2018):
replay the policy's own good past actions, weighted by how much better they turned out than
the critic expected.

Why it is here: on the repair levels a sampled BC policy often finds the missing piece (a
quarter to a third of first actions at temperature 0.5, some sample on ~70% of level-3 tasks
at temperature 1), yet clipped PPO steps of a few 1e-3 nats per iteration raise the sampled
success without moving the greedy choice on the tasks it still gets wrong. Self-imitation
turns each success into a supervised step on exactly those states.

:class:`SelfImitation` keeps, per env, the steps of the episode in progress (a ring of the last
``max_steps + 1`` batched steps holds their observations, path masks and actions; an episode is
never longer). When an episode ends with a return above ``min_return`` its steps enter a
fixed-capacity buffer with their discounted return-to-go ``R`` (no bootstrap: a lower bound, as
in the paper; the oldest entries are overwritten). Minibatches are drawn uniformly (the paper
prioritises by ``(R - V)+``; only good episodes are kept here, and scoring the whole buffer
every iteration would cost more forward passes than the rollout) and :meth:`loss` returns
``-log pi(a|s) (R - V(s))+ + vf_coef/2 ((R - V(s))+)^2`` -- only transitions that did better
than the critic thinks pull the policy, and the critic learns the returns it underestimates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from factorion.train.ppo_rollout import MASK_STAGES, OBS_KEYS, path_masks


class SelfImitation:
    """A self-imitation buffer over ``n_envs`` parallel episodes (see the module docstring)."""

    def __init__(self, capacity: int, n_envs: int, max_steps: int, gamma: float, min_return: float = 0.0,
                 seed: int = 0):
        if capacity < 1 or n_envs < 1 or max_steps < 1:
            raise ValueError(f"capacity, n_envs and max_steps must be positive, got {capacity}, {n_envs}, "
                             f"{max_steps}")
        self.capacity, self.n_envs, self.gamma, self.min_return = capacity, n_envs, gamma, min_return
        self.ring_len = max_steps + 1
        self._ring: list[dict | None] = [None] * self.ring_len
        self._sid = 0  # id of the next recorded step
        self._trace: list[list[tuple[int, float]]] = [[] for _ in range(n_envs)]
        self._buf: dict | None = None
        self.size = 0  # entries held
        self._pos = 0  # next write position
        self.episodes_added = 0
        self._rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ recording
    def record(self, obs: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor],
               actions: torch.Tensor, rewards: np.ndarray, done: np.ndarray) -> int:
        """One batched step: ``obs`` / ``masks`` (path masks) / ``actions`` as stored in the
        rollout, then the env's ``rewards`` and ``done`` (terminated or truncated) of that step.
        Record from the first step after a reset. Returns the number of transitions added."""
        rec = {"obs": {k: obs[k].detach().cpu() for k in OBS_KEYS},
               "masks": {k: masks[k].detach().cpu() for k in MASK_STAGES},
               "actions": actions.detach().cpu()}
        sid = self._sid
        self._ring[sid % self.ring_len] = rec
        self._sid += 1
        added = 0
        for i in range(self.n_envs):
            self._trace[i].append((sid, float(rewards[i])))
            if done[i]:
                added += self._close(i)
        return added

    def _close(self, i: int) -> int:
        trace, self._trace[i] = self._trace[i], []
        if not trace or sum(r for _, r in trace) <= self.min_return:
            return 0
        g, rtg = 0.0, []
        for _, r in reversed(trace):
            g = r + self.gamma * g
            rtg.append(g)
        rtg.reverse()
        for (sid, _), ret in zip(trace, rtg, strict=True):
            self._put(self._ring[sid % self.ring_len], i, ret)
        self.episodes_added += 1
        return len(trace)

    def _put(self, rec: dict, i: int, ret: float) -> None:
        if self._buf is None:
            def z(x):
                return torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype)
            self._buf = {"obs": {k: z(v) for k, v in rec["obs"].items()},
                         "masks": {k: z(v) for k, v in rec["masks"].items()},
                         "actions": z(rec["actions"]), "returns": torch.zeros(self.capacity)}
        p = self._pos
        for k, v in rec["obs"].items():
            self._buf["obs"][k][p] = v[i]
        for k, v in rec["masks"].items():
            self._buf["masks"][k][p] = v[i]
        self._buf["actions"][p] = rec["actions"][i]
        self._buf["returns"][p] = ret
        self._pos = (p + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    # ------------------------------------------------------------------ the loss
    def sample(self, n: int) -> torch.Tensor:
        """Indices of ``n`` entries drawn uniformly (the loss weighs them by ``(R - V)+``)."""
        if self.size == 0:
            raise ValueError("the self-imitation buffer is empty")
        return torch.as_tensor(self._rng.integers(self.size, size=n))

    def batch(self, idx: torch.Tensor, device) -> dict:
        b = self._buf
        return {"obs": {k: v[idx].to(device) for k, v in b["obs"].items()},
                "masks": {k: v[idx].to(device) for k, v in b["masks"].items()},
                "actions": b["actions"][idx].to(device), "returns": b["returns"][idx].to(device)}

    def loss(self, model, batch: Mapping, vf_coef: float,
             temperature: float = 1.0) -> tuple[torch.Tensor, dict]:
        """The self-imitation loss of ``batch`` under ``model`` (at the PPO update's
        ``temperature``), and its parts for the log."""
        out = model(batch["obs"], path_masks(batch["masks"]), actions=batch["actions"],
                    temperature=temperature)
        lp, v = out["logprob"].float(), out["value"].float()
        clipped = (batch["returns"] - v).clamp(min=0.0)
        w = clipped.detach()
        pg = -(lp * w).mean()
        vl = 0.5 * (clipped ** 2).mean()
        return pg + vf_coef * vl, {"sil/policy": pg.item(), "sil/value": vl.item(),
                                   "sil/weighted": float((w > 0).float().mean()),
                                   "sil/adv": float(w.mean())}

    def update(self, model, optimizer, fabric, device, *, updates: int, batch: int, coef: float,
               vf_coef: float, temperature: float, max_grad_norm: float) -> list[dict]:
        """``updates`` optimizer steps on ``coef`` x :meth:`loss` of uniform minibatches of
        ``batch`` (at the PPO ``temperature``; gradients clipped at ``max_grad_norm`` as PPO's);
        returns each step's loss parts."""
        log = []
        for _ in range(updates):
            mb = self.batch(self.sample(batch), device)
            loss, parts = self.loss(model, mb, vf_coef, temperature)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(coef * loss)
            if max_grad_norm > 0:
                fabric.clip_gradients(model, optimizer, max_norm=max_grad_norm, error_if_nonfinite=False)
            optimizer.step()
            log.append(parts)
        return log

    def summary(self, log: list[dict]) -> dict:
        """The buffer's size and episode count and the mean of each loss part of ``log``."""
        keys = ("sil/policy", "sil/value", "sil/weighted", "sil/adv")
        return {"sil/size": self.size, "sil/episodes": self.episodes_added,
                **{k: float(np.mean([d[k] for d in log])) if log else float("nan") for k in keys}}
