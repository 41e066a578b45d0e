"""The one roll-out loop: a policy acting on a batch of tasks in the batched env until every
episode ends. Behaviour cloning's validation roll-outs (:mod:`factorion.train.bc_module`), PPO's
held-out evaluation (:mod:`factorion.train.ppo_eval`), ``make evaluate``'s policy agents
(:mod:`factorion.evaluate`) and ``factorion build``'s policy candidates (:mod:`factorion.build`)
all run :func:`rollout`.

Each sub-env of ``env`` (a :class:`factorion.env.vector.FactorioVectorEnv` with
``autoreset_mode="disabled"``) plays one task. Episodes that ended drop out of the forward pass
and take the ``finish`` action (ignored by the env once done); the forward runs in chunks of at
most ``batch_size`` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from factorion.env.masks import OP_FINISH, STAGES
from factorion.policy.adapters import index_rows, masks_to_tensors, obs_to_tensors
from factorion.policy.model import Policy

#: the temperature of sampled roll-outs in the policy's searches (``factorion build``, ``make evaluate``'s
#: best of K, ``python -m factorion.evaluate_learned``): of 1.0, 0.7 and 0.5, 0.7 solved the most
#: tuning tasks (seeds from 1e9, disjoint from the benchmark's) with the shipped policy, best of 16
#: (docs/learned.md)
SAMPLE_TEMPERATURE = 0.7

#: the share of each task's sampled roll-outs in those searches whose first move is sampled without
#: replacement (:func:`rollout`'s ``distinct_first``): chosen on tuning tasks (docs/learned.md)
DISTINCT_FIRST = 0.5

#: per-episode figures of :func:`rollout`, each an ``(n,)`` array (at the end of the episode)
FIELDS = ("ratio", "throughput", "steps", "success", "terminated", "truncated", "entities", "return",
          "invalid")


@torch.no_grad()
def rollout(policy: Policy, env, tasks: Sequence, greedy: bool = True, *, seed: int | None = 0,
            batch_size: int = 256, device=None, max_steps: int | None = None,
            on_step: Callable | None = None, stop: Callable[[], bool] | None = None,
            on_reset: Callable | None = None, temperature: float = 1.0, distinct_first: float = 0.0) -> dict:
    """Run ``policy`` (greedy, or sampled) on ``tasks`` -- one per sub-env of ``env``, reset with
    ``seed`` -- until every episode has ended (terminated, or truncated at ``env.max_steps``),
    ``max_steps`` steps were taken (the env's own limit, which its observation counts against,
    stays) or ``stop()`` is true (checked before each step). ``on_step(env, info, active)``: called after
    each step with the env's info and the rows that were still running before it; ``on_reset(env,
    info)`` once after the reset. ``temperature``: sampling from ``softmax(logits / temperature)``
    at every stage (greedy ignores it). ``distinct_first`` (sampled roll-outs): on the first step,
    that share of the roll-outs of each task (the same object in ``tasks``; 1: all, 0.5: every
    other one) place or remove at distinct cells when they sample the same op, sampled without
    replacement (:func:`factorion.policy.model.distinct_choice`): a best-of-K search then tries
    more starts than the likeliest few (see :data:`DISTINCT_FIRST`).

    Returns a dict of ``(n,)`` arrays: :data:`FIELDS` (``ratio``, ``throughput``, ``steps``,
    ``success``, ``entities`` as the env reported them when the episode ended -- or at the stop --,
    ``terminated``, ``truncated``, ``return``, ``invalid`` actions), plus ``ratio_start`` and
    ``throughput_start`` (after the reset) and ``ended`` (the episode ended by itself)."""
    n = len(tasks)
    if env.num_envs != n:
        raise ValueError(f"rollout: {n} tasks for an env of {env.num_envs}")
    obs, info = env.reset(seed=seed, options={"tasks": list(tasks)})
    if on_reset is not None:
        on_reset(env, info)
    dev = device if device is not None else policy.device
    was = policy.training
    policy.eval()
    res = {k: np.zeros(n) for k in FIELDS}
    for k in ("ratio", "throughput", "steps", "success", "entities"):
        res[k] = np.asarray(info[k], dtype=np.float64).copy()
    res["ratio_start"], res["throughput_start"] = res["ratio"].copy(), res["throughput"].copy()
    active = np.ones(n, dtype=bool)
    limit = max_steps if max_steps else np.inf
    t = 0
    groups = _task_groups(tasks, distinct_first) if distinct_first > 0 and not greedy else None
    try:
        while active.any() and t < limit and not (stop is not None and stop()):
            t += 1
            acts = _actions(policy, obs, info, active, greedy, batch_size, dev, temperature,
                            groups if t == 1 else None)
            obs, r, term, trunc, info = env.step(acts)
            res["return"][active] += r[active]
            res["invalid"][active] += np.asarray(info["invalid"], dtype=bool)[active]
            for k in ("ratio", "throughput", "steps", "success", "entities"):
                res[k][active] = np.asarray(info[k])[active]
            res["terminated"][active] = term[active]
            res["truncated"][active] = trunc[active]
            if on_step is not None:
                on_step(env, info, active.copy())
            active &= ~(term | trunc)
    finally:
        policy.train(was)
    res["ended"] = ~active
    return res


def _task_groups(tasks: Sequence, share: float) -> np.ndarray:
    """``(n,)``: the group of each row, the index of the first row that plays the same task
    object, for ``share`` of each task's rows (spread evenly); -1 for the others."""
    first: dict[int, int] = {}
    seen: dict[int, int] = {}
    out = np.full(len(tasks), -1, dtype=np.int64)
    for i, t in enumerate(tasks):
        g, r = first.setdefault(id(t), i), seen.get(id(t), 0)
        seen[id(t)] = r + 1
        if int((r + 1) * share + 1e-9) > int(r * share + 1e-9):
            out[i] = g
    return out


def _actions(policy: Policy, obs: dict, info: dict, active: np.ndarray, greedy: bool, batch_size: int,
             dev, temperature: float = 1.0, groups: np.ndarray | None = None) -> np.ndarray:
    """``(n, 5)``: the policy's action on the active rows (in chunks), ``finish`` elsewhere;
    ``groups``: rows that sample distinct cells (:meth:`factorion.policy.model.Policy.forward`)."""
    acts = np.zeros((len(active), len(STAGES)), dtype=np.int64)
    acts[:, 0] = OP_FINISH
    idx = np.nonzero(active)[0]
    mt = masks_to_tensors(info["action_mask"], dev)
    ot = obs_to_tensors(obs, dev)
    for s in range(0, len(idx), batch_size):
        j = torch.as_tensor(idx[s:s + batch_size], device=dev)
        dist = None if groups is None else torch.as_tensor(groups[idx[s:s + batch_size]], device=dev)
        out = policy(index_rows(ot, j), index_rows(mt, j), greedy=greedy, temperature=temperature,
                     distinct=dist)
        acts[idx[s:s + batch_size]] = out["action"].cpu().numpy()
    return acts
