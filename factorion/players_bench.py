"""Whole player-made factories benchmark: ``factorion build`` against the player's own design.

The held-out factories of :mod:`factorion.tasks.players` (the ``test`` and ``val`` splits by
blueprint hash: neither is trained on) from the corpus and the embedded samples become level-5
tasks (sources, sinks and obstacles only); each is built with :func:`factorion.build.build`
within ``budget_s`` and compared with the player's design in the simulator. Reported: mean
ratio to the player's throughput (capped at 1), the share matched or beaten (ratio >= 0.99),
median seconds per build, all by size and by machine count, and the best and worst builds next
to the player's designs (``players.png``).

``make evaluate`` appends this section to its report (``--players N``, default 8; 0: off);
standalone: ``python -m factorion.players_bench --budget 30``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

SUCCESS = 0.99
CORPUS = "../shared/blueprints"
SAMPLES = Path(__file__).resolve().parent / "samples"
HELD_OUT = ("test", "val")


def held_out(corpus: str | Path = CORPUS, limit: int = 8) -> list:
    """Up to ``limit`` held-out player factories (test split first, then val)."""
    from factorion.tasks.players import player_factories
    roots = [r for r in (Path(corpus), SAMPLES) if r.exists()]
    out = []
    for split in HELD_OUT:
        out += list(player_factories(roots, split=split, limit=limit - len(out)))
        if len(out) >= limit:
            break
    return out


def _bucket(v: int, edges: tuple[int, ...]) -> str:
    lo = 1
    for e in edges:
        if v <= e:
            return f"{lo}-{e}"
        lo = e + 1
    return f"{lo}+"


def as_build_task(task):
    """``task`` with the family and recipes ``factorion build`` infers from its sources and sinks
    (what a player's task gets from the CLI), its reference kept."""
    from dataclasses import replace

    from factorion.build import infer_task
    from factorion.core.world import WorldError
    try:
        inf = infer_task(task.world)
    except WorldError:
        return task
    return replace(task, family=inf.family, recipes=inf.recipes)


def run_players(factories: list, budget_s: float = 30.0, checkpoint=None, progress: bool = True
                ) -> tuple[pd.DataFrame, dict]:
    from tqdm.auto import tqdm

    from factorion.build import build
    rows, builds = [], {}
    for f in tqdm(factories, desc="player factories", disable=not progress):
        t = time.perf_counter()
        r = build(as_build_task(f.task), checkpoint=checkpoint, budget_s=budget_s, export=False)
        secs = time.perf_counter() - t
        ratio = r.throughput / f.task.reference
        size = max(f.task.world.shape)
        rows.append({"factory": f.name, "id": f.id, "split": f.split, "size": size,
                     "size_bucket": _bucket(size, (16, 24, 32)), "machines": f.machines,
                     "machines_bucket": _bucket(f.machines, (4, 9)), "reference": f.task.reference,
                     "throughput": r.throughput, "ratio": ratio, "ratio_capped": min(1.0, ratio),
                     "matched": ratio >= SUCCESS, "seconds": secs, "method": r.method})
        builds[f.name] = (f.task.solution, r.world)
    return pd.DataFrame(rows), builds


def markdown(df: pd.DataFrame, index: bool = True) -> str:
    """A Markdown table of a small frame."""
    df = df.reset_index() if index else df
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in df.itertuples(False)]
    head = [str(c) for c in df.columns]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in cells])


def summarise(df: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    g = df.groupby(by) if by else df.assign(all="all").groupby("all")
    return g.agg(n=("ratio", "size"), mean_ratio_capped=("ratio_capped", "mean"),
                 matched=("matched", "mean"), median_s=("seconds", "median")).round(3)


def pictures(df: pd.DataFrame, builds: dict, path: Path) -> None:
    """The best and worst builds beside the player's designs."""
    from factorion.core.render import render_grid_png
    if df.empty:
        return
    worlds, titles = [], []
    s = df.sort_values("ratio")
    for label, r in (("best", s.iloc[-1]), ("worst", s.iloc[0])):
        player, built = builds[r.factory]
        worlds += [player, built]
        titles += [f"{label}: player {r.reference:.3g}/s", f"build {r.throughput:.3g}/s ({r.ratio:.2f})"]
    render_grid_png(worlds, path, cols=2, titles=titles)


def report_lines(df: pd.DataFrame, builds: dict, out: Path, budget_s: float) -> list[str]:
    """The report section (markdown lines); writes ``players.csv`` and ``players.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "players.csv.tmp"
    df.to_csv(tmp, index=False)
    tmp.replace(out / "players.csv")
    lines = ["## Whole player-made factories (level 5)", ""]
    if df.empty:
        return lines + ["No held-out player factory found (corpus missing?).", ""]
    pictures(df, builds, out / "players.png")
    lines += [f"{len(df)} held-out factories ({', '.join(HELD_OUT)} splits by blueprint hash), built from "
              f"their sources and sinks within {budget_s:g} s each; ratio = build / the player's design "
              f"(capped at 1 in the mean); matched = ratio >= {SUCCESS}.", "",
              markdown(summarise(df)), "", "By size (tiles a side):", "",
              markdown(summarise(df, "size_bucket")), "", "By machine count:", "",
              markdown(summarise(df, "machines_bucket")), "",
              markdown(df[["factory", "size", "machines", "reference", "throughput", "ratio", "seconds",
                            "method"]], index=False), "",
              "![best and worst player factories](players.png)", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m factorion.players_bench", description=__doc__.split("\n")[0])
    p.add_argument("--corpus", default=CORPUS)
    p.add_argument("--limit", type=int, default=8, help="held-out factories at most")
    p.add_argument("--budget", type=float, default=30.0, help="seconds per build")
    p.add_argument("--checkpoint", default=None, help="the build's policy (default: none, the planner)")
    p.add_argument("--out", default="reports/players")
    a = p.parse_args(argv)
    fs = held_out(a.corpus, a.limit)
    df, builds = run_players(fs, a.budget, a.checkpoint)
    lines = report_lines(df, builds, Path(a.out), a.budget)
    (Path(a.out) / "report.md").write_text("\n".join(["# Player factories", "", *lines]))
    print("\n".join(lines[:12]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
