"""The policy alone on held-out procedural tasks: ``python -m factorion.evaluate_learned``.

For every family x level (default levels 3, 4, 5 at 11x11) and ``--n-seeds`` held-out seeds (``make
evaluate``'s: ``splits.BENCH_SEED0`` = 20,000 onwards, never trained on: ``make demos`` and the
DAgger rounds draw from 5e6 / 1.1e9 / 1.3e9 onwards), the policy builds with no planner: one greedy
roll-out and ``--samples`` sampled roll-outs (one batched env) from the task's start, every state the
simulator scores; the best counts (ties: fewer entities). A task is solved when the best reaches
``SUCCESS`` (0.99) x its reference throughput. Prints success and mean best ratio by family x level
(greedy alone and best of all) and writes ``--out`` (CSV, one row per task)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

SUCCESS = 0.99


def rollouts(policy, task, n: int, greedy: bool, max_steps: int = 48, seed: int = 0,
             temperature: float = 1.0, distinct_first: float = 0.0) -> dict:
    """``n`` roll-outs of ``task`` (the one roll-out loop, :func:`factorion.policy.rollout.rollout`);
    every state after the reset and after each step is a candidate, the simulator's throughput its
    score. Returns the best: ``ratio``, ``throughput``, ``world`` (a copy; ties: fewer entities),
    ``steps`` (of its roll-out when it was reached) and ``invalid`` (that roll-out's invalid
    actions so far). ``temperature``, ``distinct_first``: how sampled roll-outs sample (:func:`rollout`)."""
    from factorion.env.vector import FactorioVectorEnv
    from factorion.policy.rollout import rollout

    cfg = policy.config
    kw = {"entities": tuple(cfg.entities), "max_items": cfg.max_items, "max_recipes": cfg.max_recipes}
    env = FactorioVectorEnv(n, task.world.shape, max_steps=max_steps, autoreset_mode="disabled", **kw)
    best = {"key": (-1.0, 0.0), "ratio": 0.0, "throughput": 0.0, "world": task.world.copy(), "steps": 0,
            "invalid": 0}
    invalid = np.zeros(n, dtype=np.int64)

    def seen(env_, info, active=None):
        ratio = np.asarray(info["ratio"], dtype=np.float64)
        ents = np.asarray(info["entities"], dtype=np.float64)
        if active is not None:
            invalid[active] += np.asarray(info["invalid"], dtype=bool)[active]
        for i in range(n) if active is None else np.nonzero(active)[0]:
            key = (float(ratio[i]), -float(ents[i]))
            if key > best["key"]:
                best.update(key=key, ratio=float(ratio[i]), throughput=float(info["throughput"][i]),
                            world=env_.world(i).copy(), steps=int(info["steps"][i]), invalid=int(invalid[i]))

    rollout(policy, env, [task] * n, greedy, seed=seed, on_step=seen, on_reset=seen, temperature=temperature,
            distinct_first=distinct_first)
    return best


def policy_alone(policy, task, samples: int = 16, max_steps: int = 48, seed: int = 0,
                 temperature: float | None = None, distinct_first: float | None = None) -> dict:
    """The policy alone on ``task``: one greedy roll-out, then ``samples`` sampled ones (one
    batched env, torch seeded with ``seed``, sampling at ``temperature``, by default
    :data:`factorion.policy.rollout.SAMPLE_TEMPERATURE`, the first moves of the share
    ``distinct_first`` of them distinct, by default
    :data:`~factorion.policy.rollout.DISTINCT_FIRST`). Returns ``{"greedy": ..., "best": ...}``,
    each as :func:`rollouts` returns it; ``best`` is the better of greedy and the samples."""
    import torch

    from factorion.policy.rollout import DISTINCT_FIRST, SAMPLE_TEMPERATURE
    temperature = SAMPLE_TEMPERATURE if temperature is None else temperature
    distinct_first = DISTINCT_FIRST if distinct_first is None else distinct_first
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = rollouts(policy, task, 1, True, max_steps, seed)
        s = (rollouts(policy, task, samples, False, max_steps, seed, temperature, distinct_first)
             if samples else g)
    return {"greedy": g, "best": max(g, s, key=lambda r: r["key"])}


def evaluate(policy, families, levels, size: int, n_seeds: int, samples: int, max_steps: int = 48,
             progress: bool = True, temperature: float | None = None, seed0: int | None = None,
             distinct_first: float | None = None) -> list[dict]:
    from tqdm import tqdm

    from factorion.tasks.levels import make_task
    from factorion.tasks.splits import BENCH_SEED0 as SEED0

    rows = []
    first = SEED0 if seed0 is None else seed0
    specs = [(f, lv, first + i) for f in families for lv in levels for i in range(n_seeds)]
    for fam, lv, seed in tqdm(specs, desc="policy alone", disable=not progress):
        task = make_task(fam, lv, size=size, seed=seed)
        t0 = time.perf_counter()
        r = policy_alone(policy, task, samples, max_steps, seed, temperature, distinct_first)
        g, b = r["greedy"]["ratio"], r["best"]["ratio"]
        rows.append({"family": fam, "level": lv, "size": size, "seed": seed, "greedy_ratio": g,
                     "best_ratio": b, "greedy_solved": g >= SUCCESS, "solved": b >= SUCCESS,
                     "seconds": time.perf_counter() - t0})
    return rows


def table(rows: list[dict], key: str) -> str:
    import pandas as pd

    df = pd.DataFrame(rows)
    t = df.pivot_table(index="family", columns="level", values=key, aggfunc="mean", sort=False)
    t.loc["all"] = df.groupby("level")[key].mean()
    return t.round(2).to_string()


def main(argv: list[str] | None = None) -> list[dict]:
    from factorion.build import load_policy
    from factorion.tasks.base import FAMILIES

    p = argparse.ArgumentParser(prog="python -m factorion.evaluate_learned",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="default", help="a policy checkpoint ('default': the shipped one)")
    p.add_argument("--families", nargs="+", default=list(FAMILIES))
    p.add_argument("--levels", type=int, nargs="+", default=[3, 4, 5])
    p.add_argument("--size", type=int, default=11)
    p.add_argument("--n-seeds", type=int, default=10)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--max-steps", type=int, default=48)
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature of the roll-outs (default: 0.7, "
                        "policy.rollout.SAMPLE_TEMPERATURE)")
    p.add_argument("--distinct-first", type=float, default=None,
                   help="share of the sampled roll-outs whose first moves are sampled without replacement "
                        "(default: policy.rollout.DISTINCT_FIRST; 0: plain sampling)")
    p.add_argument("--seed0", type=int, default=None,
                   help="first task seed (default: make evaluate's held-out BENCH_SEED0; choose settings on "
                        "another range, e.g. 1000000000, BC's procedural validation seeds)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="reports/learned/policy_alone.csv")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    import pandas as pd
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    policy = load_policy(args.checkpoint)
    t0 = time.perf_counter()
    rows = evaluate(policy, args.families, args.levels, args.size, args.n_seeds, args.samples, args.max_steps,
                    not args.no_progress, args.temperature, args.seed0, args.distinct_first)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    print(f"policy alone ({args.checkpoint}), {args.size}x{args.size}, seeds {args.n_seeds} per cell, "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"success, best of greedy + {args.samples} samples:\n{table(rows, 'solved')}")
    print(f"success, greedy:\n{table(rows, 'greedy_solved')}")
    print(f"mean best ratio:\n{table(rows, 'best_ratio')}")
    print(f"rows: {out}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
