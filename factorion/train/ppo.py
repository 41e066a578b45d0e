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

Layout: this module holds :class:`Args` and the loop, CleanRL-style: :func:`train` runs
:func:`setup`, then per iteration (:func:`iteration`) :func:`schedule` ->
:func:`~factorion.train.ppo_loop.rollout` -> :func:`~factorion.train.ppo_loop.update`
(+ :func:`sil_update`) -> :func:`~factorion.train.ppo_loop.log_row`, then :func:`finish`. The
steps live in :mod:`factorion.train.ppo_loop` and take the fields they need, not :class:`Args`.
Their parts live in :mod:`factorion.train.ppo_rollout`
(buffer, path masks, GAE), :mod:`factorion.train.ppo_policy` (policy building, KL to BC, frozen
trunk), :mod:`factorion.train.ppo_log` (CSV, episode stats, curriculum state, wandb, console),
:mod:`factorion.train.ppo_eval` (:func:`evaluate_policy`), :mod:`factorion.train.ppo_expert` and
:mod:`factorion.train.ppo_sil`; the temperature and the trunk cache are the policy's own
(:meth:`factorion.policy.model.Policy.forward`).
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

from factorion.policy.adapters import masks_to_tensors
from factorion.tasks.splits import families_for
from factorion.train.ppo_eval import evaluate_policy
from factorion.train.ppo_log import CSVLog, console_line, curriculum_state, load_curriculum_state, wandb_run
from factorion.train.ppo_loop import Loss, Run, log_row, rollout, update
from factorion.train.ppo_policy import build_policies, freeze_trunk, n_frozen_blocks, same_trunk
from factorion.train.ppo_rollout import Rollout
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
    # which states get a label: "unique" (one piece missing, or solved: the measured default, docs/ppo.md),
    # "first" (the first edit towards the reference, every state)
    # or "all" (every state of every level, factorion.train.dagger's expert; off by default: from the same
    # BC start (held-out ratio 0.350) make demo's 4-min run fell to 0.000 with it, rose to 0.369 without)
    expert_mode: str = "unique"
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


def loss_settings(args: Args) -> Loss:
    """The fields of ``args`` the update needs."""
    return Loss(args.temperature, args.clip_coef, args.clip_vloss, args.norm_adv, args.vf_coef,
                args.target_kl, args.max_grad_norm, args.expert_coef, args.update_epochs,
                args.minibatch_size)


def sil_update(run: Run, args: Args, warmup: bool) -> list[dict]:
    """Self-imitation steps once its buffer holds a batch (every rank together under DDP)."""
    sil = run.sil
    ready = sil is not None and not warmup and sil.size >= args.sil_batch
    if sil is not None and run.world > 1:
        flag = torch.tensor(float(ready), device=run.dev)
        ready = float(run.fabric.all_reduce(flag, reduce_op="min")) > 0
    if not ready:
        return []
    return sil.update(run.model, run.optimizer, run.fabric, run.dev, updates=args.sil_updates,
                      batch=args.sil_batch, coef=args.sil_coef, vf_coef=args.sil_vf_coef,
                      temperature=args.temperature, max_grad_norm=args.max_grad_norm)


def schedule(args: Args, p: float, iteration: int, has_ref: bool) -> dict:
    """The annealed coefficients at progress ``p`` in [0, 1] and whether the critic warms up."""
    return {"lr": args.lr * (1.0 - p) if args.anneal_lr else args.lr,
            "ent_coef": args.ent_coef + (args.ent_coef_end - args.ent_coef) * p,
            "kl_coef": (args.bc_kl_coef + (args.bc_kl_coef_end - args.bc_kl_coef) * p) if has_ref else 0.0,
            "warmup": iteration < args.critic_warmup, "expert": args.expert_coef > 0}


# ---------------------------------------------------------------------------------- setup
def make_envs(args: Args, families: tuple[str, ...], cfg, ckpt: dict | None):
    """The batched env (same-step autoreset) and the curriculum (None at a fixed level)."""
    from factorion.env.vector import FactorioVectorEnv
    from factorion.tasks.curriculum import Curriculum

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
    return envs, curriculum


