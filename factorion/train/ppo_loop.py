"""The steps of one PPO iteration (:mod:`factorion.train.ppo` runs them in its loop, CleanRL-style):
:func:`rollout` (the tempered policy in the batched env into the buffer, then GAE),
:func:`update` (the clipped PPO epochs with the early stop, the KL to BC, the expert term) and
:func:`log_row` (the iteration's metrics). :class:`Run` is what a run carries from iteration to
iteration; every other input is a plain field, so this module knows nothing of ``Args``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from factorion.policy.adapters import index_rows, masks_to_tensors, obs_to_tensors
from factorion.policy.model import Policy
from factorion.train.ppo_expert import expert_nll, store_expert_labels
from factorion.train.ppo_log import EpisodeStats, mean_of
from factorion.train.ppo_policy import set_actor_frozen, stage_kl, value_params
from factorion.train.ppo_rollout import (
    MASK_STAGES,
    OBS_KEYS,
    Rollout,
    compute_gae,
    explained_variance,
    path_masks,
    taken_path_masks,
)
from factorion.train.ppo_sil import SelfImitation


# ---------------------------------------------------------------------------------- run state
@dataclass
class Loss:
    """The settings the update needs (fields of :class:`factorion.train.ppo.Args`)."""

    temperature: float
    clip_coef: float
    clip_vloss: bool
    norm_adv: bool
    vf_coef: float
    target_kl: float
    max_grad_norm: float
    expert_coef: float
    update_epochs: int
    minibatch_size: int


@dataclass
class Run:
    """What one PPO run carries from iteration to iteration: the Fabric, the policy (``model``:
    its Fabric wrapper), the frozen BC reference, the optimiser, the envs, the rollout buffer and
    the env state (``obs``, ``info``, running episode returns), and the counters."""

    fabric: Any
    policy: Policy
    model: Any
    ref: Policy | None
    optimizer: torch.optim.Optimizer
    trainable: list
    envs: Any
    curriculum: Any
    buf: Rollout
    sil: SelfImitation | None
    obs: dict
    info: dict
    ep_ret: np.ndarray
    k_frozen: int
    iteration: int
    global_step: int

    @property
    def dev(self):
        return self.fabric.device

    @property
    def world(self) -> int:
        return self.fabric.world_size


@dataclass
class RolloutResult:
    """One iteration's rollout: GAE advantages and returns, episode ends and counts."""

    adv: torch.Tensor
    ret: torch.Tensor
    stats: EpisodeStats
    invalid_n: int = 0
    agree_n: int = 0
    labelled_n: int = 0


# ---------------------------------------------------------------------------------- rollout
def rollout(run: Run, num_steps: int, temperature: float, expert: str | None, kl_coef: float, gamma: float,
            gae_lambda: float, timers: dict) -> RolloutResult:
    """``num_steps`` batched env steps with the tempered policy (sampled), stored in ``run.buf``
    (with expert labels of mode ``expert``: "all" or "unique", None for none; the BC reference's
    log-probs when ``kl_coef > 0``),
    then GAE; ``timers`` gains ``forward`` and ``env`` seconds."""
    policy, dev = run.policy, run.dev
    res = RolloutResult(None, None, EpisodeStats())
    policy.eval()
    for t in range(num_steps):
        t0 = time.perf_counter()
        with torch.no_grad():
            ot, pm, action = _act(run, res, t, temperature, expert, kl_coef)
        t1 = time.perf_counter()
        obs, reward, term, trunc, info = run.envs.step(action.cpu().numpy())
        t2 = time.perf_counter()
        timers["forward"] += t1 - t0
        timers["env"] += t2 - t1
        run.obs, run.info = obs, info
        _record(run, res, t, ot, pm, action, reward, term, trunc, timers)
        run.global_step += run.buf.actions.shape[1] * run.world
    t0 = time.perf_counter()
    with torch.no_grad(), run.fabric.autocast():
        next_value = policy.value_from(policy.encode(obs_to_tensors(run.obs, dev))).float()
    b = run.buf
    res.adv, res.ret = compute_gae(b.rewards, b.values, b.terminated, b.truncated, b.final_values, next_value,
                                   gamma, gae_lambda)
    timers["forward"] += time.perf_counter() - t0
    return res


