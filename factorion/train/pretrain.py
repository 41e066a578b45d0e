"""Behaviour cloning entry point: ``python -m factorion.train.pretrain --data data/out --max-minutes 20``.

Thin: arguments -> :class:`factorion.train.bc.BCDataModule` +
:class:`factorion.train.bc_module.BCModule` ->
``lightning.Trainer``. Checkpoints ``best.ckpt`` (lowest ``val/loss``) and ``last.ckpt`` go to
``--out`` (default ``models/bc``; ``--smoke`` writes to ``models/bc/smoke``); ``--resume``
continues from ``last.ckpt`` there (weights, optimizer, schedule, step; ``--max-minutes`` more;
the model and optimiser settings come from the checkpoint). Logs: CSV under ``<out>/csv`` and
Weights & Biases under ``<out>/wandb`` (offline unless ``WANDB_API_KEY`` is set and
``WANDB_MODE`` is not). The same command runs on CPU and GPU: ``--accelerator``, ``--devices``,
``--strategy`` and ``--precision`` (``auto``: bf16-mixed on a CUDA GPU, else 32-true) go
straight to the Trainer.

Data: ``--data``'s mined rows mixed with ``--demos``' planner demonstrations (``make demos``), a share
``--demo-share`` (default 0.5) of the episodes being demonstrations; either alone when the other folder
holds no Parquet; procedural tasks when neither does. DAgger (``--dagger-rounds``; default 2 rounds when
the data holds procedural rows, i.e. demonstrations or ``--procedural``): the last ``--dagger-share``
(0.4) of the time goes to rounds of roll-outs of the current policy on fresh procedural tasks whose
visited states the expert relabels (:mod:`factorion.train.dagger`, re-planned around the policy's own
pieces), aggregated and mixed in at ``--dagger-weight`` (0.3) of the episodes; BC and every round share
one AdamW (no restart, no second warm-up).

``--smoke``: a few steps of the tiny preset on procedural tasks (seconds), for CI and checks.
Load the result with ``Policy.load_from_checkpoint(path)``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from factorion.tasks.splits import DAGGER_SEED0, ROLLOUT_SEED0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m factorion.train.pretrain",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data",
        default="data/out",
        help="Parquet directory of `make data`; procedural tasks when it holds no *.parquet",
    )
    p.add_argument("--demos", default="data/demos",
                   help="planner demonstrations of `make demos` (Parquet), mixed in when it holds any")
    p.add_argument("--demo-share", type=float, default=0.5,
                   help="share of the training episodes drawn from --demos (the rest: --data's mined rows); "
                        "1 when --data holds no Parquet")
    p.add_argument("--data-levels", type=int, nargs="+", default=None,
                   help="read only --data's mined rows of these levels (default: all; make data writes "
                        "1, 3, 4, 5)")
    p.add_argument("--dagger-rounds", type=int, default=-1,
                   help="DAgger rounds after BC (-1: 2 when the training data holds procedural rows, i.e. "
                        "--demos or --procedural, else 0)")
    p.add_argument("--dagger-share", type=float, default=0.4,
                   help="share of --max-minutes spent in the DAgger rounds (roll-outs + training)")
    p.add_argument("--dagger-tasks", type=int, default=96, help="procedural tasks rolled out per round")
    p.add_argument("--dagger-weight", type=float, default=0.3,
                   help="share of the training episodes drawn from the aggregated DAgger episodes")
    p.add_argument("--dagger-levels", type=int, nargs="+", default=[3, 4, 5], help="levels of DAgger tasks")
    p.add_argument("--dagger-seed0", type=int, default=DAGGER_SEED0,
                   help="first DAgger task seed (tasks.splits.DAGGER_SEED0; round r rolls out the "
                        "--dagger-tasks seeds from it + r x --dagger-tasks; a later stage passes the seeds "
                        "after the earlier's so it meets new tasks)")
    p.add_argument("--dagger-accept", action="store_true",
                   help="label a visited state with the policy's own next edit where the planner confirms it "
                        "is on a path no longer than the expert's (factorion.train.dagger, accepted moves)")
    p.add_argument(
        "--procedural", action="store_true", help="train on procedural tasks even if Parquet exists"
    )
    p.add_argument(
        "--out", default=None, help="checkpoint/log directory (default models/bc, smoke: models/bc/smoke)"
    )
    p.add_argument("--max-minutes", type=float, default=20.0, help="wall-clock budget of fit()")
    p.add_argument("--max-steps", type=int, default=-1, help="optimizer steps (-1: until --max-minutes)")
    p.add_argument("--smoke", action="store_true", help="a few steps of the tiny preset on procedural tasks")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.ckpt if it exists")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="start from this checkpoint's policy (weights and sizes; --preset ignored) with "
                        "a fresh optimiser at --lr")
    p.add_argument("--preset", default="default", choices=("tiny", "cpu", "small", "default"))
    p.add_argument("--d-model", type=int, default=None)
    p.add_argument("--n-layers", type=int, default=None)
    p.add_argument("--n-heads", type=int, default=None)
    p.add_argument("--conv-stem", type=int, default=None, help="3x3 conv layers before attention")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--value-coef", type=float, default=0.1)
    p.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default: cores-1, at most 8)"
    )
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0: CPU: all cores for Parquet, cores - workers for procedural)")
    p.add_argument("--shuffle-buffer", type=int, default=2048)
    p.add_argument("--levels", type=int, nargs="+", default=[3, 4], help="procedural task levels")
    p.add_argument("--sizes", type=int, nargs="+", default=[11], help="procedural grid sizes")
    p.add_argument("--families", nargs="+", default=None,
                   help="procedural task families (default all; DAgger's tasks too): each task draws one "
                        "uniformly from this list, so a family named twice comes twice as often")
    p.add_argument("--train-tasks", type=int, default=2000, help="procedural tasks per epoch")
    p.add_argument("--val-tasks", type=int, default=64, help="validation tasks / rows")
    p.add_argument(
        "--rollout-tasks", type=int, default=4, help="held-out tasks rolled out in the env per validation"
    )
    p.add_argument(
        "--val-every",
        type=int,
        default=0,
        help="validate every N training batches (0: 100 on CPU, 1000 on GPU)",
    )
    p.add_argument("--limit-val-batches", type=int, default=50)
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--devices", default="auto")
    p.add_argument("--strategy", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--logger", default="csv,wandb", help="comma list of csv, wandb (or none)")
    p.add_argument("--wandb-project", default="factorion")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _smoke(args) -> None:
    args.preset, args.procedural = "tiny", True
    args.max_steps = 6 if args.max_steps < 0 else args.max_steps
    args.batch_size = min(args.batch_size, 16)
    args.train_tasks, args.val_tasks, args.rollout_tasks = 12, 4, 1
    args.val_every, args.limit_val_batches, args.warmup_steps = 3, 2, 2
    args.workers = 0 if args.workers is None else args.workers
    args.threads = args.threads or 1
    args.shuffle_buffer = 64
    args.sizes = [s for s in args.sizes if s <= 11] or [11]
    args.dagger_rounds = 0 if args.dagger_rounds < 0 else args.dagger_rounds
    args.dagger_tasks = min(args.dagger_tasks, 2)


def _check_dagger_seeds(parser, args) -> None:
    """The DAgger rounds' task seeds must stay inside their range of ``tasks.splits`` (disjoint from
    the demonstrations', validation's and the benchmark's)."""
    last = args.dagger_seed0 + max(args.dagger_rounds, 2) * args.dagger_tasks
    if not DAGGER_SEED0 <= args.dagger_seed0 or last > ROLLOUT_SEED0:
        parser.error(f"--dagger-seed0 {args.dagger_seed0}: the rounds' seeds must lie in "
                     f"[{DAGGER_SEED0:,}, {ROLLOUT_SEED0:,}) (tasks.splits), they would reach {last:,}")


