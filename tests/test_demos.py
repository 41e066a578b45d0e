"""``make demos`` (pipeline.demos): planner demonstrations in the dataset schema that rebuild their
task, and ``make pretrain``'s mixing of mined rows and demonstrations (bc.MixedEpisodes)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from factorion.core.world import World
from factorion.env import planner
from factorion.sim import throughput
from factorion.tasks.splits import TEST_SEED0
from factorion.train import bc
from pipeline import demos as D
from pipeline import write as W


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos")
    stats = D.main(["--out", str(out), "--families", "belt", "smelting", "--levels", "3", "5",
                    "--sizes", "11", "--per-cell", "2", "--val-per-cell", "1", "--no-progress"])
    assert stats["rows"] == stats["tasks"] == 12
    return out


def _world(buf, shape) -> World:
    w = World(shape[1], shape[2])
    w.grid = np.frombuffer(buf, "<i2").reshape(tuple(shape)).astype(np.int16)
    return w


def test_demo_rows_follow_the_schema_and_rebuild_their_task(demo_dir):
    part = next((demo_dir / "examples" / "train").glob("*.parquet"))
    assert pq.read_schema(part).equals(W.EXAMPLE_SCHEMA, check_metadata=False)
    ex = pd.read_parquet(demo_dir / "examples")
    assert set(ex.split) == {"train", "val"} and set(ex.level) == {3, 5}
    assert ex.author.str.startswith(("factorion.env.planner.plan", "factorion.tasks.solved_factory")).all()
    assert (ex[ex.level == 5].author.str.startswith("factorion.env.planner.plan")).any()
    for _, row in ex.iterrows():
        start = _world(row.start_grid, row.grid_shape)
        acts = []
        for a in row.actions:
            if a["op"] == "remove":
                acts.append(("remove", a["y"], a["x"]))
            else:
                acts.append(("place", a["name"], a["y"], a["x"], a["direction"], a["recipe"], a["io"]))
        w = start.copy()
        for a in acts:
            if a[0] == "remove":
                w.remove(a[1], a[2])
            else:
                w.place(a[1], a[2], a[3], direction=a[4], recipe=a[5], io=a[6])
        assert (w.grid == _world(row.grid, row.grid_shape).grid).all()
        assert throughput(w) >= planner.EXPERT_SUCCESS * row.reference_throughput


def test_demo_seeds_are_disjoint_from_the_benchmark_and_test_seeds():
    specs = D.task_specs(("belt", "tree2"), (1, 5), (11, 16), 50, 5)
    seeds = [s[3] for s in specs]
    assert len(set(seeds)) == len(seeds)
    assert all(s >= D.TRAIN_SEED0 for s in seeds) and all(s < TEST_SEED0 for s in seeds)
    assert not {s for s in seeds if 20_000 <= s < 20_000 + 10_000}  # make evaluate's held-out seeds


def test_same_arguments_same_rows():
    a = D.demo_row("splitter", 5, 11, D.TRAIN_SEED0 + 7, "train", budget_s=None)
    b = D.demo_row("splitter", 5, 11, D.TRAIN_SEED0 + 7, "train", budget_s=None)
    assert a is not None and a["actions"] == b["actions"] and a["start_grid"] == b["start_grid"]


def test_mixed_episodes_draw_in_proportion(demo_dir):
    class Tagged(bc.ParquetEpisodes):  # a stream of labelled dummy episodes
        def __init__(self, tag, n):
            super().__init__(demo_dir, shuffle=False)
            self.tag, self.n = tag, n

        def episodes(self, shard, n_shards, rng):
            for i in range(self.n):
                yield {"tag": self.tag, "i": i}

    mix = bc.MixedEpisodes([Tagged("mined", 300), Tagged("demo", 40)], [0.75, 0.25])
    got = list(mix.episodes(0, 1, random.Random(0)))
    c = Counter(e["tag"] for e in got)
    assert c["mined"] >= 300 and c["demo"] >= 40  # every source ran out at least once
    share = c["demo"] / len(got)
    assert 0.18 < share < 0.32, c
    with pytest.raises(ValueError, match="weights"):
        bc.MixedEpisodes([Tagged("a", 1)], [0.5, 0.5])


def test_datamodule_mixes_mined_rows_and_demos(demo_dir):
    dm = bc.BCDataModule(str(demo_dir), demos=str(demo_dir), demo_share=0.3, batch_size=4, num_workers=0)
    assert "demos:" in dm.source and "30%" in dm.source
    dm.setup()
    assert isinstance(dm.train_set, bc.MixedEpisodes)
    batch = next(iter(dm.train_dataloader()))
    assert batch["action"].shape[0] == 4
    only = bc.BCDataModule(str(demo_dir / "none"), demos=str(demo_dir), batch_size=4, num_workers=0)
    assert only.source == f"parquet:{demo_dir}"  # demonstrations alone when there are no mined rows
