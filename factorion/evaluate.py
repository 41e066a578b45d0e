"""``make evaluate``: a fixed held-out benchmark, every agent on it, a report with pictures.

Benchmark (fixed seeds, disjoint from training's: procedural seeds start at
:data:`factorion.tasks.splits.BENCH_SEED0`):

* every procedural family x levels 1-5 at 11x11 and at a larger size (16x16 by default),
  ``n_seeds`` tasks each;
* held-out mined windows (the ``test`` split of ``make data``'s Parquet, when present) with
  N = 1 and N = 5 entities removed, and whole windows (level 5: every modelled entity removed); the
  report gives the share of the removed throughput each agent restores.

Agents: ``random`` (uniform among valid actions), ``planner`` (the scripted baseline),
``build`` (``factorion build``'s search, :func:`factorion.build.build`, the very function the
CLI calls: planner candidates, then policy samples checked in the simulator, within
``--build-budget`` seconds, stopping at success; with ``--build-checkpoint``'s policy, by
default the PPO or else the BC checkpoint evaluated, else the shipped policy), and two entries
per checkpoint (by default ``policy`` = the shipped ``default.pt``, plus ``bc`` and ``ppo`` when
make pretrain / make finetune wrote them): ``NAME``, the policy's greedy roll-out in the env, and
``NAME@K`` (``--policy-samples``, 16), the policy alone: the best state of its greedy and K sampled
roll-outs, every state scored by the simulator. ``planner+policy``: the build agent's search
without its scale-out search (``factorion build --no-scale-out``), to show what the policy adds to
the planner. Per build: throughput ratio (final / reference),
success (ratio >= 0.99), invalid-action rate, entities used, wall and CPU time (the CPU may be
shared: CPU seconds count this process only). Writes ``report.md``, ``results.csv``, ``bars.png``
(mean ratio per family and agent) and ``best_worst.png`` (best and worst builds of each learned
agent) under ``--out`` (default ``reports/eval``).

Whole player-made factories (:mod:`factorion.players_bench`): ``--players N`` (default 8; 0: off)
held-out factories of the blueprint corpus (``--corpus``) and the embedded samples are built
from their sources and sinks (``--players-budget``, default 30 s each); the report gets a section
with the ratio to the player's design by size and machine count, ``players.csv`` and
``players.png`` (best and worst builds beside the players' designs).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from factorion.build import build, checkpoint_available, keep_fixed, load_policy, validate_export
from factorion.tasks.splits import BENCH_SEED0, families_for

#: policies evaluated by default: the shipped one ("default": factorion/policy/default.pt) and the outputs of
#: make pretrain / make finetune when they exist
DEFAULT_CHECKPOINTS = {"policy": "default", "bc": "models/bc/last.ckpt",
                       "ppo": "models/ppo/finetune/policy.pt"}
SUCCESS = 0.99  # = factorion.build.SUCCESS, where build stops searching
AGENTS = ("random", "planner", "build", "planner+policy")  # --agents (the policies come by --checkpoint)


@dataclass
class EvalConfig:
    sizes: tuple[int, ...] = (11, 16)
    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    families: tuple[str, ...] | None = None
    n_seeds: int = 3
    data: str = "data/out"
    n_mined: int = 10
    checkpoints: dict[str, str] = field(default_factory=dict)
    agents: tuple[str, ...] = ("random", "planner")
    planner_budget_s: float = 2.0
    build_budget_s: float = 10.0  # the build agent's time budget per task
    build_checkpoint: str | None = None  # the build agent's policy (None: the planner only)
    build_samples: int = 8  # policy roll-outs per sampling round of the build agent
    policy_samples: int = 16  # each checkpoint also runs as NAME@K: best of greedy + K sampled roll-outs
    policy_temperature: float | None = None  # sampling temperature of those (None: SAMPLE_TEMPERATURE)
    max_steps: int = 48  # episode limit for env agents (PPO trains with the same truncation)
    out: str = "reports/eval"
    seed: int = 0
    players: int = 8  # held-out whole player-made factories (factorion.players_bench; 0: none)
    players_budget_s: float = 30.0
    corpus: str = "../shared/blueprints"


@dataclass
class BenchTask:
    id: str
    family: str
    level: int
    size: int
    task: object
    group: str = ""  # mined windows: N1 / N5 (entities removed) or L5 (the whole window)


@dataclass
class Build:
    world: object
    throughput: float
    steps: int
    invalid: int
    seconds: float
    method: str = ""  # build agent: which candidate won
    candidates: int = 0  # build agent: planner runs + policy roll-outs tried
    export_ok: bool | None = None  # build agent: factorio-draftsman loaded the exported string
    cpu_seconds: float | None = None  # CPU seconds of the build itself (None: measured around the agent)


# ----------------------------------------------------------------------------- the benchmark
def procedural_tasks(cfg: EvalConfig) -> list[BenchTask]:
    from factorion.tasks.levels import make_task
    out = []
    for size in cfg.sizes:
        for fam in families_for(size, cfg.families):
            for lv in cfg.levels:
                for i in range(cfg.n_seeds):
                    t = make_task(fam, lv, size=size, seed=BENCH_SEED0 + i)
                    out.append(BenchTask(f"{fam}/L{lv}/{size}/{BENCH_SEED0 + i}", fam, lv, size, t))
    return out


def mined_tasks(cfg: EvalConfig) -> list[BenchTask]:
    """Held-out windows, up to ``n_mined`` of each group, if data exists: 1 entity removed (``N1``),
    the most removed up to 5 (``N5`` when the data has 5), and whole windows with every modelled
    entity removed (level 5, ``L5``). From the test split, or the val split when the test split is
    empty (a tiny dataset such as the demo's; neither is trained on)."""
    if cfg.n_mined <= 0:
        return []
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from factorion.train.bc import row_to_task
    base = Path(cfg.data) / "examples"
    dataset = None
    for split in ("test", "val"):
        files = sorted(str(f) for f in (base / split).glob("*.parquet"))
        if files and (d := ds.dataset(files, format="parquet")).count_rows() > 0:
            dataset = d
            break
    if dataset is None:
        return []
    if split != "test":
        print(f"evaluate: {base / 'test'} has no rows; mined windows from the {split} split")
    partial = (ds.field("level") != 5) & (ds.field("n_removed") > 0)
    upto5 = partial & (ds.field("n_removed") <= 5)
    removed = dataset.to_table(columns=["n_removed"], filter=upto5)["n_removed"]
    most = pc.max(removed).as_py() or 1
    groups = {f"N{n}": partial & (ds.field("n_removed") == n) for n in sorted({1, most})}
    groups["L5"] = ds.field("level") == 5
    out = []
    for group, where in groups.items():
        rows = dataset.head(cfg.n_mined, filter=where & (ds.field("reference_throughput") > 0)).to_pylist()
        for r in rows:
            t = row_to_task(r)
            if not (t.reference > 0):
                continue
            h, w = t.world.shape
            out.append(BenchTask(f"mined/{group}/{r.get('example_id', len(out))}", "mined",
                                 int(r.get("level") or 0), max(h, w), t, group))
    return out


# ----------------------------------------------------------------------------- the agents
def run_env_agent(bt: BenchTask, act: Callable, env_kwargs: dict | None = None, max_steps: int | None = None
                  ) -> Build:
    """Roll ``act(obs, masks) -> action`` out in the single env until finish or the step limit."""
    from factorion.env.factorio_env import FactorioEnv
    h, w = bt.task.world.shape
    env = FactorioEnv((h, w), max_steps=max_steps, **(env_kwargs or {}))
    t0 = time.perf_counter()
    obs, info = env.reset(seed=0, options={"task": bt.task})
    steps = invalid = 0
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(act(obs, info["action_mask"]))
        steps += 1
        invalid += bool(info["invalid"])
        done = term or trunc
    return Build(env.world.copy(), float(info["throughput"]), steps, invalid, time.perf_counter() - t0)


def run_planner(bt: BenchTask, budget_s: float) -> Build:
    from factorion.env.planner import actions_to_build, plan
    from factorion.sim import throughput
    t0 = time.perf_counter()
    world = plan(bt.task, budget_s=budget_s)
    # a plan that lost a source, sink or obstacle is repaired, or else scores as the start world
    world = keep_fixed(bt.task.world, world) or bt.task.world
    dt = time.perf_counter() - t0
    return Build(world, float(throughput(world)), len(actions_to_build(bt.task.world, world)), 0, dt)


def run_build(bt: BenchTask, policy, budget_s: float, samples: int = 8, max_steps: int = 48,
              seed: int = 0, scale_out: bool = True) -> Build:
    """``factorion build``'s search on the benchmark task (its own reference, so it stops at
    success), the exported string loaded back with factorio-draftsman (not timed)."""
    r = build(bt.task, checkpoint=policy, budget_s=budget_s, seed=seed, samples=samples, max_steps=max_steps,
              scale_out=scale_out)
    try:
        validate_export(r.blueprint)
        ok = True
    except Exception:  # noqa: BLE001 - any draftsman failure is a failed export
        ok = False
    return Build(r.world, r.throughput, r.candidates, 0, r.seconds, r.method, r.candidates, ok, r.cpu_seconds)


def run_policy(bt: BenchTask, policy, max_steps: int | None = None) -> Build:
    """The policy's greedy roll-out (:func:`factorion.policy.rollout.rollout`) on the task, in
    an env of the policy's action layout, until finish or the step limit."""
    from factorion.env.vector import FactorioVectorEnv
    from factorion.policy.rollout import rollout
    cfg = policy.config
    env = FactorioVectorEnv(1, bt.task.world.shape, max_steps=max_steps, autoreset_mode="disabled",
                            entities=tuple(cfg.entities), max_items=cfg.max_items,
                            max_recipes=cfg.max_recipes)
    t0 = time.perf_counter()
    res = rollout(policy, env, [bt.task], greedy=True, seed=0)
    return Build(env.world(0).copy(), float(res["throughput"][0]), int(res["steps"][0]),
                 int(res["invalid"][0]), time.perf_counter() - t0)


def run_policy_best(bt: BenchTask, policy, samples: int, max_steps: int, seed: int = 0,
                    temperature: float | None = None) -> Build:
    """The policy alone, best of a greedy and ``samples`` sampled roll-outs (at ``temperature``),
    every state scored by the simulator (:func:`factorion.evaluate_learned.policy_alone`)."""
    from factorion.evaluate_learned import policy_alone
    t0 = time.perf_counter()
    b = policy_alone(policy, bt.task, samples, max_steps, seed, temperature)["best"]
    return Build(b["world"], b["throughput"], b["steps"], b["invalid"], time.perf_counter() - t0,
                 candidates=1 + samples)


def _entities(world) -> int:
    from factorion.core import gamedata as gd
    from factorion.core.world import KIND, PART
    k = world.grid[KIND][world.grid[PART] == 1]
    return int(((k >= 1) & (k <= len(gd.MODELLED))).sum())


def evaluate(cfg: EvalConfig, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    from tqdm.auto import tqdm

    from factorion.env.baselines import RandomAgent
    bench = procedural_tasks(cfg) + mined_tasks(cfg)
    agents: dict[str, Callable[[BenchTask], Build]] = {}
    if "random" in cfg.agents:
        rnd = RandomAgent(cfg.seed)
        agents["random"] = lambda bt: run_env_agent(bt, lambda o, m: rnd.act(m), max_steps=cfg.max_steps)
    if "planner" in cfg.agents:
        agents["planner"] = lambda bt: run_planner(bt, cfg.planner_budget_s)
    if {"build", "planner+policy"} & set(cfg.agents):
        pol = None
        if cfg.build_checkpoint:
            if checkpoint_available(cfg.build_checkpoint):
                pol = load_policy(cfg.build_checkpoint)
            else:
                print(f"evaluate: build: no checkpoint at {cfg.build_checkpoint}; the planner only")
        for name in ("build", "planner+policy"):
            if name in cfg.agents:
                agents[name] = lambda bt, so=name == "build": run_build(
                    bt, pol, cfg.build_budget_s, cfg.build_samples, cfg.max_steps, cfg.seed, scale_out=so)
    for name, path in cfg.checkpoints.items():
        if not checkpoint_available(path):
            print(f"evaluate: {name}: no checkpoint at {path}; skipped")
            continue
        pol = load_policy(path)
        agents[name] = lambda bt, pol=pol: run_policy(bt, pol, max_steps=cfg.max_steps)
        if cfg.policy_samples > 0:
            agents[f"{name}@{cfg.policy_samples}"] = lambda bt, pol=pol: run_policy_best(
                bt, pol, cfg.policy_samples, cfg.max_steps, cfg.seed, cfg.policy_temperature)
    from factorion.sim import throughput
    from factorion.tasks.base import restored
    start = {bt.id: float(throughput(bt.task.world)) for bt in bench}
    rows, builds = [], {}
    bar = tqdm(total=len(bench) * len(agents), desc="evaluate", disable=not progress)
    for name, run in agents.items():
        for bt in bench:
            c0 = time.process_time()
            b = run(bt)
            cpu = time.process_time() - c0 if b.cpu_seconds is None else b.cpu_seconds
            ratio = b.throughput / bt.task.reference
            rows.append({"agent": name, "task": bt.id, "family": bt.family, "level": bt.level,
                         "size": bt.size, "group": bt.group, "ratio": ratio, "success": ratio >= SUCCESS,
                         "restored": restored(b.throughput, start[bt.id], bt.task.reference),
                         "invalid_rate": b.invalid / max(1, b.steps), "entities": _entities(b.world),
                         "steps": b.steps, "seconds": b.seconds, "cpu_seconds": cpu,
                         "throughput": b.throughput, "reference": bt.task.reference, "method": b.method,
                         "candidates": b.candidates, "export_ok": b.export_ok})
            builds[(name, bt.id)] = b.world
            bar.update()
    bar.close()
    return pd.DataFrame(rows), builds


# ----------------------------------------------------------------------------- the report
def markdown(df: pd.DataFrame) -> str:
    """A Markdown table of a (small) frame, index included."""
    df = df.reset_index()
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in df.itertuples(False)]
    head = [str(c) for c in df.columns]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in cells])