def _devices(v: str):
    if v == "auto":
        return v
    try:
        return int(v)
    except ValueError:
        return v  # e.g. "0,1"


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_dagger_seeds(parser, args)
    if args.smoke:
        _smoke(args)
    out = Path(args.out or ("models/bc/smoke" if args.smoke else "models/bc"))
    out.mkdir(parents=True, exist_ok=True)
    if "WANDB_MODE" not in os.environ:
        os.environ["WANDB_MODE"] = "online" if os.environ.get("WANDB_API_KEY") else "offline"

    import warnings

    import lightning as L

    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty")
    L.seed_everything(args.seed, workers=True)
    dm, dm_kw = make_datamodule(args)
    module, ckpt_path, spent_s = make_module(args, out)
    n_params = module.policy.num_params()
    print(
        f"policy: {n_params:,} parameters ({args.preset}); data: {dm.source}; out: {out}"
        + (f"; resuming from {ckpt_path}" if ckpt_path else ""),
        flush=True,
    )
    loggers = make_loggers(args, out, {**vars(args), "n_params": n_params, "data_source": dm.source})
    rounds = args.dagger_rounds if args.dagger_rounds >= 0 else (2 if dm.procedural_rows else 0)
    share = min(max(args.dagger_share, 0.0), 0.95) if rounds else 0.0
    # --max-minutes more on --resume: the Timer counts the seconds already spent
    trainer = make_trainer(args, out, loggers, args.max_minutes * (1 - share) + spent_s / 60)
    dagger = (rounds, args.max_minutes * share, dm_kw)
    return fit(args, trainer, module, dm, ckpt_path, out, loggers, n_params, dagger)


