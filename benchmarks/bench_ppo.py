"""PPO speed end to end on this machine: env steps per second of whole iterations (rollout with
the batched env + the policy's forward, BC-reference log-probs, GAE, the clipped update) and
the time split (env / rollout forward / update / other), for the default model and the smaller
presets, plus CPU seconds per step (wall-clock SPS on a shared machine depends on the load:
compare the CPU figure across runs; ``BENCH_THREADS`` sets torch's threads, default 1, which
measured faster than 2 on a busy 2-core machine).

``python -m benchmarks ppo`` (or ``python benchmarks/bench_ppo.py [preset ...]``). The default
model is measured as ``make finetune`` runs it (its default arguments: a BC-initialised policy,
every block trained, expert labels on) and with only the top 2 blocks trained (the frozen trunk
cached and replayed) and no labels; the ``cpu`` preset also with 128 envs instead of 32, and with 128
envs, one update epoch, no KL term (no reference forward) and no labels (the ceiling of PPO here); the
policies are freshly initialised (speed does not depend on the weights, only on episode lengths a
little). Runs go to a temporary directory; no evaluation, no wandb.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

TARGET_SPS = 2000.0
STEPS = {"tiny": 4096, "cpu": 4096, "small": 1024, "default": 512}


def _one(preset: str, total_steps: int, threads: int, **kw) -> dict:
    import torch

    from factorion.policy.model import Policy, PolicyConfig
    from factorion.train.ppo import Args, train

    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        init = os.path.join(tmp, "init.pt")
        torch.manual_seed(0)
        Policy(PolicyConfig.preset(preset)).save(init)
        args = Args(out=tmp, run="bench", init=init, total_steps=total_steps, minutes=0, eval=False,
                    wandb=False, threads=threads, save_minutes=1e9, log_every=10**9, critic_warmup=0,
                    target_kl=0.0, **kw)  # (no early stop: the whole update is timed)
        t0 = time.perf_counter()
        s = train(args)
        wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {"preset": preset, "steps": s["steps_this_run"], "SPS": s["SPS"], "wall_s": wall,
            "cpu_s_per_step": cpu / max(1, s["steps_this_run"]),
            "time_split": s["time_split"], "train_blocks": args.train_blocks, "threads": threads,
            "num_envs": args.num_envs, "num_steps": args.num_steps, "update_epochs": args.update_epochs}


def run(presets: tuple[str, ...] = ("default", "small", "cpu", "tiny")) -> dict:
    threads = int(os.environ.get("BENCH_THREADS", "1"))  # Args' default; 0 = all cores
    cases = []
    for p in presets:
        cases.append((p, {}))
        if p == "default":
            cases.append((p, {"train_blocks": 2, "expert_coef": 0.0}))
        if p == "cpu":  # a wider batch amortises the per-call overhead of a small model
            cases.append((p, {"num_envs": 128}))
            # the leanest PPO of this preset: one update epoch, no KL reference forward, no labels
            cases.append((p, {"num_envs": 128, "update_epochs": 1, "bc_kl_coef": 0.0, "expert_coef": 0.0}))
    results = {}
    print(f"PPO end to end, {os.cpu_count()} cores, torch threads {threads}; target {TARGET_SPS:.0f} SPS")
    for p, kw in cases:
        name = p + ("" if not kw else "_128envs_1epoch_no_kl" if "update_epochs" in kw
                    else "_128envs" if "num_envs" in kw else "_top2_no_labels")
        r = _one(p, STEPS[p] * (2 if "num_envs" in kw else 1), threads, **kw)
        results[name] = r
        split = ", ".join(f"{k} {v:.0%}" for k, v in r["time_split"].items())
        print(f"  {name:<20} {r['SPS']:8.1f} SPS ({r['SPS'] / TARGET_SPS:.1%} of target) over "
              f"{r['steps']} steps; {r['cpu_s_per_step'] * 1e3:.0f} CPU-ms/step; train_blocks "
              f"{r['train_blocks']}; split: {split}", flush=True)
    results["target_sps"] = TARGET_SPS
    results["command"] = "python -m benchmarks ppo"
    return results


if __name__ == "__main__":
    run(tuple(sys.argv[1:]) or ("default", "small", "cpu", "tiny"))
