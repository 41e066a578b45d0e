"""PPO logging and run state: the growing-header CSV log (:class:`CSVLog`), per-iteration episode
statistics (:class:`EpisodeStats`), the curriculum state saved in checkpoints, wandb (offline by
default) and the one-line console summary."""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


# ---------------------------------------------------------------------------------- metrics
class CSVLog:
    """Append-only CSV whose header grows when new keys appear (the file is rewritten then)."""

    def __init__(self, path: Path, resume: bool = False):
        self.path = path
        self.rows: list[dict] = []
        self.keys: list[str] = []
        if resume and path.exists():
            with open(path, newline="") as f:
                r = csv.DictReader(f)
                self.keys = list(r.fieldnames or [])
                self.rows = list(r)

    def log(self, row: Mapping[str, Any]) -> None:
        row = {k: _fmt(v) for k, v in row.items()}
        self.rows.append(row)
        new = [k for k in row if k not in self.keys]
        if new or not self.path.exists():
            self.keys += new
            with open(self.path, "w", newline="") as f:
                w = csv.DictWriter(f, self.keys, restval="")
                w.writeheader()
                w.writerows(self.rows)
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.keys, restval="").writerow(row)


def _fmt(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


class EpisodeStats:
    """Episode ends of one iteration: return, throughput ratio (overall, per family, per level),
    success, steps, entities, finished vs truncated."""

    def __init__(self):
        self.rows: list[tuple] = []

    def add(self, family, level, ratio, success, steps, entities, ret, terminated):
        self.rows.append((family, int(level), float(ratio), bool(success), int(steps), int(entities),
                          float(ret), bool(terminated)))

    def summary(self) -> dict[str, float]:
        if not self.rows:
            return {"episode/count": 0}
        fam, lvl, ratio, succ, steps, ents, ret, term = zip(*self.rows, strict=True)
        ratio_a, term_a, steps_a = np.array(ratio), np.array(term), np.array(steps)
        out = {"episode/count": len(self.rows), "episode/return": float(np.mean(ret)),
               "episode/ratio": float(np.mean(ratio_a)), "episode/success": float(np.mean(succ)),
               "episode/length": float(np.mean(steps_a)), "episode/entities": float(np.mean(ents)),
               "episode/finished": float(np.mean(term_a)),
               "episode/steps_to_finish": float(np.mean(steps_a[term_a])) if term_a.any() else float("nan")}
        by_f, by_l = defaultdict(list), defaultdict(list)
        for f, lv, r in zip(fam, lvl, ratio, strict=True):
            by_f[f].append(r)
            by_l[lv].append(r)
        out.update({f"ratio/family/{f}": float(np.mean(v)) for f, v in sorted(by_f.items())})
        out.update({f"ratio/level/{lv}": float(np.mean(v)) for lv, v in sorted(by_l.items())})
        return out


# ---------------------------------------------------------------------------------- curriculum state
def curriculum_state(cur) -> dict:
    """Everything needed to restore a :class:`~factorion.tasks.Curriculum` (its ``state()`` plus
    the raw result windows)."""
    st = {"summary": cur.state()}
    st["level"] = dict(cur.level)
    st["results"] = {f: [bool(x) for x in r] for f, r in cur.results.items()}
    st["episodes"] = dict(cur.episodes)
    return st


def load_curriculum_state(cur, st: Mapping) -> None:
    if hasattr(cur, "load_state"):
        cur.load_state(st.get("summary", st))
        return
    for f in cur.families:
        if f in st.get("level", {}):
            cur.level[f] = int(st["level"][f])
        if f in st.get("results", {}):
            cur.results[f].clear()
            cur.results[f].extend(bool(x) for x in st["results"][f])
        if f in st.get("episodes", {}):
            cur.episodes[f] = int(st["episodes"][f])


def wandb_run(enabled: bool, project: str, resume: bool, out: Path, config: dict):
    """A wandb run named after ``out`` (offline unless ``WANDB_MODE`` says otherwise), or None
    (disabled, wandb missing, or it failed to start)."""
    if not enabled:
        return None
    try:
        import wandb
    except ImportError:
        return None
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        return wandb.init(project=project, name=out.name, dir=str(out), config=config,
                          mode=os.environ["WANDB_MODE"], resume="allow" if resume else None)
    except Exception as exc:  # logging must never kill a run
        print(f"ppo: wandb disabled ({exc!r})", flush=True)
        return None


def mean_of(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def console_line(row: Mapping[str, Any]) -> str:
    def g(k, fmt="{:.3f}"):
        v = row.get(k)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)

    cur = " ".join(f"{k.split('/')[1][:4]}{v}" for k, v in row.items()
                   if k.startswith("curriculum/") and k != "curriculum/mean_level")
    return (f"it {row['iteration']:4d} step {row['global_step']:7d} sps {g('charts/SPS', '{:.1f}')} | "
            f"env {g('time/env_frac', '{:.0%}')} fwd {g('time/forward_frac', '{:.0%}')} "
            f"upd {g('time/update_frac', '{:.0%}')} | ep {row.get('episode/count', 0)} ret "
            f"{g('episode/return')} ratio {g('episode/ratio')} succ {g('episode/success', '{:.2f}')} "
            f"len {g('episode/length', '{:.1f}')} | kl {g('losses/approx_kl', '{:.4f}')} "
            f"klbc {g('losses/kl_bc', '{:.3f}')} clip {g('losses/clipfrac', '{:.2f}')} ent "
            f"{g('losses/entropy', '{:.2f}')} ev {g('losses/explained_variance', '{:.2f}')}"
            + (" [warm-up]" if row.get("charts/critic_warmup") else "") + (f" | {cur}" if cur else ""))