def setup(args: Args, fabric, ckpt: dict | None) -> tuple[Run, str, list[str]]:
    """The run's policies, envs (reset), frozen trunk, optimiser and buffers: (run, description
    of the start, frozen parameter names)."""
    rank = fabric.global_rank
    it0 = int(ckpt["iteration"]) if ckpt else 0
    fabric.seed_everything(args.seed + rank + it0)
    policy, ref, desc, args.init = build_policies(args.init, args.scratch, args.preset, args.smoke,
                                                  args.bc_kl_coef, ckpt)
    families = tuple(families_for(args.size, args.families or None))
    envs, curriculum = make_envs(args, families, policy.config, ckpt)
    obs, info = envs.reset(seed=args.seed + 7919 * rank + it0)
    # the frozen trunk: its output is cached at rollout and replayed in the update (a fresh policy trains all)
    k_frozen = n_frozen_blocks(policy, args.train_blocks) if args.init else 0
    probe_masks = {k: v[:2] for k, v in masks_to_tensors(info["action_mask"]).items()}
    frozen_names = freeze_trunk(policy, k_frozen, {k: v[:2] for k, v in obs.items()}, probe_masks)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    if ref is not None:
        ref.trunk_blocks = k_frozen if same_trunk(policy, ref, k_frozen) else 0
    optimizer = torch.optim.Adam(trainable, lr=args.lr, eps=1e-5)
    if ckpt is not None and ckpt.get("optimizer"):
        optimizer.load_state_dict(ckpt["optimizer"])
    model, optimizer = fabric.setup(policy, optimizer)
    if ref is not None:
        ref = ref.to(fabric.device)
    L = envs.layout
    buf = Rollout(args.num_steps, args.num_envs, envs.observation_space, L.n_cells, L.n_entity, L.n_variant,
                  fabric.device)
    sil = (SelfImitation(args.sil_capacity, args.num_envs, envs.max_steps, args.gamma, args.sil_min_return,
                         seed=args.seed + rank) if args.sil_coef > 0 else None)
    run = Run(fabric, policy, model, ref, optimizer, trainable, envs, curriculum, buf, sil, obs, info,
              np.zeros(args.num_envs), k_frozen, it0, int(ckpt["global_step"]) if ckpt else 0)
    return run, desc, frozen_names


def evaluate_start(args: Args, run: Run, out: Path, resumed: bool, desc: str, eval_kw: dict
                   ) -> tuple[dict | None, float]:
    """The starting policy's evaluation (the baseline; on resume the saved one) and the seconds
    to reserve for the final evaluation."""
    if not (args.eval and run.fabric.is_global_zero):
        return None, 0.0
    if resumed and (out / "eval_init.json").exists():
        eval_init = json.loads((out / "eval_init.json").read_text())
        return eval_init, float(eval_init.get("seconds", 0.0))
    if not args.eval_init:
        return None, 60.0
    eval_init = evaluate_policy(run.policy, **eval_kw)
    (out / "eval_init.json").write_text(json.dumps(eval_init, indent=1))
    print(f"ppo: initial policy ({desc}): ratio {eval_init['ratio']:.3f}, success "
          f"{eval_init['success']:.3f} on {eval_init['n']} held-out tasks ({eval_init['seconds']:.0f} s)",
          flush=True)
    return eval_init, eval_init["seconds"]


class Clock:
    """The run's progress in [0, 1]: steps done of ``total_steps`` or time spent of the training
    budget, whichever is further (a resumed run starts at its saved progress)."""

    def __init__(self, total_steps: int, train_seconds: float, progress0: float):
        self.total_steps, self.train_seconds, self.progress0 = total_steps, train_seconds, progress0
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def progress(self, global_step: int) -> float:
        p_steps = global_step / self.total_steps if self.total_steps else 0.0
        p_time = self.progress0 + (1 - self.progress0) * self.elapsed() / self.train_seconds
        return min(1.0, max(p_steps, p_time if not math.isinf(self.train_seconds) else 0.0))

    def stop_reason(self, global_step: int) -> str:
        if self.total_steps and global_step >= self.total_steps:
            return "total_steps"
        if self.progress(global_step) >= 1.0 and not self.total_steps:
            return "time"
        return "time" if self.elapsed() > self.train_seconds else ""