def _act(run: Run, res: RolloutResult, t: int, temperature: float, expert: str | None, kl_coef: float):
    """The policy's action on the current observation, stored at row ``t`` of the buffer with
    its masks, log-prob, value, trunk output, expert label and BC reference log-probs."""
    buf, dev, fp_index = run.buf, run.dev, run.policy.fp_index
    ot = obs_to_tensors(run.obs, dev)
    mt = masks_to_tensors(run.info["action_mask"], dev)
    fwd = run.model(ot, mt, temperature=temperature)
    feats = fwd.get("trunk")
    if expert:
        res.labelled_n += store_expert_labels(buf, t, run.envs, run.info, mt, fp_index, expert)
    buf.store_feats(t, feats)
    action = fwd["action"]
    if expert:
        res.agree_n += int(((action == buf.expert[t]).all(1) & buf.expert_ok[t]).sum())
    pm = taken_path_masks(mt, action, fp_index)
    if kl_coef > 0:
        with run.fabric.autocast():
            out = run.ref(ot, mt, actions=action, temperature=temperature, trunk_cache=feats,
                          return_stage_logits=True)
        buf.bc_logprobs[t] = out["logprob"].float()
        for k, lg in zip(MASK_STAGES, out["stage_logits"], strict=True):
            buf.bc_stage[k][t] = torch.log_softmax(lg.float(), -1)
    for k in OBS_KEYS:
        buf.obs[k][t] = ot[k].to(buf.obs[k].dtype)
    for k in MASK_STAGES:
        buf.masks[k][t] = pm[k]
    buf.actions[t] = action
    buf.logprobs[t] = fwd["logprob"].float()
    buf.values[t] = fwd["value"].float()
    return ot, pm, action


def _record(run: Run, res: RolloutResult, t: int, ot, pm, action, reward, term, trunc, timers) -> None:
    """The env's answer to step ``t``: rewards and ends into the buffer, episode statistics, the
    self-imitation trace, and ``V(final obs)`` of truncated episodes (their bootstrap)."""
    buf, dev, info = run.buf, run.dev, run.info
    run.ep_ret += reward
    res.invalid_n += int(np.sum(info["invalid"]))
    buf.rewards[t] = torch.as_tensor(reward, dtype=torch.float32, device=dev)
    buf.terminated[t] = torch.as_tensor(term, device=dev)
    buf.truncated[t] = torch.as_tensor(trunc, device=dev)
    buf.final_values[t] = 0.0
    done = np.logical_or(term, trunc)
    if run.sil is not None:
        run.sil.record(ot, pm, action, reward, done)
    if not done.any():
        return
    fi = info["final_info"]
    for i in np.nonzero(done)[0]:
        res.stats.add(fi["family"][i], fi["level"][i], fi["ratio"][i], fi["success"][i], fi["steps"][i],
                      fi["entities"][i], run.ep_ret[i], term[i])
    run.ep_ret[done] = 0.0
    if trunc.any():  # bootstrap: V(final obs), the episode did not end by itself
        t3 = time.perf_counter()
        ti = np.nonzero(trunc)[0]
        fo = {k: np.stack([info["final_obs"][i][k] for i in ti]) for k in OBS_KEYS}
        with torch.no_grad(), run.fabric.autocast():
            v = run.policy.value_from(run.policy.encode(obs_to_tensors(fo, dev))).float()
        buf.final_values[t, torch.as_tensor(ti, device=dev)] = v
        timers["forward"] += time.perf_counter() - t3


