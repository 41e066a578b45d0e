"""Greedy held-out evaluation of a policy (:func:`evaluate_policy`): the fixed tasks
``make_task(family, level, size, seed0 + i)`` rolled out as one batched env."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from factorion.env.masks import OP_FINISH, STAGES
from factorion.policy.adapters import masks_to_tensors, obs_to_tensors
from factorion.policy.model import Policy
from factorion.tasks.splits import PPO_EVAL_SEED0, families_for
from factorion.train.ppo_rollout import index_rows


@torch.no_grad()
def evaluate_policy(policy: Policy, families: Sequence[str] | None = None,
                    levels: Sequence[int] = (1, 2, 3, 4, 5), n_seeds: int = 3, size: int = 11,
                    seed0: int = PPO_EVAL_SEED0, max_steps: int | None = None, batch_size: int = 256,
                    device=None) -> dict:
    """Greedy roll-outs of ``policy`` on the fixed tasks ``make_task(family, level, size,
    seed0 + i)``, ``i < n_seeds``, every family (that fits ``size``) and level; all episodes
    run as one batched env (finished episodes drop out of the forward pass). Returns the
    throughput ratio (final throughput / reference; also ``ratio_start``) and success rate
    overall, ``by_family``, ``by_level`` and ``by_family_level`` (``"belt/3"``), the mean
    steps, return and share finished, and every ``episodes`` row."""
    from factorion.env.vector import FactorioVectorEnv
    from factorion.tasks.levels import make_task

    t0 = time.perf_counter()
    fams = families_for(size, families)
    tasks_, failed = [], []
    for f in fams:
        for lv in levels:
            for i in range(n_seeds):
                try:
                    tasks_.append(make_task(f, int(lv), size=size, seed=seed0 + i))
                except Exception as exc:  # a generator failure must not sink the evaluation
                    failed.append({"family": f, "level": int(lv), "seed": seed0 + i, "error": repr(exc)})
    if not tasks_:
        return {"n": 0, "failed": failed}
    cfg = policy.config
    env = FactorioVectorEnv(len(tasks_), size, autoreset_mode="disabled", max_steps=max_steps or None,
                            entities=cfg.entities, max_items=cfg.max_items, max_recipes=cfg.max_recipes)
    obs, info = env.reset(seed=seed0, options={"tasks": tasks_})
    dev = device if device is not None else next(policy.parameters()).device
    was = policy.training
    policy.eval()
    n = len(tasks_)
    active = np.ones(n, dtype=bool)
    ratio0 = info["ratio"].copy()
    ret = np.zeros(n)
    res = {k: np.zeros(n) for k in ("ratio", "steps", "success", "finished", "entities")}
    finish = np.zeros((n, len(STAGES)), dtype=np.int64)
    finish[:, 0] = OP_FINISH
    while active.any():
        idx = np.nonzero(active)[0]
        acts = finish.copy()
        mt = masks_to_tensors(info["action_mask"], dev)
        ot = obs_to_tensors(obs, dev)
        for s in range(0, len(idx), batch_size):
            j = torch.as_tensor(idx[s:s + batch_size], device=dev)
            out = policy(index_rows(ot, j), index_rows(mt, j), greedy=True)
            acts[idx[s:s + batch_size]] = out["action"].cpu().numpy()
        obs, r, term, trunc, info = env.step(acts)
        ret[active] += r[active]
        done = active & (term | trunc)
        for k, v in (("ratio", info["ratio"]), ("steps", info["steps"]), ("success", info["success"]),
                     ("finished", term), ("entities", info["entities"])):
            res[k][done] = v[done]
        active &= ~done
    policy.train(was)
    rows = [{"family": t.family, "level": int(t.level), "seed": int(t.seed), "ratio": float(res["ratio"][i]),
             "ratio_start": float(ratio0[i]), "success": bool(res["success"][i]),
             "finished": bool(res["finished"][i]), "steps": int(res["steps"][i]), "return": float(ret[i]),
             "entities": int(res["entities"][i])} for i, t in enumerate(tasks_)]

    def agg(sel: list[dict]) -> dict:
        return {"ratio": float(np.mean([r["ratio"] for r in sel])),
                "ratio_start": float(np.mean([r["ratio_start"] for r in sel])),
                "success": float(np.mean([r["success"] for r in sel])),
                "finished": float(np.mean([r["finished"] for r in sel])),
                "steps": float(np.mean([r["steps"] for r in sel])),
                "return": float(np.mean([r["return"] for r in sel])), "n": len(sel)}

    def group(key) -> dict:
        g = defaultdict(list)
        for r in rows:
            g[key(r)].append(r)
        return {str(k): agg(v) for k, v in g.items()}

    return {**agg(rows), "by_family": group(lambda r: r["family"]), "by_level": group(lambda r: r["level"]),
            "by_family_level": group(lambda r: f"{r['family']}/{r['level']}"), "size": size, "seed0": seed0,
            "n_seeds": n_seeds, "levels": [int(x) for x in levels], "families": fams,
            "max_steps": int(env.max_steps), "greedy": True, "seconds": time.perf_counter() - t0,
            "failed": failed, "episodes": rows}
