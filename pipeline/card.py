"""The dataset card (``<out>/card.md``) and the picture of sample windows (``<out>/samples.png``).

:class:`CardStats` is fed every written example row (in the main process, as rows stream to Parquet)
and keeps only counters and one float per window, so it stays small. :func:`write_card` renders: the
run's command-line settings, counts per split / level / window size, blueprints per split, the entity
histogram of the complete windows, edge sources/sinks and placeholder items, the reference-throughput
distribution, rejects by stage and reason, timings, and the schema (from :mod:`pipeline.write`).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from factorion.core.world import KIND, KINDS, PART

__all__ = ["CardStats", "write_card", "write_samples_png"]


class CardStats:
    def __init__(self) -> None:
        self.split_level: Counter = Counter()  # (split, level) -> rows
        self.levels: Counter = Counter()
        self.size_level: Counter = Counter()  # (size, level) -> rows
        self.sizes_windows: Counter = Counter()  # size -> windows
        self.split_windows: Counter = Counter()
        self.split_bps: Counter = Counter()
        self.sources_bps: Counter = Counter()
        self.kinds = np.zeros(len(KINDS), dtype=np.int64)  # anchors per kind, complete windows
        self.ref_tp: list[float] = []
        self.placeholder_windows = 0
        self.edge_cells = 0
        self.placeholder_cells = 0
        self.items: Counter = Counter()
        self.recipes: Counter = Counter()
        self.n_removed: Counter = Counter()
        self.restorable: Counter = Counter()  # level -> rows whose start throughput < reference

    def add(self, row: dict) -> None:
        split, level, size = row["split"], int(row["level"]), int(row["window_size"])
        self.split_level[(split, level)] += 1
        self.levels[level] += 1
        self.size_level[(size, level)] += 1
        self.n_removed[int(row["n_removed"])] += 1
        ref, start = row["reference_throughput"], row["start_throughput"]
        if level != 1 and ref is not None and start is not None and start < ref - 1e-9:
            self.restorable[level] += 1
        if level != 1:
            return
        self.sizes_windows[size] += 1
        self.split_windows[split] += 1
        g = np.frombuffer(row["grid"], dtype="<i2").reshape(row["grid_shape"])
        self.kinds += np.bincount(g[KIND][g[PART] == 1], minlength=len(KINDS))[:len(KINDS)]
        self.ref_tp.append(float("nan") if ref is None else float(ref))
        self.edge_cells += int(row["n_sources"]) + int(row["n_sinks"])
        self.placeholder_cells += int(row["n_edge_placeholder"])
        self.placeholder_windows += int(row["n_edge_placeholder"] > 0)
        self.items.update(row["items"] or [])
        self.recipes.update(row["recipes"] or [])

    def add_blueprint(self, meta: dict, n_windows: int) -> None:
        if n_windows:
            self.split_bps[meta["split"]] += 1
            self.sources_bps[meta["source"]] += 1


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _top(c: Counter, n: int = 15) -> str:
    return ", ".join(f"{k} {v}" for k, v in c.most_common(n)) or "none"


def _tp_section(values: list[float]) -> list[str]:
    a = np.asarray(values, dtype=float)
    if not len(a):
        return ["No windows."]
    finite = a[np.isfinite(a)]
    if not len(finite):
        return ["The simulator (`factorion.sim`) was not used in this run: throughputs are NaN and no "
                "window was filtered on throughput."]
    qs = np.quantile(finite, [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1])
    out = [f"{len(finite)} windows with a reference throughput ({len(a) - len(finite)} NaN); "
           f"{int((finite > 0).sum())} > 0. Mean {finite.mean():.3g} items/s.", "",
           _table(["min", "p10", "p25", "median", "p75", "p90", "max"], [[f"{q:.3g}" for q in qs]]), ""]
    pos = finite[finite > 0]
    if len(pos):
        edges = [0, 0.5, 1, 2, 5, 10, 15, 30, 45, 60, 120, math.inf]
        hist, _ = np.histogram(pos, bins=edges)
        peak = max(int(hist.max()), 1)
        rows = [[f"{lo:g} - {hi:g}" if hi != math.inf else f">= {lo:g}", int(n), "#" * round(40 * n / peak)]
                for lo, hi, n in zip(edges[:-1], edges[1:], hist, strict=True)]
        out.append(_table(["items/s", "windows", ""], rows))
    return out


def _run_section(stats: dict) -> list[str]:
    cfg = stats.get("config", {})
    L = ["# Factorion blueprint windows: dataset card", "",
         "Partial-factory examples cut from public Factorio blueprints (and the project's own samples) "
         "for behaviour cloning: each row is a square window of a real blueprint, with 0 (level 1), 1 "
         "(level 3) or N (level 4) of its entities removed, the removed entities as targets, and the "
         "expert actions that restore them. Built by `python -m pipeline.run` (`make data`).", "",
         "**Licence / provenance.** Blueprint authors state no licence: every row keeps its source, key, "
         "title, author and URL; do not redistribute the raw strings.", "",
         "## Run", "",
         _table(["setting", "value"], [[k, f"`{v}`"] for k, v in cfg.items()]), "",
         "Simulator (`factorion.sim`): "
         + ("yes." if stats.get("simulator") else "not used (not installed, or --no-sim): throughputs NaN.")
         + f" JSON parser: {stats.get('json', '?')}.",
         ""]
    if stats.get("source_errors"):
        L += ["Sources skipped: " + "; ".join(f"`{e}`" for e in stats["source_errors"]), ""]
    return L


def _counts_section(stats: dict, card: CardStats, splits) -> list[str]:
    levels = sorted(card.levels)
    L = ["## Counts", "",
         f"{stats.get('records', 0)} raw strings -> {stats.get('blueprints_kept', 0)} distinct blueprints "
         "-> "
         f"{stats.get('windows', 0)} windows -> {stats.get('rows', 0)} example rows.", "",
         "Rows per split and level:", "",
         _table(["split", *[f"level {lv}" for lv in levels], "rows", "windows", "blueprints"],
                [[s, *[card.split_level[(s, lv)] for lv in levels],
                  sum(card.split_level[(s, lv)] for lv in levels), card.split_windows[s], card.split_bps[s]]
                 for s in splits]), "",
         "Rows per window size and level:", "",
         _table(["size", *[f"level {lv}" for lv in levels], "windows"],
                [[f"{s}x{s}", *[card.size_level[(s, lv)] for lv in levels], card.sizes_windows[s]]
                 for s in sorted(card.sizes_windows)]), "",
         "Removed entities per row: " + ", ".join(f"{k}: {v}" for k, v in sorted(card.n_removed.items()))
         + ".",
         ""]
    if card.restorable:
        L += ["Rows of levels 3/4 whose start throughput is below the reference (the removal matters): "
              + ", ".join(f"level {k}: {v}" for k, v in sorted(card.restorable.items())) + ".", ""]
    L += ["Blueprints per source (with at least one window): "
          + ", ".join(f"{k} {v}" for k, v in card.sources_bps.most_common()) + ".", ""]
    return L


def _content_sections(card: CardStats) -> list[str]:
    L = ["## Entities", "", "Entities (anchors) in the complete windows (level-1 rows), by kind:", ""]
    total = int(card.kinds.sum()) or 1
    L += [_table(["kind", "count", "share"],
                 [[KINDS[k], int(card.kinds[k]), f"{card.kinds[k] / total:.1%}"]
                  for k in np.argsort(-card.kinds) if card.kinds[k] > 0]), ""]
    L += ["## Edge sources and sinks", "",
          f"{card.edge_cells} source/sink cells in the complete windows; {card.placeholder_cells} of them "
          "got "
          f"the placeholder item (no evidence on their belt system), in {card.placeholder_windows} windows. "
          "Rule: `pipeline/chunk.py` module docstring (nearest evidence along the belt network of the full "
          "blueprint; placeholder = the blueprint's most common inferred item, else iron-plate).", "",
          "Most common source/sink items (windows): " + _top(card.items) + ".", "",
          "Most common recipes (windows): " + _top(card.recipes) + ".", ""]
    L += ["## Reference throughput (complete windows)", "", *_tp_section(card.ref_tp), ""]
    return L


def _rejects_and_figures(stats: dict, rejects: list) -> list[str]:
    by_reason = Counter((r.stage, r.reason) for r in rejects)
    L = ["## Rejects", "", "Recorded in `rejects.parquet` (source, key, path, stage, reason, detail); "
         "`dedup/duplicate` and `chunk/no-windows` are not errors.", ""]
    L += [_table(["stage", "reason", "count"], [[s, r, n] for (s, r), n in by_reason.most_common()])
          if by_reason else "None.", ""]
    L += ["## Pipeline figures", "", _table(["figure", "value"], [
        ["wall time, s", stats.get("wall_s")],
        ["windows/s (decode+chunk+write wall)", stats.get("windows_per_s")],
        ["CPU s, main / workers", f"{stats.get('cpu_main_s')} / {stats.get('cpu_workers_s')}"],
        ["CPU time per stage, s (all workers)", stats.get("cpu_s")],
        ["peak RSS main / worker, MB", f"{stats.get('peak_rss_main_mb')} / {stats.get('peak_rss_worker_mb')}"
         ],
        ["window counters", stats.get("counts")]]), ""]
    return L


def write_card(path: str | Path, stats: dict, card: CardStats, rejects: list, png: Path | None) -> Path:
    """The dataset card (markdown): run settings, counts, entities, edge cells, throughputs,
    rejects, pipeline figures, sample picture and schema."""
    from pipeline.write import (
        BLUEPRINT_SCHEMA,
        EXAMPLE_SCHEMA,
        REJECT_SCHEMA,
        SPLITS,
        schema_markdown,
        write_bytes_atomic,
    )
    L = _run_section(stats) + _counts_section(stats, card, SPLITS) + _content_sections(card)
    L += _rejects_and_figures(stats, rejects)
    if png is not None:
        L += ["## Sample windows", "", f"![sample windows]({Path(png).name})", ""]
    L += ["## Schema", "", "Defined in `pipeline/write.py` (the one place); decode a grid with "
          "`np.frombuffer(row['grid'], '<i2').reshape(row['grid_shape'])`.", "",
          "### examples/{train,val,test}/part-*.parquet", "", schema_markdown(EXAMPLE_SCHEMA), "",
          "### blueprints.parquet", "", schema_markdown(BLUEPRINT_SCHEMA), "",
          "### rejects.parquet", "", schema_markdown(REJECT_SCHEMA), ""]
    return write_bytes_atomic("\n".join(L).encode(), path)


def write_samples_png(worlds: list, titles: list[str], path: str | Path) -> Path | None:
    """``factorion.core.render.render_grid_png`` to a temp file, then into place; None if it is missing."""
    try:
        from factorion.core.render import render_grid_png
    except ImportError:
        return None
    from pipeline.write import atomic_target
    path = Path(path)
    with atomic_target(path, suffix=".tmp.png") as tmp:  # the extension tells PIL the format
        render_grid_png(worlds, str(tmp), cols=4, titles=titles)
    return path