# ---------------------------------------------------------------------------------- update
def update(run: Run, res: RolloutResult, loss: Loss, warmup: bool, ent_coef: float, kl_coef: float,
           log: dict) -> tuple[int, bool]:
    """The PPO epochs over the rollout's minibatches (the critic alone while ``warmup``), with the
    per-minibatch ``target_kl`` early stop (all-reduced over ranks). Appends each minibatch's
    figures to ``log``; returns (optimizer steps, stopped early)."""
    policy, dev = run.policy, run.dev
    policy.train()
    single = run.world == 1
    if warmup and single:
        set_actor_frozen(policy, True, run.trainable)
    b = run.buf.flat(res.adv, res.ret)
    n = run.buf.actions.shape[0] * run.buf.actions.shape[1]
    n_updates, stopped = 0, False
    for _epoch in range(loss.update_epochs):
        perm = torch.randperm(n, device=dev)
        for s in range(0, n, loss.minibatch_size):
            mb = index_rows(b, perm[s:s + loss.minibatch_size])
            total = _minibatch_loss(run, mb, loss, warmup, ent_coef, kl_coef, log)
            if total is None:
                stopped = True
                break
            _step(run, mb, loss, warmup, total, log)
            n_updates += 1
        if stopped:
            break
    if warmup and single:
        set_actor_frozen(policy, False, run.trainable)
    return n_updates, stopped


def _minibatch_loss(run: Run, mb: dict, loss: Loss, warmup: bool, ent_coef: float, kl_coef: float,
                    log: dict) -> torch.Tensor | None:
    """The clipped PPO loss of one minibatch (None: the approximate KL passed ``target_kl``)."""
    outm = run.model(mb["obs"], path_masks(mb["masks"]), actions=mb["actions"], temperature=loss.temperature,
                     trunk_cache=mb.get("feats"), return_stage_logits=True)
    newlp, entropy, newv = outm["logprob"].float(), outm["entropy"].float(), outm["value"].float()
    logratio = newlp - mb["logprobs"]
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        if run.world > 1:
            approx_kl = run.fabric.all_reduce(approx_kl, reduce_op="mean")
        log["losses/clipfrac"].append(float(((ratio - 1.0).abs() > loss.clip_coef).float().mean()))
        log["losses/approx_kl"].append(float(approx_kl))
    if not warmup and loss.target_kl > 0 and float(approx_kl) > loss.target_kl:
        return None
    a = mb["advantages"]
    if loss.norm_adv and a.numel() > 1:
        a = (a - a.mean()) / (a.std() + 1e-8)
    clipped = ratio.clamp(1 - loss.clip_coef, 1 + loss.clip_coef)
    pg_loss = torch.max(-a * ratio, -a * clipped).mean()
    if loss.clip_vloss:
        v_clip = mb["values"] + (newv - mb["values"]).clamp(-loss.clip_coef, loss.clip_coef)
        v_loss = 0.5 * torch.max((newv - mb["returns"]) ** 2, (v_clip - mb["returns"]) ** 2).mean()
    else:
        v_loss = 0.5 * ((newv - mb["returns"]) ** 2).mean()
    ent = entropy.mean()
    if kl_coef > 0:
        kl_bc = stage_kl([mb["bc_stage"][k] for k in MASK_STAGES], outm["stage_logits"]).mean()
        with torch.no_grad():  # the sampled k3 estimate of KL(pi || pi_bc), for the log
            lr_bc = (mb["bc_logprobs"] - newlp).clamp(-20.0, 20.0)
            log["losses/kl_to_bc_sampled"].append(float((lr_bc.exp() - 1.0 - lr_bc).mean()))
    else:
        kl_bc = torch.zeros((), device=run.dev)
    for k, v in (("kl_bc", kl_bc), ("entropy", ent), ("policy", pg_loss), ("value", v_loss)):
        log[f"losses/{k}"].append(v.item())
    if warmup:  # (DDP needs every trained parameter in the graph; those gradients are dropped)
        return loss.vf_coef * v_loss + (0.0 * (pg_loss + ent + kl_bc) if run.world > 1 else 0.0)
    return pg_loss - ent_coef * ent + loss.vf_coef * v_loss + kl_coef * kl_bc