def summary(df: pd.DataFrame, by: Iterable[str] = ("agent",)) -> pd.DataFrame:
    g = df.groupby(list(by))
    return pd.DataFrame({"ratio": g["ratio"].mean(), "success": g["success"].mean(),
                         "invalid_rate": g["invalid_rate"].mean(), "entities": g["entities"].mean(),
                         "seconds": g["seconds"].mean(), "n": g.size()}).round(3)


def timing(df: pd.DataFrame) -> pd.DataFrame:
    """Per agent: success rate, mean ratio, and median / p90 wall and CPU seconds per build."""
    g = df.groupby("agent")
    q = {f"{k}_{n}": g[c].quantile(p) for c, k in (("seconds", "s"), ("cpu_seconds", "cpu_s"))
         for n, p in (("median", 0.5), ("p90", 0.9))}
    out = pd.DataFrame({"success": g["success"].mean(), "ratio": g["ratio"].mean(), **q, "n": g.size()})
    return out.round(3)


def winners(b: pd.DataFrame) -> str:
    """Which candidate won a build agent's rows, and how often."""
    return "Winning candidate: " + ", ".join(f"{m}: {n}" for m, n in b.method.value_counts().items())


def build_tables(b: pd.DataFrame) -> list[str]:
    """Markdown lines on the build agent's rows: success, ratio and time by family and by level,
    success by family x level, which candidate won, how many exports draftsman loaded."""
    def by(col):
        g = b.groupby(col)
        return pd.DataFrame({"success": g["success"].mean(), "ratio": g["ratio"].mean(),
                             "s_median": g["seconds"].median(), "s_p90": g["seconds"].quantile(0.9),
                             "cpu_median": g["cpu_seconds"].median(),
                             "cpu_p90": g["cpu_seconds"].quantile(0.9),
                             "n": g.size()}).round(3)
    ok = int(b.export_ok.eq(True).sum())
    return ["## `factorion build` (the build agent)", "", "### By family", "", markdown(by("family")), "",
            "### By level", "", markdown(by("level")), "", "### Success rate, family x level", "",
            markdown(b.groupby(["family", "level"])["success"].mean().unstack("level").round(3)), "",
            winners(b) + f". Exported strings factorio-draftsman loads: {ok}/{len(b)}.", ""]


