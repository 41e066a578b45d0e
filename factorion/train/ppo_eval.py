"""Greedy held-out evaluation of a policy (:func:`evaluate_policy`): the fixed tasks
``make_task(family, level, size, seed0 + i)`` rolled out as one batched env."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from factorion.policy.model import Policy
from factorion.policy.rollout import rollout
from factorion.tasks.splits import PPO_EVAL_SEED0, families_for


def eval_tasks(families: Sequence[str], levels: Sequence[int], n_seeds: int, size: int, seed0: int
               ) -> tuple[list, list[dict]]:
    """(the tasks ``make_task(family, level, size, seed0 + i)``, the ones that failed to generate)."""
    from factorion.tasks.levels import make_task

    tasks, failed = [], []
    for f in families:
        for lv in levels:
            for i in range(n_seeds):
                try:
                    tasks.append(make_task(f, int(lv), size=size, seed=seed0 + i))
                except Exception as exc:  # a generator failure must not sink the evaluation
                    failed.append({"family": f, "level": int(lv), "seed": seed0 + i, "error": repr(exc)})
    return tasks, failed


def evaluate_policy(policy: Policy, families: Sequence[str] | None = None,
                    levels: Sequence[int] = (1, 2, 3, 4, 5), n_seeds: int = 3, size: int = 11,
                    seed0: int = PPO_EVAL_SEED0, max_steps: int | None = None, batch_size: int = 256,
                    device=None) -> dict:
    """Greedy roll-outs of ``policy`` on the fixed tasks ``make_task(family, level, size,
    seed0 + i)``, ``i < n_seeds``, every family (that fits ``size``) and level; all episodes
    run as one batched env (:func:`factorion.policy.rollout.rollout`). Returns the throughput
    ratio (final throughput / reference; also ``ratio_start``) and success rate overall,
    ``by_family``, ``by_level`` and ``by_family_level`` (``"belt/3"``), the mean steps, return
    and share finished, and every ``episodes`` row."""
    from factorion.env.vector import FactorioVectorEnv

    t0 = time.perf_counter()
    fams = families_for(size, families)
    tasks_, failed = eval_tasks(fams, levels, n_seeds, size, seed0)
    if not tasks_:
        return {"n": 0, "failed": failed}
    cfg = policy.config
    env = FactorioVectorEnv(len(tasks_), size, autoreset_mode="disabled", max_steps=max_steps or None,
                            entities=cfg.entities, max_items=cfg.max_items, max_recipes=cfg.max_recipes)
    res = rollout(policy, env, tasks_, greedy=True, seed=seed0, batch_size=batch_size, device=device)
    rows = [{"family": t.family, "level": int(t.level), "seed": int(t.seed), "ratio": float(res["ratio"][i]),
             "ratio_start": float(res["ratio_start"][i]), "success": bool(res["success"][i]),
             "finished": bool(res["terminated"][i]), "steps": int(res["steps"][i]),
             "return": float(res["return"][i]), "entities": int(res["entities"][i])}
            for i, t in enumerate(tasks_)]
    return {**aggregate(rows), "by_family": group(rows, lambda r: r["family"]),
            "by_level": group(rows, lambda r: r["level"]),
            "by_family_level": group(rows, lambda r: f"{r['family']}/{r['level']}"), "size": size,
            "seed0": seed0, "n_seeds": n_seeds, "levels": [int(x) for x in levels], "families": fams,
            "max_steps": int(env.max_steps), "greedy": True, "seconds": time.perf_counter() - t0,
            "failed": failed, "episodes": rows}


def aggregate(sel: list[dict]) -> dict:
    """Means of the episode rows ``sel`` (ratio, start ratio, success, finished, steps, return)."""
    return {"ratio": float(np.mean([r["ratio"] for r in sel])),
            "ratio_start": float(np.mean([r["ratio_start"] for r in sel])),
            "success": float(np.mean([r["success"] for r in sel])),
            "finished": float(np.mean([r["finished"] for r in sel])),
            "steps": float(np.mean([r["steps"] for r in sel])),
            "return": float(np.mean([r["return"] for r in sel])), "n": len(sel)}


def group(rows: list[dict], key) -> dict:
    """:func:`aggregate` of the rows per ``key(row)``."""
    g = defaultdict(list)
    for r in rows:
        g[key(r)].append(r)
    return {str(k): aggregate(v) for k, v in g.items()}