def _step(run: Run, mb: dict, loss: Loss, warmup: bool, total: torch.Tensor, log: dict) -> None:
    """Backward of ``total`` (and of the expert term), gradient clipping, one optimizer step."""
    fabric, model, optimizer = run.fabric, run.model, run.optimizer
    optimizer.zero_grad(set_to_none=True)
    fabric.backward(total)
    if loss.expert_coef > 0 and not warmup:  # its own forward + backward (DDP: one each)
        ex_nll = expert_nll(model, mb, temperature=loss.temperature, trunk_cache=mb.get("feats"))
        fabric.backward(loss.expert_coef * ex_nll)  # 0 without usable labels (same on every rank)
        log["expert/nll"].append(ex_nll.item())
    if warmup and run.world > 1:  # DDP: the graph is whole; drop the actor's gradients
        keep = {id(q) for q in value_params(run.policy)}
        for q in run.trainable:
            if id(q) not in keep:
                q.grad = None
    if loss.max_grad_norm > 0:
        fabric.clip_gradients(model, optimizer, max_norm=loss.max_grad_norm, error_if_nonfinite=False)
    optimizer.step()


# ---------------------------------------------------------------------------------- the log
def log_row(run: Run, res: RolloutResult, log: dict, *, n_updates: int, stopped: bool, sil_log: list,
            schedule: dict, times: dict, it_time: float, elapsed: float, step0: int, progress: float) -> dict:
    """One iteration's row of ``metrics.csv`` (and wandb): speed, schedule, time split, env and
    loss figures, episode statistics, expert / self-imitation / curriculum state."""
    buf = run.buf
    steps = buf.actions.shape[0] * buf.actions.shape[1]
    row = {"iteration": run.iteration, "global_step": run.global_step, "progress": progress,
           "charts/SPS": (run.global_step - step0) / max(elapsed, 1e-9),
           "charts/SPS_iteration": steps * run.world / max(it_time, 1e-9),
           "charts/learning_rate": schedule["lr"], "charts/ent_coef": schedule["ent_coef"],
           "charts/bc_kl_coef": schedule["kl_coef"], "charts/critic_warmup": int(schedule["warmup"]),
           "charts/elapsed_s": elapsed}
    for k in ("env", "forward", "update", "other"):
        row[f"time/{k}_s"] = times[k]
        row[f"time/{k}_frac"] = times[k] / max(it_time, 1e-9)
    row["env/invalid_rate"] = res.invalid_n / steps
    row["env/valid_rate"] = 1.0 - row["env/invalid_rate"]
    row["env/entities"] = float(np.mean(run.info["entities"]))
    row["env/reward_mean"] = float(buf.rewards.mean())
    row.update({f"losses/{k}": mean_of(log[f"losses/{k}"]) for k in (
        "policy", "value", "entropy", "approx_kl", "kl_bc", "kl_to_bc_sampled", "clipfrac")})
    row.update({"losses/explained_variance": explained_variance(buf.values.flatten(), res.ret.flatten()),
                "losses/updates": n_updates, "losses/early_stop": int(stopped)})
    row.update(res.stats.summary())
    if schedule["expert"]:
        row.update({"expert/nll": mean_of(log["expert/nll"]),
                    "expert/agree": res.agree_n / max(res.labelled_n, 1),
                    "expert/labelled": res.labelled_n / steps})
    if run.sil is not None:
        row.update(run.sil.summary(sil_log))
    if run.curriculum is not None:
        row.update({f"curriculum/{f}": lv for f, lv in run.curriculum.level.items()})
        row["curriculum/mean_level"] = float(np.mean(list(run.curriculum.level.values())))
    return row
