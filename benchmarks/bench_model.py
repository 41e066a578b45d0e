"""Policy cost and speed on this machine: forward FLOPs per sample of every preset (torch's
``FlopCounterMode``), BC training samples/s (forward + backward + AdamW, masks and
teacher-forced stages as in :class:`factorion.train.bc_module.BCModule`), forward latency of ``act`` (one
observation, greedy) and batched inference; optionally the procedural data pipeline.

``python -m benchmarks model`` (or ``python benchmarks/bench_model.py``). Batches are built
from a random world with the env's real masks, so no simulator or task generator is needed.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch


def _world(size: int, seed: int = 0):
    from factorion.core.world import World

    rng = np.random.default_rng(seed)
    w = World(size, size)
    w.place("source", 0, 0, item="iron-plate")
    w.place("sink", size - 1, size - 1, item="iron-gear-wheel")
    w.place("assembling-machine-2", size // 2 - 1, size // 2 - 1, recipe="iron-gear-wheel")
    for _ in range(size * size // 6):
        y, x, d = (int(v) for v in rng.integers(0, [size, size, 4]))
        if w.grid[5, y, x] == 0:
            w.place("transport-belt", y, x, direction=d)
    return w


def _batch(policy, size: int, B: int):
    from factorion.env.factorio_env import task_vectors
    from factorion.policy.adapters import masks_to_tensors
    from factorion.train.bc_samples import build_masks, layout_for

    w = _world(size)
    recipes = ["iron-gear-wheel"]
    layout = layout_for(size, size, policy.config.entities, policy.config.max_recipes)
    G = np.repeat(w.grid[None], B, 0)
    masks = masks_to_tensors(build_masks(layout, G, recipes))
    iv, rv = task_vectors(
        type("T", (), {"items": ["iron-plate", "iron-gear-wheel"], "recipes": recipes}),
        policy.config.max_items,
        policy.config.max_recipes,
    )
    obs = {
        "grid": torch.as_tensor(G),
        "task": torch.as_tensor(np.repeat(iv[None], B, 0)),
        "recipes": torch.as_tensor(np.repeat(rv[None], B, 0)),
        "step": torch.zeros(B, 1),
        "ratio": torch.zeros(B, 1),
    }
    with torch.no_grad():
        actions = policy(obs, masks)["action"]
    return obs, masks, actions


def flops_per_sample(preset: str = "default", size: int = 11, B: int = 8) -> float:
    """Forward FLOPs per sample (teacher-forced, masks on), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    from factorion.policy.model import Policy, PolicyConfig

    policy = Policy(PolicyConfig.preset(preset)).eval()
    obs, masks, actions = _batch(policy, size, B)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        policy(obs, masks, actions=actions)
    return fc.get_total_flops() / B


def _median_time(fn, n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def train_rate(preset: str = "default", size: int = 11, B: int = 64, steps: int = 5) -> float:
    """Training samples/s of one preset (fwd + bwd + optimizer step)."""
    from factorion.policy.model import Policy, PolicyConfig

    policy = Policy(PolicyConfig.preset(preset))
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    obs, masks, actions = _batch(policy, size, B)

    def step():
        out = policy(obs, masks, actions=actions)
        loss = -out["logprob"].mean() + 0.1 * out["value"].pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return B / _median_time(step, steps, warmup=1)


def act_latency(preset: str = "default", size: int = 11, n: int = 20) -> float:
    """Seconds per ``policy.act`` on one observation (greedy)."""
    from factorion.policy.model import Policy, PolicyConfig
    from factorion.train.bc_samples import build_masks, layout_for

    policy = Policy(PolicyConfig.preset(preset)).eval()
    w = _world(size)
    layout = layout_for(size, size)
    m = build_masks(layout, w.grid[None], ["iron-gear-wheel"])
    obs = {
        "grid": w.grid,
        "task": np.zeros(8, np.int16),
        "recipes": np.zeros(4, np.int16),
        "step": np.zeros(1, np.float32),
        "ratio": np.zeros(1, np.float32),
    }
    return _median_time(lambda: policy.act(obs, m, greedy=True), n)


def infer_rate(preset: str = "default", size: int = 11, B: int = 256, n: int = 3) -> float:
    """Batched sampling samples/s (PPO roll-outs)."""
    from factorion.policy.model import Policy, PolicyConfig

    policy = Policy(PolicyConfig.preset(preset)).eval()
    obs, masks, _ = _batch(policy, size, B)

    def f():
        with torch.no_grad():
            policy(obs, masks)

    return B / _median_time(f, n, warmup=1)


def data_rate(n_tasks: int = 48) -> float | None:
    """Procedural (task + planner + masks + sim) BC samples/s in one process; None if the task
    generator, planner or simulator is missing."""
    try:
        from factorion import sim, tasks  # noqa: F401
        from factorion.env import planner  # noqa: F401
    except ImportError:
        return None
    from factorion.train.bc import ProceduralEpisodes

    for _ in ProceduralEpisodes(4, seed0=654_321, batch_size=64, shuffle=False):
        pass  # warm-up: the simulator's numba compile / cache load, imports
    ds = ProceduralEpisodes(n_tasks, seed0=123_456, batch_size=64, shuffle=False)
    t = time.perf_counter()
    n = sum(int(b["action"].shape[0]) for b in ds)
    return n / (time.perf_counter() - t)


def run() -> dict:
    from factorion.policy.model import PRESETS, Policy, PolicyConfig

    threads = torch.get_num_threads()
    out = {"threads": threads, "torch": torch.__version__}
    presets = tuple(PRESETS)
    for preset in presets:
        out[f"params_{preset}"] = Policy(PolicyConfig.preset(preset)).num_params()
        out[f"mflops_per_sample_{preset}_11x11"] = round(flops_per_sample(preset) / 1e6, 1)
    for preset in presets:
        out[f"train_samples_per_s_{preset}_11x11_b64"] = round(train_rate(preset, 11, 64), 1)
    out["train_samples_per_s_cpu_11x11_b256"] = round(train_rate("cpu", 11, 256), 1)
    out["train_samples_per_s_default_16x16_b64"] = round(train_rate("default", 16, 64, steps=3), 1)
    if threads > 1:  # on a busy shared machine one thread can beat two
        torch.set_num_threads(1)
        out["train_samples_per_s_default_11x11_b64_1thread"] = round(train_rate("default", 11, 64), 1)
        torch.set_num_threads(threads)
    for preset in ("tiny", "cpu", "default"):
        for size in (11, 16):
            out[f"act_ms_{preset}_{size}x{size}"] = round(1000 * act_latency(preset, size), 2)
    for preset in ("cpu", "default"):
        out[f"infer_samples_per_s_{preset}_11x11_b256"] = round(infer_rate(preset, 11, 256), 1)
    rate = data_rate()
    out["data_samples_per_s_procedural_1proc"] = round(rate, 1) if rate is not None else "n/a"
    try:
        out["load_average_1min"] = round(__import__("os").getloadavg()[0], 2)
    except OSError:
        pass
    for k, v in out.items():
        print(f"  {k:>46}: {v}")
    return out


if __name__ == "__main__":
    run()
