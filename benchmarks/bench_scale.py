"""Scale tasks at level 5 (``tasks.make_task("scale", 5, size)``: sources and sinks only):
``factorion build`` (no policy) against the reference construction, per size: mean ratio
(capped at 1), the share within 0.99 of the reference, median seconds per build, and which
constructions won.

``python -m benchmarks scale`` (or ``python benchmarks/bench_scale.py --seeds 10 --budget 30``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter


def run(seeds: int = 6, sizes: tuple[int, ...] = (16, 32), budget_s: float = 10.0) -> dict:
    from factorion import tasks as T
    from factorion.build import SUCCESS, build
    out: dict = {"seeds": seeds, "budget_s": budget_s, "sizes": {}}
    print(f"  level-5 scale tasks, {seeds} seeds, {budget_s:g} s budget: build vs the reference construction")
    print(f"  {'size':>5} {'ratio':>7} {'solved':>7} {'median s':>9}  winners")
    for size in sizes:
        ratios, secs, won = [], [], Counter()
        for seed in range(seeds):
            task = T.make_task("scale", 5, size=size, seed=seed)
            t = time.perf_counter()
            r = build(task, budget_s=budget_s, seed=seed, export=False)
            secs.append(time.perf_counter() - t)
            ratios.append(r.throughput / task.reference)
            won[r.method.split(":")[0]] += 1
        capped = [min(1.0, x) for x in ratios]
        row = {"mean_ratio": round(statistics.fmean(capped), 4), "min_ratio": round(min(ratios), 4),
               "solved": round(sum(x >= SUCCESS for x in ratios) / len(ratios), 3),
               "median_s": round(statistics.median(secs), 2), "winners": dict(won), "n": len(ratios)}
        out["sizes"][size] = row
        print(f"  {size:>5} {row['mean_ratio']:7.3f} {row['solved']:7.2f} {row['median_s']:9.2f}  "
              f"{dict(won)}")
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--budget", type=float, default=10.0)
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    a = p.parse_args()
    run(a.seeds, tuple(a.sizes), a.budget)