def family_level_tables(df: pd.DataFrame) -> list[str]:
    """Markdown lines: success by family x level for each agent that is not random (the policy
    alone greedy and best of K, the planner, factorion build), procedural tasks and mined windows."""
    lines = ["## Success rate by family x level, each agent", "",
             "NAME: the policy's greedy roll-out; NAME@K: the best state of its greedy and K sampled "
             "roll-outs (the policy alone, no planner); mined: level 3 = 1 entity removed, 4 = up to 5, "
             "5 = the whole window.", ""]
    for agent in [a for a in df.agent.unique() if a != "random"]:
        sub = df[df.agent == agent]
        t = sub.groupby(["family", "level"])["success"].mean().unstack("level")
        t.loc["all"] = sub.groupby("level")["success"].mean()
        lines += [f"### {agent}", "", markdown(t.round(3)), ""]
    return lines


def mined_table(df: pd.DataFrame) -> list[str]:
    """Markdown lines on the held-out mined windows: by agent x group (N1, N5, L5), the mean share
    of the removed throughput restored, success and the mean ratio."""
    m = df[df.family == "mined"]
    if m.empty:
        return []
    g = m.groupby(["agent", "group"])
    t = pd.DataFrame({"restored": g["restored"].mean(), "success": g["success"].mean(),
                      "ratio": g["ratio"].mean(), "n": g.size()}).round(3)
    return ["## Held-out mined windows", "",
            "restored = (throughput - start) / (reference - start), clipped to [0, 1]: the share of the "
            "removed throughput a build restores. N1: 1 entity removed; N5: up to 5; L5: every modelled "
            "entity removed.", "", markdown(t), ""]