def save(run: Run, args: Args, out: Path, progress: float, final: bool = False) -> None:
    """``last.ckpt`` (atomically; rank 0): the policy, optimizer, counters, curriculum; ``final``:
    also ``policy.pt``."""
    if not run.fabric.is_global_zero:
        return
    cur = run.curriculum
    state = {"config": run.policy.config.to_dict(), "state_dict": run.policy.state_dict(),
             "optimizer": run.optimizer.state_dict(), "iteration": run.iteration,
             "global_step": run.global_step, "progress": progress,
             "curriculum": curriculum_state(cur) if cur is not None else {},
             "init": args.init, "args": json.loads(json.dumps(asdict(args), default=str))}
    tmp = out / "last.ckpt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out / "last.ckpt")
    if final:
        run.policy.save(out / "policy.pt")


# ---------------------------------------------------------------------------------- training
def train(args: Args) -> dict:
    """Run PPO as configured; returns a summary (paths, steps, SPS, time split, evaluations)."""
    from lightning.fabric import Fabric

    t_start = time.perf_counter()
    if args.smoke:
        apply_smoke(args)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    fabric = Fabric(accelerator=args.accelerator, devices=_devices(args.devices), strategy=args.strategy,
                    precision=args.precision)
    fabric.launch()
    out = run_dir(args)
    ckpt = load_resume(out / "last.ckpt") if args.resume else None
    if fabric.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
    run, desc, frozen_names = setup(args, fabric, ckpt)
    eval_kw = {"families": families_for(args.size, args.families or None), "levels": args.eval_levels,
               "n_seeds": args.eval_seeds, "size": args.size,
               "max_steps": args.eval_max_steps or args.max_steps, "device": fabric.device}
    eval_init, eval_reserve = evaluate_start(args, run, out, ckpt is not None, desc, eval_kw)
    budget = args.minutes * 60.0 if args.minutes > 0 else math.inf
    # training stops so that the final evaluation (about as long as the first) still fits
    train_deadline = t_start + budget - 1.2 * eval_reserve - 10.0
    train_seconds = max(float(fabric.broadcast(train_deadline - time.perf_counter())), 1.0)
    clock = Clock(args.total_steps, train_seconds, float(ckpt.get("progress", 0.0)) if ckpt else 0.0)
    metrics_csv, wb = start_logs(args, run, out, desc, frozen_names, train_seconds, ckpt is not None)
    step0, stop_reason, last_save = run.global_step, "", time.perf_counter()
    timers = defaultdict(float)  # cumulative seconds: env, forward, update
    while True:
        stop_reason = clock.stop_reason(run.global_step)
        if fabric.broadcast(bool(stop_reason)):
            stop_reason = stop_reason or "rank 0"
            break
        row = iteration(run, args, clock, step0, timers)
        if fabric.is_global_zero:
            metrics_csv.log(row)
            if wb is not None:
                wb.log({k: v for k, v in row.items() if isinstance(v, int | float)}, step=run.global_step)
            if run.iteration % max(1, args.log_every) == 0 or run.iteration == 1:
                print(console_line(row), flush=True)
        if fabric.is_global_zero and (args.save_minutes <= 0
                                      or time.perf_counter() - last_save >= 60 * args.save_minutes):
            save(run, args, out, clock.progress(run.global_step))
            last_save = time.perf_counter()
    save(run, args, out, clock.progress(run.global_step), final=True)
    return finish(args, run, out, clock, step0, timers, stop_reason, eval_init, eval_kw, wb)


def iteration(run: Run, args: Args, clock: Clock, step0: int, timers: dict) -> dict:
    """One iteration, CleanRL-style: schedule, :func:`rollout`, :func:`update` (+ self-imitation),
    :func:`log_row`; ``timers`` accumulate the time split. Returns the log row."""
    it_t0 = time.perf_counter()
    t_it = defaultdict(float)
    sched = schedule(args, clock.progress(run.global_step), run.iteration, run.ref is not None)
    for g in run.optimizer.param_groups:
        g["lr"] = sched["lr"]
    expert = args.expert_mode if sched["expert"] else None
    res = rollout(run, args.num_steps, args.temperature, expert, sched["kl_coef"], args.gamma,
                  args.gae_lambda, t_it)
    t0 = time.perf_counter()
    log = defaultdict(list)  # per-minibatch figures for the log
    n_updates, stopped = update(run, res, loss_settings(args), sched["warmup"], sched["ent_coef"],
                                sched["kl_coef"], log)
    sil_log = sil_update(run, args, sched["warmup"])
    t_it["update"] += time.perf_counter() - t0
    run.iteration += 1
    it_time = time.perf_counter() - it_t0
    t_it["other"] = max(0.0, it_time - t_it["env"] - t_it["forward"] - t_it["update"])
    for k, v in t_it.items():
        timers[k] += v
    return log_row(run, res, log, n_updates=n_updates, stopped=stopped, sil_log=sil_log, schedule=sched,
                   times=t_it, it_time=it_time, elapsed=clock.elapsed(), step0=step0,
                   progress=clock.progress(run.global_step))


