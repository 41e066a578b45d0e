"""Procedural task generation speed: ``tasks.make_task`` per family, all five levels, sizes 11 and
16, wall and CPU milliseconds per task (medians over seeds; CPU time is the fair figure on a shared
machine).

``python -m benchmarks tasks`` (or ``python benchmarks/bench_tasks.py --seeds 20``).
"""

from __future__ import annotations

import argparse
import statistics
import time


def run(seeds: int = 6, sizes: tuple[int, ...] = (11, 16), families=None, levels=(1, 2, 3, 4, 5)) -> dict:
    from factorion import tasks as T
    T.make_task("belt", 1, size=11, seed=0)  # warm up: sim compile cache, gamedata tables
    families = families or T.FAMILIES
    out: dict = {"seeds": seeds, "sizes": list(sizes), "levels": list(levels), "families": {}}
    all_wall, all_cpu = [], []
    print(f"  make_task, levels {list(levels)}, sizes {list(sizes)}, {seeds} seeds: median ms per task")
    print(f"  {'family':>12} {'wall':>8} {'cpu':>8}")
    for fam in families:
        wall, cpu = [], []
        for size in sizes:
            for level in levels:
                for seed in range(seeds):
                    w0, c0 = time.perf_counter(), time.process_time()
                    T.make_task(fam, level, size=size, seed=seed)
                    wall.append(time.perf_counter() - w0)
                    cpu.append(time.process_time() - c0)
        all_wall += wall
        all_cpu += cpu
        mw, mc = 1000 * statistics.median(wall), 1000 * statistics.median(cpu)
        out["families"][fam] = {"wall_ms": round(mw, 2), "cpu_ms": round(mc, 2), "n": len(wall)}
        print(f"  {fam:>12} {mw:8.2f} {mc:8.2f}")
    mw, mc = 1000 * statistics.median(all_wall), 1000 * statistics.median(all_cpu)
    out["all"] = {"wall_ms": round(mw, 2), "cpu_ms": round(mc, 2), "n": len(all_wall),
                  "cpu_mean_ms": round(1000 * statistics.fmean(all_cpu), 2)}
    print(f"  {'all':>12} {mw:8.2f} {mc:8.2f}   (cpu mean {out['all']['cpu_mean_ms']:.2f})")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--sizes", type=int, nargs="+", default=[11, 16])
    ap.add_argument("--families", nargs="+", default=None)
    a = ap.parse_args()
    run(a.seeds, tuple(a.sizes), a.families)
