"""Steps/s of the batched env (FactorioVectorEnv, 11x11) under random valid actions.

For 1, 64 and 256 sub-envs, medians over repeats of
* ``sps``       env steps/s of the whole loop (RandomAgent sampling from the masks + ``step``),
  wall clock -- the headline, compared with the 50,000 steps/s target;
* ``sps_cpu``   the same on this process's CPU time (less sensitive to other load on the box);
* ``sps_env``   counting only the wall time inside ``step`` (physics, resets, masks);
* ``sim_share`` the part of ``step`` spent in ``sim.throughput_batch``;
* ``resets_per_1k`` episode resets per 1,000 env steps (the uniform random agent finishes
  about one step in four);
* ``skip_share`` the part of the valid places/removes not re-simulated because they provably
  keep the throughput (a detached entity, ``factorion.sim.locality``).

Three task settings: ``fresh`` (``tasks.make_task`` at every reset, uniform family and level:
what the env does by default), ``pool0.1`` (``task_pool=256, task_pool_refresh=0.1``: one
reset in ten makes a task) and ``static`` (``task_pool=256, task_pool_refresh=0``: replayed
tasks only, i.e. env + physics without task generation). Physics is included when
``factorion.sim`` exists; otherwise a zero-cost stub replaces it and the figures are
**env-only** (said in the output), and stand-in belt tasks replace ``factorion.tasks``.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import time

import numpy as np

TARGET_SPS = 50_000
SIZE = 11
POOL = 256
SETTINGS = {  # name: (env kwargs, steps per repeat for B = 1, 64, 256)
    "fresh": ({}, {1: 40, 64: 2, 256: 1}),
    "pool0.1": ({"task_pool": POOL, "task_pool_refresh": 0.1}, {1: 300, 64: 15, 256: 5}),
    "static": ({"task_pool": POOL, "task_pool_refresh": 0.0}, {1: 300, 64: 30, 256: 10}),
}


def _setup() -> tuple[dict, dict]:
    from factorion.env import factorio_env as E
    have_sim = importlib.util.find_spec("factorion.sim") is not None
    have_tasks = importlib.util.find_spec("factorion.tasks") is not None
    notes = {"physics": have_sim, "real_tasks": have_sim and have_tasks}
    if not have_sim:
        class _NoSim:
            @staticmethod
            def throughput(world):
                return 0.0

            @staticmethod
            def throughput_batch(grids, rates=None):
                return np.zeros(len(grids))
        E.sim_module = lambda: _NoSim
    kw: dict = {}
    if not notes["real_tasks"]:
        kw["task_sampler"] = _stand_in_task
    return notes, kw


def _stand_in_task(rng):
    from factorion.core.world import World
    H = W = SIZE
    w = World(H, W)
    y = int(rng.integers(H))
    w.place("source", y, 0, item="iron-plate")
    w.place("sink", y, W - 1, item="iron-plate")

    class T:  # the fields the env reads
        family, level, seed, world, solution, reference = "belt", 5, 0, w, w, 15.0
        removed, recipes, items = [], ("iron-gear-wheel",), ("iron-plate",)
    return T


def _measure(B: int, steps: int, repeats: int, env_kw: dict, pools: dict | None) -> dict:
    from factorion.env.baselines import RandomAgent
    from factorion.env.masks import OP_FINISH
    from factorion.env.vector import FactorioVectorEnv
    venv = FactorioVectorEnv(B, SIZE, **env_kw)
    if pools is not None:  # share one pre-made pool between runs (each gets its own copy)
        venv.task_source.pools = {k: list(v) for k, v in pools.items()}
    venv.reset(seed=0)
    agent = RandomAgent(0)
    for _ in range(2):
        venv.step(agent.act(venv.action_masks()))
    loop, cpu, inside, sim, resets, skips = [], [], [], [], [], []
    for _ in range(repeats):
        t_step = t_sim = 0.0
        n_reset = n_edit = 0
        skipped0 = int(venv.n_skipped.sum()) if hasattr(venv, "n_skipped") else 0
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            a = agent.act(venv.action_masks())
            t1 = time.perf_counter()
            _, _, term, trunc, info = venv.step(a)
            t_step += time.perf_counter() - t1
            t_sim += info["sim_time_s"]
            n_reset += int(info["autoreset"].sum())
            n_edit += int((~info["invalid"] & ~info["autoreset"] & (a[:, 0] != OP_FINISH)).sum())
        loop.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        inside.append(t_step)
        sim.append(t_sim / t_step)
        resets.append(1000 * n_reset / (B * steps))
        skipped = (int(venv.n_skipped.sum()) if hasattr(venv, "n_skipped") else 0) - skipped0
        skips.append(skipped / max(n_edit, 1))
    n = B * steps
    sps = n / statistics.median(loop)
    return {"num_envs": B, "sps": round(sps), "sps_cpu": round(n / statistics.median(cpu)),
            "sps_env": round(n / statistics.median(inside)),
            "sim_share": round(statistics.median(sim), 3),
            "resets_per_1k": round(statistics.median(resets), 1),
            "skip_share": round(statistics.median(skips), 3),
            "ratio_to_target": round(sps / TARGET_SPS, 3)}


def _prefill(kw: dict) -> tuple[dict, float]:
    """One pool of POOL tasks (and the seconds per task it took)."""
    from factorion.env.factorio_env import TaskSource
    src = TaskSource(SIZE, task_sampler=kw.get("task_sampler"), pool_size=POOL)
    t0 = time.perf_counter()
    src.draw_many(np.random.default_rng(0), POOL)
    return src.pools, (time.perf_counter() - t0) / POOL


def run(repeats: int = 3) -> dict:
    notes, kw = _setup()
    mode = "physics included" if notes["physics"] else "ENV-ONLY: factorion.sim missing, zero-cost stub"
    tasks = "tasks.make_task" if notes["real_tasks"] else "stand-in belt tasks (factorion.tasks/sim missing)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  FactorioVectorEnv {SIZE}x{SIZE}, RandomAgent (uniform valid), {mode}; {tasks}; "
          f"{os.cpu_count()} cores, load average {load:.1f}")
    pools, per_task = _prefill(kw)
    print(f"  task generation: {1000 * per_task:.1f} ms per task (mean of {POOL})")
    out: dict = {"size": SIZE, "target_sps": TARGET_SPS, **notes, "load_avg": load,
                 "task_ms": round(1000 * per_task, 2), "runs": {}}
    for setting, (extra, plan) in SETTINGS.items():
        for B, steps in plan.items():
            r = _measure(B, steps, repeats, {**kw, **extra}, pools if extra else None)
            out["runs"][f"{setting}/{B}"] = r
            print(f"  {setting:>7} B={B:>3}: {r['sps']:>7,} steps/s = {r['ratio_to_target']:.3f} x target "
                  f"(median of {repeats}; cpu-time {r['sps_cpu']:,}; in step {r['sps_env']:,}; "
                  f"sim {100 * r['sim_share']:.0f}% of step, {100 * r['skip_share']:.0f}% of edits skipped; "
                  f"{r['resets_per_1k']} resets/1k steps)")
    return out


if __name__ == "__main__":
    run()