def make_datamodule(args):
    """(the data module, its keyword arguments): Parquet rows and demonstrations, or procedural
    tasks; and the torch threads the trainer takes (CPU training:
    procedural tasks are generated in the data workers, so they keep their cores -- oversubscribed
    OpenMP threads spin; Parquet rows cost a worker a few % of a core, so the trainer takes every
    core: 64 vs 43 samples/s for the small preset on a 2-core machine)."""
    import torch

    from factorion.train.bc import BCDataModule, default_workers

    workers = default_workers() if args.workers is None else args.workers
    cores = os.cpu_count() or 1
    on_cpu = args.accelerator == "cpu" or (args.accelerator == "auto" and not torch.cuda.is_available())
    if not args.val_every:
        args.val_every = 100 if on_cpu else 1000
    dm_kw = dict(
        data=args.data,
        batch_size=args.batch_size,
        num_workers=workers,
        shuffle_buffer=args.shuffle_buffer,
        levels=args.levels,
        sizes=args.sizes,
        families=args.families,
        train_tasks=args.train_tasks,
        val_tasks=args.val_tasks,
        rollout_tasks=args.rollout_tasks,
        seed=args.seed,
        procedural=args.procedural,
        demos=args.demos,
        demo_share=args.demo_share,
        data_levels=args.data_levels,
    )
    dm = BCDataModule(**dm_kw)
    busy_workers = 0 if dm.use_parquet else workers
    threads = args.threads or (max(1, cores - busy_workers) if on_cpu else torch.get_num_threads())
    torch.set_num_threads(min(threads, cores))
    return dm, dm_kw


def make_module(args, out: Path):
    """(the LightningModule, the checkpoint to resume or None, training seconds already spent in
    it): ``--resume`` loads ``<out>/last.ckpt`` (model and optimiser settings from there), else a
    fresh module of ``--lr`` and the other settings whose policy is ``--init``'s (weights and
    sizes: a second stage at a lower learning rate) or a fresh one of ``--preset`` with the size
    overrides."""
    import torch

    from factorion.policy.model import PolicyConfig
    from factorion.train.bc_module import BCModule

    last = out / "last.ckpt"
    if args.resume and last.exists():
        module = BCModule.load_from_checkpoint(str(last), map_location="cpu", weights_only=True)
        state = torch.load(str(last), map_location="cpu", weights_only=True)
        # training seconds already in the checkpoint (Lightning's Timer restores them)
        spent_s = float(state.get("callbacks", {}).get("Timer", {}).get("time_elapsed", {}).get("train", 0.0))
        return module, str(last), spent_s
    sizes = {"d_model": args.d_model, "n_layers": args.n_layers, "n_heads": args.n_heads,
             "conv_stem": args.conv_stem}
    cfg = PolicyConfig.preset(args.preset, **{k: v for k, v in sizes.items() if v is not None})
    init = None
    if args.init:
        from factorion.policy.model import Policy
        init = Policy.load_from_checkpoint(args.init)
        cfg = init.config
    module = BCModule(
        policy_config=cfg.to_dict(),
        preset=args.preset,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        max_steps=max(args.max_steps, 0),
        value_coef=args.value_coef,
    )
    if init is not None:
        module.policy.load_state_dict(init.state_dict())
    return module, None, 0.0


def make_loggers(args, out: Path, config: dict) -> list:
    """CSV under ``<out>/csv`` and/or Weights & Biases under ``<out>/wandb`` (``--logger``)."""
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    loggers = []
    kinds = {k.strip() for k in args.logger.split(",")} - {"", "none"}
    if "csv" in kinds:
        loggers.append(CSVLogger(str(out), name="csv"))
    if "wandb" in kinds:
        loggers.append(WandbLogger(project=args.wandb_project, save_dir=str(out),
                                   offline=os.environ.get("WANDB_MODE") == "offline", config=config))
    return loggers


