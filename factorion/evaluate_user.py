"""What the policy adds to the planner on worlds a user gives: ``python -m factorion.evaluate_user``.

A user's world (``factorion build TASK``) has sources and sinks and no reference throughput, so the
build search spends its whole budget and keeps the factory with the most throughput. This runs that
search twice on each of ``--n`` seeded worlds per recipe kind -- the planner alone, then the planner
and the policy (both without the scale-out search: ``build(..., scale_out=False)``, ``factorion build
--no-scale-out``) -- and reports, per kind, the mean throughput of each, on how many worlds the policy
made it higher (or lower), and how often the policy's candidate won (ties: fewer entities).

The worlds: ``--size`` square, one source per ingredient on the left edge and the sink on the right
edge, rows drawn from ``random.Random(seed)``, sources without a cap (as in a spec with no rate).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

#: recipe kind -> (source items, sink item)
KINDS = {"gear": (("iron-plate",), "iron-gear-wheel"), "cable": (("copper-plate",), "copper-cable"),
         "smelting": (("iron-ore",), "iron-plate"),
         "circuit": (("iron-plate", "copper-plate"), "electronic-circuit")}


def user_world(kind: str, seed: int, size: int = 11):
    """The seeded world of ``kind`` (see the module docstring), as a text spec would give it."""
    from factorion.build import parse_spec
    sources, sink = KINDS[kind]
    rng = random.Random(seed)
    rows = rng.sample(range(1, size - 1), len(sources))
    spec = [f"size {size} {size}"] + [f"source {r} 0 {item}" for r, item in zip(rows, sources, strict=True)]
    return parse_spec("\n".join(spec + [f"sink {rng.randrange(1, size - 1)} {size - 1} {sink}"]))


def compare(kinds, n: int, seed0: int, budget_s: float, checkpoint="default", size: int = 11,
            progress: bool = True) -> list[dict]:
    """One row per world: the planner's and the planner + policy's throughput and winner."""
    from tqdm import tqdm

    from factorion.build import build, load_policy
    policy = load_policy(checkpoint)
    rows = []
    for kind, seed in tqdm([(k, seed0 + i) for k in kinds for i in range(n)], desc="user worlds",
                           disable=not progress):
        w = user_world(kind, seed, size)
        a = build(w, None, budget_s=budget_s, scale_out=False, export=False)
        b = build(w, policy, budget_s=budget_s, scale_out=False, export=False)
        rows.append({"kind": kind, "seed": seed, "planner": a.throughput, "planner_policy": b.throughput,
                     "method": b.method, "policy_won": b.method.startswith("policy")})
    return rows


def summary(rows: list[dict]):
    import pandas as pd
    df = pd.DataFrame(rows)
    eps = 1e-9
    df["higher"] = df.planner_policy > df.planner * (1 + eps)
    df["lower"] = df.planner_policy < df.planner * (1 - eps)
    g = df.groupby("kind", sort=False)
    return pd.DataFrame({"planner": g.planner.mean(), "planner+policy": g.planner_policy.mean(),
                         "higher": g.higher.sum(), "lower": g.lower.sum(), "policy_won": g.policy_won.sum(),
                         "n": g.size()}).round(3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m factorion.evaluate_user",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--n", type=int, default=20, help="worlds per kind")
    p.add_argument("--seed0", type=int, default=1000)
    p.add_argument("--budget", type=float, default=4.0, help="seconds per build")
    p.add_argument("--size", type=int, default=11)
    p.add_argument("--checkpoint", default="default", help="the policy ('default': the shipped one)")
    p.add_argument("--out", default="reports/learned/user_worlds.csv")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    import pandas as pd
    t0 = time.perf_counter()
    rows = compare(a.kinds, a.n, a.seed0, a.budget, a.checkpoint, a.size, not a.no_progress)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    print(f"planner alone against planner + policy (no scale-out), {a.budget:g} s each, "
          f"{time.perf_counter() - t0:.0f} s; mean items/s per kind:")
    print(summary(rows).to_string())
    print(f"rows: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
