"""PPO fine-tuning of the policy on the batched env (one readable loop in the spirit of CleanRL's
``ppo.py``). Entry point: :mod:`factorion.train.finetune`; everything is configured by :class:`Args`.

The algorithm, its choices and the runs that led to them are written up in ``docs/ppo.md``.
In short: masked autoregressive actions whose per-stage **path masks** are stored at rollout
and re-applied in the update (the log-prob is the same function of the parameters: tested);
GAE with truncation bootstrapped by ``V(final obs)``, never terminal; clipped surrogate +
clipped value loss - annealed entropy + an exact per-stage KL to the frozen BC policy with a
decaying weight; a tempered policy (``temperature``; evaluation is greedy); a critic warm-up
with the actor frozen; a per-minibatch ``target_kl`` early stop; the env's curriculum;
optional auxiliary terms -- expert labels on visited states (:mod:`factorion.train.ppo_expert`) and
self-imitation (:mod:`factorion.train.ppo_sil`); Lightning Fabric for devices (DDP: every rank runs
its own envs, the early stop is all-reduced, rank 0 logs and saves). ``train_blocks = k`` trains
only the top k blocks (default: all): the frozen trunk's output is then cached at rollout and
replayed in the update and for the BC reference.

Outputs (``<out>/<run>/``): ``metrics.csv`` (one row per iteration), ``last.ckpt`` (the
policy's ``config`` + ``state_dict`` -- loadable by ``Policy.load_from_checkpoint`` -- plus
optimizer, iteration, step count and curriculum state, for ``--resume``), ``policy.pt``
(:meth:`Policy.save` at the end), ``eval.json`` (:func:`evaluate_policy` of the initial and the
final policy, greedy, fixed held-out seeds) and ``wandb/`` (offline unless configured).

Layout: this module holds :class:`Args` and the loop (:func:`train`); its parts live in
:mod:`factorion.train.ppo_rollout` (buffer, path masks, GAE), :mod:`factorion.train.ppo_policy` (policy
building, temperature, KL to BC, frozen trunk), :mod:`factorion.train.ppo_log` (CSV, episode stats,
curriculum state, wandb, console), :mod:`factorion.train.ppo_eval` (:func:`evaluate_policy`),
:mod:`factorion.train.ppo_expert` and :mod:`factorion.train.ppo_sil`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from factorion.policy.model import masks_to_tensors, obs_to_tensors
from factorion.train.ppo_eval import evaluate_policy, families_for
from factorion.train.ppo_expert import expert_nll, store_expert_labels
from factorion.train.ppo_log import (
    CSVLog,
    EpisodeStats,
    console_line,
    curriculum_state,
    load_curriculum_state,
    mean_of,
    wandb_run,
)
from factorion.train.ppo_policy import (
    build_policies,
    capture_trunk,
    freeze_trunk,
    n_frozen_blocks,
    policy_temperature,
    replay_trunk,
    same_trunk,
    set_actor_frozen,
    stage_kl,
    value_params,
)
from factorion.train.ppo_rollout import (
    MASK_STAGES,
    OBS_KEYS,
    Rollout,
    compute_gae,
    explained_variance,
    index_rows,
    path_masks,
    taken_path_masks,
)
from factorion.train.ppo_sil import SelfImitation


# ---------------------------------------------------------------------------------- arguments
@dataclass
class Args:
    """Every knob of a PPO run (``train_ppo`` exposes each as ``--kebab-case``)."""

    # run
    run: str = ""  # run name: <out>/<run>; "" = smoke / finetune / scratch
    out: str = "models/ppo"
    init: str = "models/bc/last.ckpt"  # BC checkpoint to start from (and the KL reference)
    scratch: bool = False  # a fresh policy of `preset` instead (no KL reference)
    preset: str = "small"  # model preset for --scratch
    resume: bool = False  # continue <out>/<run>/last.ckpt
    seed: int = 0
    minutes: float = 30.0  # wall-clock budget of the whole command (training + evaluation); 0 = none
    total_steps: int = 0  # env steps (all ranks); 0 = until `minutes`
    threads: int = 1  # torch CPU threads (0 = all cores); 1 is fastest on a shared 2-core machine
    # env
    size: int = 11
    num_envs: int = 32
    num_steps: int = 16  # steps per env per iteration
    max_steps: int = 24  # episode truncation (bootstrapped)
    families: tuple[str, ...] = ()  # () = every family that fits the grid
    task_pool: int = 128  # tasks kept per (family, level), see env TaskSource
    task_pool_refresh: float = 0.1
    entity_cost: float = -1.0  # reward per entity on the map (< 0: the env's default)
    # curriculum
    level: int = 0  # > 0: a fixed level, no curriculum
    start_level: int = 3  # the repair levels BC learnt; 1-2 are rehearsed (working factories: keep them)
    max_level: int = 5
    promote_at: float = 0.8
    window: int = 32
    rehearse: float = 0.25
    # PPO
    lr: float = 3e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 2
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    vf_coef: float = 0.5
    ent_coef: float = 0.001  # annealed linearly to ent_coef_end
    ent_coef_end: float = 0.0
    bc_kl_coef: float = 0.05  # KL(pi || pi_bc) weight, decays linearly to bc_kl_coef_end
    bc_kl_coef_end: float = 0.0
    max_grad_norm: float = 0.5
    target_kl: float = 0.05  # per-minibatch early stop (<= 0: off)
    critic_warmup: int = 3  # iterations training the value head only
    temperature: float = 0.5  # the trained (and sampled) policy is softmax(logits / temperature)
    train_blocks: int = -1  # top transformer blocks trained (+ heads); the rest frozen and cached; -1: all
    # expert labels on visited states (factorion.train.ppo_expert): + expert_coef * NLL of the label; 0 = off
    expert_coef: float = 1.0
    # which states get a label: "all" (every state of every level, factorion.train.dagger's expert, the
    # labels make pretrain's demonstrations and DAgger rounds used) or "unique" (one piece missing, or solved)
    expert_mode: str = "all"
    # self-imitation (factorion.train.ppo_sil): replay good past episodes, weighted by (R - V)+; 0 = off
    sil_coef: float = 0.0
    sil_updates: int = 2  # minibatches per iteration (after the PPO epochs)
    sil_batch: int = 128
    sil_capacity: int = 8192
    sil_vf_coef: float = 0.01
    sil_min_return: float = 0.0  # episodes with a return above this enter the buffer
    # devices (Lightning Fabric)
    accelerator: str = "auto"
    devices: str = "1"
    strategy: str = "auto"
    precision: str = "32-true"
    # logging, checkpoints, evaluation
    wandb: bool = True
    wandb_project: str = "factorion"
    log_every: int = 1  # console line every N iterations
    save_minutes: float = 5.0
    eval: bool = True
    eval_init: bool = True  # also evaluate the starting policy (the baseline)
    eval_seeds: int = 3
    eval_levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    eval_max_steps: int = 0  # 0 = max_steps
    smoke: bool = False

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return max(1, self.batch_size // self.num_minibatches)


SMOKE = {"preset": "tiny", "num_envs": 8, "num_steps": 8, "max_steps": 16, "total_steps": 256, "minutes": 3.0,
         "task_pool": 8, "num_minibatches": 2, "update_epochs": 2, "critic_warmup": 1, "eval_seeds": 1,
         "eval_levels": (1, 3), "save_minutes": 0.0}


def apply_smoke(args: Args) -> Args:
    """Tiny everything, a run of about a minute (tests, the demo): the :data:`SMOKE` values
    replace the fields still at their defaults (explicit settings win)."""
    args.smoke = True
    default = Args()
    for k, v in SMOKE.items():
        if getattr(args, k) == getattr(default, k):
            setattr(args, k, v)
    return args


# ---------------------------------------------------------------------------------- setup helpers
def run_dir(args: Args) -> Path:
    name = args.run or ("smoke" if args.smoke else "scratch" if args.scratch else "finetune")
    return Path(args.out) / name


def _devices(v):
    if isinstance(v, int) or v == "auto":
        return v
    try:
        return int(v)
    except ValueError:
        return v


# ---------------------------------------------------------------------------------- training
def train(args: Args) -> dict:
    """Run PPO as configured; returns a summary (paths, steps, SPS, time split, evaluations)."""
    from lightning.fabric import Fabric

    from factorion.env.vector import FactorioVectorEnv
    from factorion.tasks.curriculum import Curriculum

    t_start = time.perf_counter()
    if args.smoke:
        apply_smoke(args)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    fabric = Fabric(accelerator=args.accelerator, devices=_devices(args.devices), strategy=args.strategy,
                    precision=args.precision)
    fabric.launch()
    rank, world = fabric.global_rank, fabric.world_size
    main_rank = fabric.is_global_zero
    out = run_dir(args)
    ckpt_path = out / "last.ckpt"
    ckpt = None
    if args.resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"--resume: {ckpt_path} not found")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
    fabric.seed_everything(args.seed + rank + (ckpt["iteration"] if ckpt else 0))
    policy, ref, desc = build_policies(args, ckpt)
    cfg = policy.config

    # ---- env + curriculum
    families = tuple(families_for(args.size, args.families or None))
    curriculum = None
    if args.level <= 0:
        curriculum = Curriculum(families, start_level=args.start_level, promote_at=args.promote_at,
                                window=args.window, max_level=args.max_level, rehearse=args.rehearse)
        if ckpt is not None and ckpt.get("curriculum"):
            load_curriculum_state(curriculum, ckpt["curriculum"])
    fixed_family = families[0] if (args.level > 0 and len(families) == 1) else None
    task_sampler = None
    if args.level > 0 and len(families) > 1:
        from factorion.tasks.levels import make_task

        def task_sampler(rng):  # a fixed level over the chosen families
            f = families[int(rng.integers(len(families)))]
            return make_task(f, args.level, size=args.size, seed=int(rng.integers(2**31 - 1)))
    env_kw = {"entity_cost": args.entity_cost} if args.entity_cost >= 0 else {}
    envs = FactorioVectorEnv(args.num_envs, args.size, family=fixed_family,
                             level=args.level if args.level > 0 else None, curriculum=curriculum,
                             task_sampler=task_sampler, task_pool=args.task_pool,
                             task_pool_refresh=args.task_pool_refresh, entities=cfg.entities,
                             max_items=cfg.max_items, max_recipes=cfg.max_recipes, max_steps=args.max_steps,
                             autoreset_mode="same_step", **env_kw)
    L = envs.layout

    # ---- frozen trunk (its output is cached at rollout and replayed in the update), optimiser, Fabric
    obs, info = envs.reset(seed=args.seed + 7919 * rank + (int(ckpt["iteration"]) if ckpt else 0))
    k_frozen = n_frozen_blocks(policy, args.train_blocks) if args.init else 0  # (a fresh policy trains all)
    probe_masks = {k: v[:2] for k, v in masks_to_tensors(info["action_mask"]).items()}
    frozen_names = freeze_trunk(policy, k_frozen, {k: v[:2] for k, v in obs.items()}, probe_masks)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    ref_replay = k_frozen if (ref is not None and same_trunk(policy, ref, k_frozen)) else 0
    optimizer = torch.optim.Adam(trainable, lr=args.lr, eps=1e-5)
    if ckpt is not None and ckpt.get("optimizer"):
        optimizer.load_state_dict(ckpt["optimizer"])
    model, optimizer = fabric.setup(policy, optimizer)
    dev = fabric.device
    if ref is not None:
        ref = ref.to(dev)
    fp_index = policy.fp_index

    # ---- evaluation of the start (the baseline), timed: it sizes the reserve for the final one
    eval_kw = {"families": families, "levels": args.eval_levels, "n_seeds": args.eval_seeds,
               "size": args.size, "max_steps": args.eval_max_steps or args.max_steps, "device": dev}
    eval_init, eval_reserve = None, 0.0
    if args.eval and main_rank:
        if ckpt is not None and (out / "eval_init.json").exists():
            eval_init = json.loads((out / "eval_init.json").read_text())
            eval_reserve = float(eval_init.get("seconds", 0.0))
        elif args.eval_init:
            eval_init = evaluate_policy(policy, **eval_kw)
            eval_reserve = eval_init["seconds"]
            (out / "eval_init.json").write_text(json.dumps(eval_init, indent=1))
            print(f"ppo: initial policy ({desc}): ratio {eval_init['ratio']:.3f}, success "
                  f"{eval_init['success']:.3f} on {eval_init['n']} held-out tasks ({eval_reserve:.0f} s)",
                  flush=True)
        else:
            eval_reserve = 60.0
    budget = args.minutes * 60.0 if args.minutes > 0 else math.inf
    # training stops so that the final evaluation (about as long as the first) still fits
    train_deadline = t_start + budget - 1.2 * eval_reserve - 10.0
    train_seconds = max(float(fabric.broadcast(train_deadline - time.perf_counter())), 1.0)
    t_loop = time.perf_counter()

    # ---- logging
    metrics_csv = CSVLog(out / "metrics.csv", resume=ckpt is not None) if main_rank else None
    run_cfg = {**asdict(args), "n_params": policy.num_params(False),
               "n_trainable": sum(p.numel() for p in trainable), "frozen_blocks": k_frozen,
               "frozen_params": frozen_names, "start": desc, "world_size": world,
               "batch_size": args.batch_size * world}
    wb = wandb_run(args, out, run_cfg) if main_rank else None
    if main_rank:
        (out / "args.json").write_text(json.dumps(run_cfg, indent=1, default=str))
        print(f"ppo: {policy.num_params(False):,} parameters ({run_cfg['n_trainable']:,} trained, "
              f"{k_frozen} of {len(policy.blocks)} blocks frozen), {desc}; {world} x {args.num_envs} envs x "
              f"{args.num_steps} steps per iteration on {dev}; out {out}; training budget "
              f"{'none' if math.isinf(train_seconds) else f'{train_seconds / 60:.1f} min'}"
              + (f", {args.total_steps} steps" if args.total_steps else ""), flush=True)

    # ---- state
    iteration = int(ckpt["iteration"]) if ckpt else 0
    global_step = int(ckpt["global_step"]) if ckpt else 0
    progress0 = float(ckpt.get("progress", 0.0)) if ckpt else 0.0
    step0 = global_step
    buf = Rollout(args.num_steps, args.num_envs, envs.observation_space, L.n_cells, L.n_entity, L.n_variant,
                  dev)
    ep_ret = np.zeros(args.num_envs)
    sil = (SelfImitation(args.sil_capacity, args.num_envs, envs.max_steps, args.gamma, args.sil_min_return,
                         seed=args.seed + rank) if args.sil_coef > 0 else None)
    timers = defaultdict(float)  # cumulative seconds: env, forward, update
    last_save = time.perf_counter()
    stop_reason = ""

    def progress() -> float:
        p_steps = global_step / args.total_steps if args.total_steps else 0.0
        p_time = progress0 + (1 - progress0) * (time.perf_counter() - t_loop) / train_seconds
        return min(1.0, max(p_steps, p_time if not math.isinf(train_seconds) else 0.0))

    def save(final: bool = False) -> None:
        if not main_rank:
            return
        state = {"config": cfg.to_dict(), "state_dict": policy.state_dict(),
                 "optimizer": optimizer.state_dict(), "iteration": iteration, "global_step": global_step,
                 "progress": progress(),
                 "curriculum": curriculum_state(curriculum) if curriculum is not None else {},
                 "init": args.init, "args": json.loads(json.dumps(asdict(args), default=str))}
        tmp = out / "last.ckpt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)
        if final:
            policy.save(out / "policy.pt")

    while True:
        p = progress()
        if args.total_steps and global_step >= args.total_steps:
            stop_reason = "total_steps"
        elif p >= 1.0 and not args.total_steps:
            stop_reason = "time"
        elif time.perf_counter() > t_loop + train_seconds:
            stop_reason = "time"
        if fabric.broadcast(bool(stop_reason)):
            stop_reason = stop_reason or "rank 0"
            break
        it_t0 = time.perf_counter()
        t_it = defaultdict(float)
        lr = args.lr * (1.0 - p) if args.anneal_lr else args.lr
        for g in optimizer.param_groups:
            g["lr"] = lr
        ent_coef = args.ent_coef + (args.ent_coef_end - args.ent_coef) * p
        kl_coef = (args.bc_kl_coef + (args.bc_kl_coef_end - args.bc_kl_coef) * p) if ref is not None else 0.0
        warmup = iteration < args.critic_warmup
        stats = EpisodeStats()
        invalid_n = agree_n = labelled_n = 0

        # ------------------------------------------------------------ rollout
        policy.eval()
        for t in range(args.num_steps):
            t0 = time.perf_counter()
            with torch.no_grad():
                ot = obs_to_tensors(obs, dev)
                mt = masks_to_tensors(info["action_mask"], dev)
                with capture_trunk(policy, k_frozen) as box, policy_temperature(args.temperature):
                    fwd = model(ot, mt)
                feats = box[0]
                if args.expert_coef > 0:
                    labelled_n += store_expert_labels(buf, t, envs, info, mt, fp_index, args.expert_mode)
                buf.store_feats(t, feats)
                action = fwd["action"]
                if args.expert_coef > 0:
                    agree_n += int(((action == buf.expert[t]).all(1) & buf.expert_ok[t]).sum())
                pm = taken_path_masks(mt, action, fp_index)
                if kl_coef > 0:
                    rec: list = []
                    with fabric.autocast(), replay_trunk(ref, ref_replay, feats), \
                            policy_temperature(args.temperature, rec):
                        buf.bc_logprobs[t] = ref(ot, mt, actions=action)["logprob"].float()
                    for k, lg in zip(MASK_STAGES, rec, strict=True):
                        buf.bc_stage[k][t] = torch.log_softmax(lg.float(), -1)
            for k in OBS_KEYS:
                buf.obs[k][t] = ot[k].to(buf.obs[k].dtype)
            for k in MASK_STAGES:
                buf.masks[k][t] = pm[k]
            buf.actions[t] = action
            buf.logprobs[t] = fwd["logprob"].float()
            buf.values[t] = fwd["value"].float()
            a_np = action.cpu().numpy()
            t1 = time.perf_counter()
            obs, reward, term, trunc, info = envs.step(a_np)
            t2 = time.perf_counter()
            t_it["forward"] += t1 - t0
            t_it["env"] += t2 - t1
            ep_ret += reward
            invalid_n += int(np.sum(info["invalid"]))
            buf.rewards[t] = torch.as_tensor(reward, dtype=torch.float32, device=dev)
            buf.terminated[t] = torch.as_tensor(term, device=dev)
            buf.truncated[t] = torch.as_tensor(trunc, device=dev)
            buf.final_values[t] = 0.0
            done = np.logical_or(term, trunc)
            if sil is not None:
                sil.record(ot, pm, action, reward, done)
            if done.any():
                fi = info["final_info"]
                for i in np.nonzero(done)[0]:
                    stats.add(fi["family"][i], fi["level"][i], fi["ratio"][i], fi["success"][i],
                              fi["steps"][i], fi["entities"][i], ep_ret[i], term[i])
                ep_ret[done] = 0.0
                if trunc.any():  # bootstrap: V(final obs), the episode did not end by itself
                    t3 = time.perf_counter()
                    ti = np.nonzero(trunc)[0]
                    fo = {k: np.stack([info["final_obs"][i][k] for i in ti]) for k in OBS_KEYS}
                    with torch.no_grad(), fabric.autocast():
                        v = policy.value_from(policy.encode(obs_to_tensors(fo, dev))).float()
                    buf.final_values[t, torch.as_tensor(ti, device=dev)] = v
                    t_it["forward"] += time.perf_counter() - t3
            global_step += args.num_envs * world
        t0 = time.perf_counter()
        with torch.no_grad(), fabric.autocast():
            next_value = policy.value_from(policy.encode(obs_to_tensors(obs, dev))).float()
        adv, ret = compute_gae(buf.rewards, buf.values, buf.terminated, buf.truncated, buf.final_values,
                               next_value, args.gamma, args.gae_lambda)
        t_it["forward"] += time.perf_counter() - t0

        # ------------------------------------------------------------ update
        t0 = time.perf_counter()
        policy.train()
        single = world == 1
        if warmup and single:
            set_actor_frozen(policy, True, trainable)
        b = buf.flat(adv, ret)
        n = args.batch_size
        lg = defaultdict(list)  # per-minibatch figures for the log
        n_updates, stopped = 0, False
        for _epoch in range(args.update_epochs):
            perm = torch.randperm(n, device=dev)
            for s in range(0, n, args.minibatch_size):
                mb = index_rows(b, perm[s:s + args.minibatch_size])
                rec: list = []  # the policy's stage logits (for the KL to BC)
                with replay_trunk(policy, k_frozen, mb.get("feats")), \
                        policy_temperature(args.temperature, rec):
                    outm = model(mb["obs"], path_masks(mb["masks"]), actions=mb["actions"])
                newlp, entropy, newv = outm["logprob"].float(), outm["entropy"].float(), outm["value"].float()
                logratio = newlp - mb["logprobs"]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    if world > 1:
                        approx_kl = fabric.all_reduce(approx_kl, reduce_op="mean")
                    lg["losses/clipfrac"].append(float(((ratio - 1.0).abs() > args.clip_coef).float().mean()))
                    lg["losses/approx_kl"].append(float(approx_kl))
                if not warmup and args.target_kl > 0 and float(approx_kl) > args.target_kl:
                    stopped = True
                    break
                a = mb["advantages"]
                if args.norm_adv and a.numel() > 1:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                clipped = ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(-a * ratio, -a * clipped).mean()
                if args.clip_vloss:
                    v_clip = mb["values"] + (newv - mb["values"]).clamp(-args.clip_coef, args.clip_coef)
                    v_loss = 0.5 * torch.max((newv - mb["returns"]) ** 2,
                                             (v_clip - mb["returns"]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((newv - mb["returns"]) ** 2).mean()
                ent = entropy.mean()
                if kl_coef > 0:
                    kl_bc = stage_kl([mb["bc_stage"][k] for k in MASK_STAGES], rec).mean()
                    with torch.no_grad():  # the sampled k3 estimate of KL(pi || pi_bc), for the log
                        lr_bc = (mb["bc_logprobs"] - newlp).clamp(-20.0, 20.0)
                        lg["losses/kl_to_bc_sampled"].append(float((lr_bc.exp() - 1.0 - lr_bc).mean()))
                else:
                    kl_bc = torch.zeros((), device=dev)
                if warmup:  # (DDP needs every trained parameter in the graph; those gradients are dropped)
                    loss = args.vf_coef * v_loss + (0.0 * (pg_loss + ent + kl_bc) if not single else 0.0)
                else:
                    loss = pg_loss - ent_coef * ent + args.vf_coef * v_loss + kl_coef * kl_bc
                optimizer.zero_grad(set_to_none=True)
                fabric.backward(loss)
                if args.expert_coef > 0 and not warmup:  # its own forward + backward (DDP: one each)
                    with replay_trunk(policy, k_frozen, mb.get("feats")), \
                            policy_temperature(args.temperature):
                        ex_nll = expert_nll(model, mb)  # 0 without usable labels (same on every rank)
                    fabric.backward(args.expert_coef * ex_nll)
                    lg["expert/nll"].append(ex_nll.item())
                if warmup and not single:  # DDP: the graph is whole; drop the actor's gradients
                    keep = {id(q) for q in value_params(policy)}
                    for q in trainable:
                        if id(q) not in keep:
                            q.grad = None
                if args.max_grad_norm > 0:
                    fabric.clip_gradients(model, optimizer, max_norm=args.max_grad_norm,
                                          error_if_nonfinite=False)
                optimizer.step()
                n_updates += 1
                for k, v in (("kl_bc", kl_bc), ("entropy", ent), ("policy", pg_loss), ("value", v_loss)):
                    lg[f"losses/{k}"].append(v.item())
            if stopped:
                break
        sil_ready = sil is not None and not warmup and sil.size >= args.sil_batch
        if sil is not None and world > 1:  # every rank steps together (DDP), once every buffer is ready
            flag = torch.tensor(float(sil_ready), device=dev)
            sil_ready = float(fabric.all_reduce(flag, reduce_op="min")) > 0
        sil_log = sil.update(model, optimizer, fabric, args, dev) if sil_ready else []
        if warmup and single:
            set_actor_frozen(policy, False, trainable)
        t_it["update"] += time.perf_counter() - t0
        iteration += 1

        # ------------------------------------------------------------ diagnostics
        it_time = time.perf_counter() - it_t0
        t_it["other"] = max(0.0, it_time - t_it["env"] - t_it["forward"] - t_it["update"])
        for k, v in t_it.items():
            timers[k] += v
        elapsed = time.perf_counter() - t_loop
        row = {"iteration": iteration, "global_step": global_step, "progress": progress(),
               "charts/SPS": (global_step - step0) / max(elapsed, 1e-9),
               "charts/SPS_iteration": args.batch_size * world / max(it_time, 1e-9),
               "charts/learning_rate": lr, "charts/ent_coef": ent_coef, "charts/bc_kl_coef": kl_coef,
               "charts/critic_warmup": int(warmup), "charts/elapsed_s": elapsed}
        for k in ("env", "forward", "update", "other"):
            row[f"time/{k}_s"] = t_it[k]
            row[f"time/{k}_frac"] = t_it[k] / max(it_time, 1e-9)
        row["env/invalid_rate"] = invalid_n / (args.num_envs * args.num_steps)
        row["env/valid_rate"] = 1.0 - row["env/invalid_rate"]
        row["env/entities"] = float(np.mean(info["entities"]))
        row["env/reward_mean"] = float(buf.rewards.mean())
        row.update({f"losses/{k}": mean_of(lg[f"losses/{k}"]) for k in (
            "policy", "value", "entropy", "approx_kl", "kl_bc", "kl_to_bc_sampled", "clipfrac")})
        row.update({"losses/explained_variance": explained_variance(buf.values.flatten(), ret.flatten()),
                    "losses/updates": n_updates, "losses/early_stop": int(stopped)})
        row.update(stats.summary())
        if args.expert_coef > 0:
            row.update({"expert/nll": mean_of(lg["expert/nll"]), "expert/agree": agree_n / max(labelled_n, 1),
                        "expert/labelled": labelled_n / (args.num_envs * args.num_steps)})
        if sil is not None:
            row.update(sil.summary(sil_log))
        if curriculum is not None:
            row.update({f"curriculum/{f}": lv for f, lv in curriculum.level.items()})
            row["curriculum/mean_level"] = float(np.mean(list(curriculum.level.values())))
        if main_rank:
            metrics_csv.log(row)
            if wb is not None:
                wb.log({k: v for k, v in row.items() if isinstance(v, int | float)}, step=global_step)
            if iteration % max(1, args.log_every) == 0 or iteration == 1:
                print(console_line(row), flush=True)
        due = args.save_minutes <= 0 or time.perf_counter() - last_save >= 60 * args.save_minutes
        if main_rank and due:
            save()
            last_save = time.perf_counter()

    # ---- end: checkpoint, final evaluation
    save(final=True)
    total_loop = time.perf_counter() - t_loop
    sps = (global_step - step0) / max(total_loop, 1e-9)
    timers["other"] = max(0.0, total_loop - timers["env"] - timers["forward"] - timers["update"])  # + saves
    split = {k: timers[k] / max(total_loop, 1e-9) for k in ("env", "forward", "update", "other")}
    summary = {"run_dir": str(out), "checkpoint": str(ckpt_path), "policy": str(out / "policy.pt"),
               "iterations": iteration, "global_step": global_step, "steps_this_run": global_step - step0,
               "seconds": total_loop, "SPS": sps, "time_split": split, "stop": stop_reason,
               "curriculum": curriculum.state() if curriculum is not None else None}
    if args.eval and main_rank:
        ev = evaluate_policy(policy, **eval_kw)
        (out / "eval_final.json").write_text(json.dumps(ev, indent=1))
        summary["eval_final"] = {k: ev[k] for k in ("ratio", "success", "finished", "steps", "n")}
        if eval_init is not None:
            summary["eval_init"] = {k: eval_init[k] for k in ("ratio", "success", "finished", "steps", "n")}
        (out / "eval.json").write_text(json.dumps({"init": eval_init, "final": ev,
                                                   "summary": {k: v for k, v in summary.items()}}, indent=1))
        print(f"ppo: final policy: ratio {ev['ratio']:.3f}, success {ev['success']:.3f}"
              + (f" (start: ratio {eval_init['ratio']:.3f}, success {eval_init['success']:.3f})"
                 if eval_init is not None else "") + f"; {out / 'eval.json'}", flush=True)
    if main_rank:
        print(f"ppo: {global_step - step0} steps in {total_loop:.0f} s = {sps:.1f} SPS; time split "
              + ", ".join(f"{k} {v:.0%}" for k, v in split.items()) + f"; checkpoint {ckpt_path}", flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    if wb is not None:
        wb.summary.update({k: v for k, v in summary.items() if isinstance(v, int | float)})
        wb.finish()
    envs.close()
    return summary


__all__ = ["Args", "apply_smoke", "compute_gae", "evaluate_policy", "path_masks", "taken_path_masks", "train",
           "Rollout", "CSVLog", "curriculum_state", "load_curriculum_state"]