def make_trainer(args, out: Path, loggers: list, minutes: float):
    """The Trainer: best (lowest ``val/loss``) and last checkpoints in ``out``, a budget of
    ``minutes`` of fit(), validation every ``--val-every`` batches."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    precision = args.precision
    if precision == "auto":
        gpu = torch.cuda.is_available() and args.accelerator in ("auto", "gpu", "cuda")
        precision = "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"
    callbacks = [ModelCheckpoint(dirpath=str(out), filename="best", monitor="val/loss", mode="min",
                                 save_top_k=1, save_last=True, enable_version_counter=False,
                                 auto_insert_metric_name=False)]
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return L.Trainer(
        accelerator=args.accelerator,
        devices=_devices(args.devices),
        strategy=args.strategy,
        precision=precision,
        max_time=timedelta(minutes=minutes),
        max_steps=args.max_steps,
        max_epochs=-1,
        val_check_interval=args.val_every,
        check_val_every_n_epoch=None,
        limit_val_batches=args.limit_val_batches,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        log_every_n_steps=min(50, max(1, args.val_every)),
        logger=loggers or False,
        callbacks=callbacks,
        enable_progress_bar=not args.no_progress,
        default_root_dir=str(out),
    )


def run_dagger(args, module, dm_kw: dict, out: Path, loggers: list, rounds: int, minutes: float):
    """``rounds`` of DAgger after BC: roll the current policy out on fresh procedural tasks, relabel
    the visited states with the expert (:mod:`factorion.train.dagger`), aggregate, train on the
    BC data + every round's episodes (``--dagger-weight`` of the episodes) for this round's share of
    ``minutes`` (the roll-outs' time included); returns the last round's Trainer (None if none
    trained)."""
    from factorion.train import dagger
    from factorion.train.bc import BCDataModule, procedural_tasks

    agg: list[dict] = []
    trainer = None
    for r in range(rounds):
        t0 = time.time()
        s0 = args.dagger_seed0 + r * args.dagger_tasks
        seeds = range(s0, s0 + args.dagger_tasks)
        tasks = list(procedural_tasks(seeds, args.dagger_levels, args.sizes, args.families))
        module.policy.eval()
        agg += dagger.collect(module.policy, tasks, seed=args.seed + r, accept=args.dagger_accept)
        module.policy.train()
        left = minutes / rounds - (time.time() - t0) / 60
        print(f"dagger round {r + 1}/{rounds}: {len(tasks)} tasks -> {len(agg)} episodes aggregated "
              f"({time.time() - t0:.0f} s); training {max(left, 0):.1f} min", flush=True)
        if left <= 0.1:
            continue
        dm = BCDataModule(**dm_kw, extra_episodes=agg, extra_share=args.dagger_weight)
        trainer = make_trainer(args, out, loggers, left)
        trainer.fit(module, datamodule=dm, weights_only=True)
        trainer.save_checkpoint(str(out / "last.ckpt"))
        module.carry_optimizer()  # the next round continues this AdamW (no restart, no warm-up)
    return trainer


def fit(args, trainer, module, dm, ckpt_path: str | None, out: Path, loggers: list, n_params: int,
        dagger: tuple = (0, 0.0, None)) -> dict:
    """Train, save ``last.ckpt`` (the final state: a time limit can stop between validations)
    and, before DAgger, ``bc.ckpt``; run the DAgger rounds (``dagger`` = (rounds, minutes, the data
    module's keywords)), print the validation figures and return the run's summary."""
    from lightning.pytorch.loggers import WandbLogger

    last = out / "last.ckpt"
    t0 = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    trainer.save_checkpoint(str(last))
    if dagger[0]:
        module.carry_optimizer()
        # the state before DAgger: each round's trainer starts its best/last checkpoints anew
        trainer.save_checkpoint(str(out / "bc.ckpt"))
        trainer = run_dagger(args, module, dagger[2], out, loggers, dagger[0], dagger[1]) or trainer
    elapsed = time.time() - t0
    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1
    }
    best = trainer.checkpoint_callback.best_model_path or str(last)
    if trainer.is_global_zero:
        print(f"done: {trainer.global_step} steps in {elapsed:.0f} s; best {best}; last {last}", flush=True)
        for k in sorted(metrics):
            if k.startswith("val/"):
                print(f"  {k} = {metrics[k]:.4f}")
    if any(isinstance(lg, WandbLogger) for lg in loggers):
        import wandb

        wandb.finish()
    return {"best": best, "last": str(last), "steps": trainer.global_step, "metrics": metrics,
            "n_params": n_params, "seconds": elapsed}


if __name__ == "__main__":
    main(sys.argv[1:])