def load_resume(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"--resume: {path} not found")
    return torch.load(path, map_location="cpu", weights_only=True)


def start_logs(args: Args, run: Run, out: Path, desc: str, frozen_names: list[str], train_seconds: float,
               resumed: bool):
    """(metrics CSV, wandb run or None) on rank 0 (else (None, None)); writes ``args.json`` and
    prints the run's one-line description."""
    if not run.fabric.is_global_zero:
        return None, None
    policy, world = run.policy, run.world
    n_trainable = sum(p.numel() for p in run.trainable)
    run_cfg = {**asdict(args), "n_params": policy.num_params(False), "n_trainable": n_trainable,
               "frozen_blocks": run.k_frozen, "frozen_params": frozen_names, "start": desc,
               "world_size": world, "batch_size": args.batch_size * world}
    metrics_csv = CSVLog(out / "metrics.csv", resume=resumed)
    wb = wandb_run(args.wandb, args.wandb_project, args.resume, out, run_cfg)
    (out / "args.json").write_text(json.dumps(run_cfg, indent=1, default=str))
    print(f"ppo: {policy.num_params(False):,} parameters ({n_trainable:,} trained, "
          f"{run.k_frozen} of {len(policy.blocks)} blocks frozen), {desc}; {world} x {args.num_envs} envs x "
          f"{args.num_steps} steps per iteration on {run.dev}; out {out}; training budget "
          f"{'none' if math.isinf(train_seconds) else f'{train_seconds / 60:.1f} min'}"
          + (f", {args.total_steps} steps" if args.total_steps else ""), flush=True)
    return metrics_csv, wb


def finish(args: Args, run: Run, out: Path, clock: Clock, step0: int, timers: dict, stop_reason: str,
           eval_init: dict | None, eval_kw: dict, wb) -> dict:
    """The end: the final evaluation, ``eval.json`` and ``summary.json``, the console summary."""
    total_loop = clock.elapsed()
    steps = run.global_step - step0
    sps = steps / max(total_loop, 1e-9)
    timers["other"] = max(0.0, total_loop - timers["env"] - timers["forward"] - timers["update"])  # + saves
    split = {k: timers[k] / max(total_loop, 1e-9) for k in ("env", "forward", "update", "other")}
    summary = {"run_dir": str(out), "checkpoint": str(out / "last.ckpt"), "policy": str(out / "policy.pt"),
               "iterations": run.iteration, "global_step": run.global_step, "steps_this_run": steps,
               "seconds": total_loop, "SPS": sps, "time_split": split, "stop": stop_reason,
               "curriculum": run.curriculum.state() if run.curriculum is not None else None}
    main_rank = run.fabric.is_global_zero
    if args.eval and main_rank:
        ev = evaluate_policy(run.policy, **eval_kw)
        (out / "eval_final.json").write_text(json.dumps(ev, indent=1))
        keys = ("ratio", "success", "finished", "steps", "n")
        summary["eval_final"] = {k: ev[k] for k in keys}
        if eval_init is not None:
            summary["eval_init"] = {k: eval_init[k] for k in keys}
        (out / "eval.json").write_text(json.dumps({"init": eval_init, "final": ev, "summary": dict(summary)},
                                                  indent=1))
        print(f"ppo: final policy: ratio {ev['ratio']:.3f}, success {ev['success']:.3f}"
              + (f" (start: ratio {eval_init['ratio']:.3f}, success {eval_init['success']:.3f})"
                 if eval_init is not None else "") + f"; {out / 'eval.json'}", flush=True)
    if main_rank:
        print(f"ppo: {steps} steps in {total_loop:.0f} s = {sps:.1f} SPS; time split "
              + ", ".join(f"{k} {v:.0%}" for k, v in split.items()) + f"; checkpoint {out / 'last.ckpt'}",
              flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    if wb is not None:
        wb.summary.update({k: v for k, v in summary.items() if isinstance(v, int | float)})
        wb.finish()
    run.envs.close()
    return summary