def bar_chart(df: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pivot = df.groupby(["family", "agent"])["ratio"].mean().unstack("agent")
    ax = pivot.clip(upper=3).plot.bar(figsize=(max(6, 1.2 * len(pivot)), 4), rot=30)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_ylabel("throughput / reference (mean, clipped at 3)")
    ax.set_title("Factorion benchmark: mean throughput ratio per family")
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close()


def best_worst(df: pd.DataFrame, builds: dict, path: Path, agents: Iterable[str]) -> None:
    from factorion.core.render import render_grid_png
    worlds, titles = [], []
    for a in agents:
        sub = df[df.agent == a].sort_values("ratio")
        if sub.empty:
            continue
        for label, r in (("best", sub.iloc[-1]), ("worst", sub.iloc[0])):
            worlds.append(builds[(a, r.task)])
            titles.append(f"{a} {label}: {r.task} {r.ratio:.2f}")
    if worlds:
        render_grid_png(worlds, path, cols=2, titles=titles)


def write_report(df: pd.DataFrame, builds: dict, cfg: EvalConfig) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.csv.tmp"
    df.to_csv(tmp, index=False)
    tmp.replace(out / "results.csv")
    bar_chart(df, out / "bars.png")
    learned = [a for a in df.agent.unique() if a not in ("random",)]
    best_worst(df, builds, out / "best_worst.png", learned)
    n_mined = int((df.family == "mined").sum() // max(1, df.agent.nunique()))
    lines = ["# Factorion evaluation", "",
             f"Sizes {list(cfg.sizes)}, levels {list(cfg.levels)}, {cfg.n_seeds} seeds per family/level "
             f"(seeds from {BENCH_SEED0}); mined test windows: {n_mined}.",
             f"Success = throughput >= {SUCCESS} x reference. Ratios above 1 mean a build beat the "
             "reference construction.",
             f"Planner budget {cfg.planner_budget_s:g} s; env agents stop after {cfg.max_steps} steps"
             + (f"; build: {cfg.build_budget_s:g} s budget, policy "
                f"{cfg.build_checkpoint or 'none (planner only)'}, {cfg.build_samples} samples a round"
                if "build" in set(df.agent) else "") + ".",
             "", "## By agent", "", markdown(summary(df)), "",
             "## Success and time per build", "",
             "Wall seconds per build (median, p90) and CPU seconds of this process (the machine may "
             "be shared).", "", markdown(timing(df)), ""]
    if "build" in set(df.agent):
        lines += build_tables(df[df.agent == "build"])
    if "planner+policy" in set(df.agent):
        pp = df[df.agent == "planner+policy"]
        lines += ["## `planner+policy` (the build agent without its scale-out search)", "",
                  winners(pp) + ".", ""]
    lines += family_level_tables(df) + mined_table(df)
    lines += ["## Mean ratio by agent and level", "",
              markdown(summary(df, ("agent", "level"))["ratio"].unstack("agent")), "",
              "## Success rate by agent and level", "",
              markdown(summary(df, ("agent", "level"))["success"].unstack("agent")), "",
              "## Mean ratio by agent and family", "",
              markdown(summary(df, ("agent", "family"))["ratio"].unstack("agent")), "",
              "## Success rate by agent and family", "",
              markdown(summary(df, ("agent", "family"))["success"].unstack("agent")), "",
              "![mean ratio per family](bars.png)", "", "![best and worst builds](best_worst.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"


def players_section(cfg: EvalConfig, report: Path) -> None:
    """Append the whole player-made factories section (:mod:`factorion.players_bench`) to ``report``."""
    if cfg.players <= 0:
        return
    from factorion import players_bench as PB
    fs = PB.held_out(cfg.corpus, cfg.players)
    df, builds = PB.run_players(fs, cfg.players_budget_s, cfg.build_checkpoint)
    lines = PB.report_lines(df, builds, Path(cfg.out), cfg.players_budget_s)
    report.write_text(report.read_text() + "\n" + "\n".join(lines))
    if not df.empty:
        print(PB.summarise(df).to_string())


def resolve_build_checkpoint(arg: str | None, ckpts: dict[str, str]) -> str | None:
    if arg is not None:
        return None if arg.lower() == "none" else arg
    for name in ("ppo", "bc"):
        if name in ckpts and checkpoint_available(ckpts[name]):
            return ckpts[name]
    return next((p for p in ckpts.values() if checkpoint_available(p)), None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m factorion.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                   help="a policy to evaluate (repeatable), e.g. bc=models/bc/last.ckpt; default: "
                   "bc and ppo from make pretrain / make finetune when they exist; 'none': no policy agents")
    p.add_argument("--sizes", default="11,16")
    p.add_argument("--levels", default="1,2,3,4,5")
    p.add_argument("--families", default=None, help="comma list (default: all)")
    p.add_argument("--n-seeds", type=int, default=3)
    p.add_argument("--n-mined", type=int, default=10)
    p.add_argument("--data", default="data/out")
    p.add_argument("--agents", default="random,planner",
                   help="baselines to run: a comma list of random, planner, build, planner+policy (build "
                        "without its scale-out search), or none")
    p.add_argument("--planner-budget", type=float, default=2.0)
    p.add_argument("--build-budget", type=float, default=10.0, metavar="S",
                   help="seconds per task for the build agent (factorion build's search)")
    p.add_argument("--build-checkpoint", default=None, metavar="PATH",
                   help="the build agent's policy (default: the ppo, else the bc checkpoint evaluated; "
                   "'none': the planner only)")
    p.add_argument("--build-samples", type=int, default=8, help="policy roll-outs per sampling round")
    p.add_argument("--policy-samples", type=int, default=16, metavar="K",
                   help="each policy also runs as NAME@K: best of its greedy and K sampled roll-outs "
                   "(0: off)")
    p.add_argument("--policy-temperature", type=float, default=None, metavar="T",
                   help="sampling temperature of the NAME@K roll-outs (default: 0.7, "
                   "policy.rollout.SAMPLE_TEMPERATURE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=48, help="episode limit for the env agents")
    p.add_argument("--out", default="reports/eval")
    p.add_argument("--players", type=int, default=8, metavar="N",
                   help="held-out whole player-made factories to build (0: none)")
    p.add_argument("--players-budget", type=float, default=30.0, metavar="S",
                   help="seconds per player factory")
    p.add_argument("--corpus", default="../shared/blueprints",
                   help="blueprint corpus of the player factories")
    a = p.parse_args(argv)
    unknown = [x for x in a.agents.split(",") if x and x not in AGENTS + ("none",)]
    if unknown:
        p.error(f"--agents: unknown {', '.join(unknown)} (known: {', '.join(AGENTS)}, none)")
    ckpts = {}
    if not a.checkpoint:  # the default outputs of make pretrain / make finetune, when present
            a.checkpoint = [f"{n}={p}" for n, p in DEFAULT_CHECKPOINTS.items() if checkpoint_available(p)]
    for c in a.checkpoint:
        if c.lower() == "none":  # no policy agents (the build agent may still have one)
            continue
        name, sep, path = c.partition("=")
        if not sep:
            p.error(f"--checkpoint wants NAME=PATH, got {c!r}")
        ckpts[name] = path
    cfg = EvalConfig(sizes=tuple(int(s) for s in a.sizes.split(",")),
                     levels=tuple(int(s) for s in a.levels.split(",")),
                     families=tuple(a.families.split(",")) if a.families else None, n_seeds=a.n_seeds,
                     data=a.data, n_mined=a.n_mined, checkpoints=ckpts,
                     agents=tuple(x for x in a.agents.split(",") if x and x != "none"),
                     planner_budget_s=a.planner_budget, max_steps=a.max_steps, out=a.out,
                     build_budget_s=a.build_budget, build_samples=a.build_samples, seed=a.seed,
                     policy_samples=a.policy_samples, policy_temperature=a.policy_temperature,
                     build_checkpoint=resolve_build_checkpoint(a.build_checkpoint, ckpts),
                     players=a.players, players_budget_s=a.players_budget, corpus=a.corpus)
    df, builds = evaluate(cfg)
    path = write_report(df, builds, cfg)
    players_section(cfg, path)
    print(summary(df).to_string())
    print(f"\nreport: {path}\nresults: {Path(cfg.out) / 'results.csv'}\npictures: "
          f"{Path(cfg.out) / 'bars.png'}, {Path(cfg.out) / 'best_worst.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

