"""``make demos``: whole-build demonstrations from the scripted planner, in ``make data``'s schema.

``python -m pipeline.demos --out data/demos`` writes ``examples/{train,val}/part-*.parquet`` with
:data:`pipeline.write.EXAMPLE_SCHEMA` rows, so ``make pretrain`` reads them as it reads mined rows.

For every family x level x size (default: the seven ``factorion.tasks`` families, levels 1-5, sizes
11 and 16) and ``--per-cell`` seeds, the task ``tasks.make_task(family, level, size, seed)`` is solved by
``factorion.env.planner.plan`` (it never reads the reference solution; its budget is far above what it
needs, so the result is a function of the task, not of the clock). The demonstration is
``planner.actions_to_build(task.world, target)``: removals of what the start holds and the target lacks,
then the target's pieces in the canonical flow order (machines, inserters, then belt-likes along the
item flow from the sources; see ``pipeline.expert.flow_order``). ``target`` is
``planner.expert_target(task)``, the same the DAgger expert uses (``factorion.train.dagger``): the plan
when it reaches 0.99 x the task's reference throughput, or the task generator's reference solution
(``tasks.solved_factory``, which reaches the reference by definition), whichever needs fewer edits
(ties: the planner). On levels 2-4 that is usually the reference
(the planner re-plans around the pieces already there, the reference only fills the gaps); on level 5
mostly the planner. Provenance: ``source`` = ``procedural``, ``author`` names the
expert (``factorion.env.planner.plan`` or ``factorion.tasks.solved_factory``), ``key`` =
``family/L{level}/{size}/{seed}``.

Seeds: train from :data:`TRAIN_SEED0`, val from :data:`VAL_SEED0`: disjoint from ``make evaluate``'s
held-out benchmark seeds (20,000 ...) and from ``factorion.train.bc``'s procedural test seeds (2e9 ...).
Rows are written atomically (a staging folder swapped in); the same arguments give the same rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from factorion.core.world import K_SINK, K_SOURCE, KIND
from factorion.tasks.splits import DEMO_TRAIN_SEED0, DEMO_VAL_SEED0
from pipeline.chunk import action_struct, entity_struct
from pipeline.write import SplitWriter, swap_in

__all__ = ["TRAIN_SEED0", "VAL_SEED0", "demo_row", "task_specs", "main"]

TRAIN_SEED0, VAL_SEED0 = DEMO_TRAIN_SEED0, DEMO_VAL_SEED0  # factorion.tasks.splits
DEFAULT_LEVELS = (1, 2, 3, 4, 5)
DEFAULT_SIZES = (11, 16)


def task_specs(families, levels, sizes, per_cell: int, val_per_cell: int) -> list[tuple]:
    """``(family, level, size, seed, split)`` for every cell of the grid of demonstrations."""
    out = []
    for fi, fam in enumerate(families):
        for level in levels:
            for size in sizes:
                cell = (fi * 10 + level) * 100 + size
                out += [(fam, level, size, TRAIN_SEED0 + cell * 10_000 + i, "train") for i in range(per_cell)]
                out += [(fam, level, size, VAL_SEED0 + cell * 10_000 + i, "val") for i in range(val_per_cell)]
    return out


def _items_recipes(task) -> tuple[list[str], list[str]]:
    return sorted(i for i in task.items if i), sorted(task.recipes)


def demo_row(fam: str, level: int, size: int, seed: int, split: str,
             budget_s: float | None = None) -> dict | None:
    """One EXAMPLE_SCHEMA row (None when the task cannot be made or no expert reaches it)."""
    from factorion import tasks
    from factorion.env import planner
    from factorion.env.masks import count_entities
    from factorion.sim import throughput

    try:
        task = tasks.make_task(fam, level, size=size, seed=seed)
    except (RuntimeError, ValueError):
        return None
    ref = float(task.reference)
    try:
        target, author = planner.expert_target(task, budget_s=budget_s or planner.EXPERT_BUDGET_S)
        acts = planner.actions_to_build(task.world, target)
    except ValueError:
        return None
    start = task.world
    targets = [entity_struct(a[1]) for a in acts if a[0] == "place"]
    items, recs = _items_recipes(task)
    k = target.grid[KIND]
    return {
        "example_id": f"procedural-{fam}-{size}-{seed}-L{level}", "bp_id": f"procedural-{fam}-{seed}",
        "split": split, "source": "procedural", "key": f"{fam}/L{level}/{size}/{seed}", "bp_path": "",
        "label": f"{fam} level {level}",
        "title": f"factorion.tasks.make_task({fam!r}, {level}, {size}, {seed})",
        "author": author, "url": "", "version": "",
        "bp_height": size, "bp_width": size, "window_top": 0, "window_left": 0, "window_size": size,
        "grid_shape": list(target.grid.shape),
        "grid": target.grid.astype("<i2", copy=False).tobytes(),
        "start_grid": start.grid.astype("<i2", copy=False).tobytes(),
        "level": level, "n_removed": len(targets), "targets": targets,
        "actions": [action_struct(a) for a in acts],
        "reference_throughput": ref, "start_throughput": float(throughput(start)),
        "n_entities": int(count_entities(target.grid[None])[0]),
        "n_sources": int((k == K_SOURCE).sum()), "n_sinks": int((k == K_SINK).sum()),
        "n_edge_placeholder": 0, "items": items, "recipes": recs,
    }


def _one(args: tuple) -> dict | None:
    *spec, budget = args
    return demo_row(*spec, budget_s=budget)


def build_parser() -> argparse.ArgumentParser:
    from factorion.tasks.base import FAMILIES

    p = argparse.ArgumentParser(prog="python -m pipeline.demos", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/demos", help="output folder (examples/<split>/part-*.parquet)")
    p.add_argument("--families", nargs="+", default=list(FAMILIES))
    p.add_argument("--levels", type=int, nargs="+", default=list(DEFAULT_LEVELS))
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    p.add_argument("--per-cell", type=int, default=24, help="train tasks per family x level x size")
    p.add_argument("--val-per-cell", type=int, default=2, help="val tasks per family x level x size")
    p.add_argument("--budget", type=float, default=None,
                   help="planner seconds per task (default planner.EXPERT_BUDGET_S: never cut by the clock)")
    p.add_argument("--workers", type=int, default=1, help="processes")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict:
    from tqdm import tqdm

    args = build_parser().parse_args(argv)
    specs = task_specs(args.families, args.levels, args.sizes, args.per_cell, args.val_per_cell)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n, by_author = 0, {}
    with tempfile.TemporaryDirectory(dir=out, prefix=".staging-") as tmp:
        staged = Path(tmp) / "examples"
        with SplitWriter(staged, rows_per_group=512) as writer:
            jobs = [(*s, args.budget) for s in specs]
            pool = ProcessPoolExecutor(args.workers) if args.workers > 1 else None
            rows = pool.map(_one, jobs, chunksize=4) if pool else map(_one, jobs)
            for row in tqdm(rows, total=len(jobs), desc="demos", disable=args.no_progress):
                if row is None:
                    continue
                writer.add(row)
                n += 1
                a = row["author"].split(" ")[0]
                by_author[a] = by_author.get(a, 0) + 1
            if pool:
                pool.shutdown()
        swap_in(staged, out / "examples")
    stats = {"rows": n, "tasks": len(specs), "by_expert": by_author,
             "seconds": round(time.perf_counter() - t0, 1)}
    print(f"demos: {n} rows of {len(specs)} tasks in {stats['seconds']} s -> {out / 'examples'}; "
          f"experts {by_author}")
    return stats


if __name__ == "__main__":
    main(sys.argv[1:])
