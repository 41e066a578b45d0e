"""Behaviour cloning: expert episodes -> samples that match the env, data streams, the Lightning
module, a tiny training run whose checkpoint loads and acts, and the checkpoint notebook."""

from __future__ import annotations

import importlib
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from factorion.core.world import Entity, World
from factorion.env.factorio_env import FactorioEnv
from factorion.env.masks import OP_FINISH, OP_PLACE, OP_REMOVE, STAGES
from factorion.policy.adapters import masks_to_tensors
from factorion.policy.model import Policy, PolicyConfig
from factorion.tasks import splits
from factorion.train import bc, bc_module, bc_samples
from factorion.train.bc_samples import encode_action

ROOT = Path(__file__).resolve().parents[1]


def _have(*mods: str) -> bool:
    try:
        for m in mods:
            importlib.import_module(m)
    except ImportError:
        return False
    return True


HAVE_ALL = _have("factorion.sim", "factorion.tasks", "factorion.env.planner")
needs_all = pytest.mark.skipif(not HAVE_ALL, reason="factorion.sim / tasks / planner not there yet")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def line_episode(size: int = 7, y: int = 3):
    """A source-to-sink belt row with the middle missing, and the env actions that fill it."""
    w = World(size, size)
    w.place("source", y, 0, item="iron-plate")
    w.place("sink", y, size - 1, item="iron-plate")
    w.place("transport-belt", y, 1, direction=1)
    acts = [(OP_PLACE, y * size + x, 0, 1, 0) for x in range(2, size - 1)]
    return w, acts


# ---------------------------------------------------------------------------------- encoding
def test_encode_action_formats():
    layout = bc_samples.layout_for(9, 9)
    recipes = ["iron-gear-wheel", "electronic-circuit"]
    asm = Entity("assembling-machine-2", 2, 3, recipe="electronic-circuit")
    ug = Entity("fast-underground-belt", 4, 5, 2, io=2)
    a1 = encode_action(("place", asm), layout, recipes)
    a2 = encode_action(
        {
            "op": "place",
            "name": "assembling-machine-2",
            "y": 2,
            "x": 3,
            "direction": 0,
            "recipe": "electronic-circuit",
            "io": 0,
            "item": None,
        },
        layout,
        recipes,
    )
    assert (
        a1.tolist()
        == a2.tolist()
        == [OP_PLACE, 2 * 9 + 3, layout.entities.index("assembling-machine-2"), 0, 1]
    )
    assert encode_action(("place", ug), layout, recipes).tolist() == [
        OP_PLACE,
        4 * 9 + 5,
        layout.entities.index("fast-underground-belt"),
        2,
        1,
    ]
    assert encode_action(("remove", 1, 2), layout, recipes).tolist() == [OP_REMOVE, 11, 0, 0, 0]
    assert encode_action(
        {"op": "remove", "name": "transport-belt", "y": 1, "x": 2}, layout, recipes
    ).tolist() == [OP_REMOVE, 11, 0, 0, 0]
    assert encode_action(("finish",), layout, recipes).tolist() == [OP_FINISH, 0, 0, 0, 0]
    # env actions are canonicalised (ignored fields -> 0)
    assert encode_action((OP_REMOVE, 5, 3, 2, 1), layout, recipes).tolist() == [OP_REMOVE, 5, 0, 0, 0]
    # what the env cannot express
    chest = encode_action(("place", Entity("steel-chest", 0, 0)), layout, recipes)
    assert chest[2] == layout.entities.index("wooden-chest")
    assert (
        encode_action(("place", Entity("assembling-machine-1", 0, 0, recipe="pipe")), layout, recipes)
        is None
    )


def test_expand_episode_without_simulator():
    w, acts = line_episode()
    samples = bc_samples.expand_episode(w, acts, [], ["iron-plate"], 15.0, throughput=lambda world: 0.0)
    assert len(samples) == len(acts) + 1  # + the finish
    assert samples[-1]["action"].tolist() == [OP_FINISH, 0, 0, 0, 0]
    for k, s in enumerate(samples):
        assert s["step"][0] == pytest.approx(k / (2 * 7 * 7))
        m = masks_to_tensors({key: s["m_" + key][None] for key in bc_samples.MASK_KEYS})
        assert m["op"][0, s["action"][0]]
    # an invalid expert action (occupied cell) is skipped, not fatal
    bad = [(OP_PLACE, 3 * 7 + 1, 0, 1, 0), *acts]
    again = bc_samples.expand_episode(w, bad, [], ["iron-plate"], 15.0, throughput=lambda world: 0.0)
    assert len(again) == len(samples)


def test_bucket_buffer_single_size_batches():
    rng = random.Random(0)
    buf = bc_samples.BucketBuffer(batch_size=8, capacity=20, rng=rng)
    samples = []
    for i in range(50):
        size = (5, 7, 11)[i % 3]
        w, acts = line_episode(size, y=1)
        s = bc_samples.expand_episode(w, acts[:1], [], ["iron-plate"], 1.0, throughput=lambda world: 0.0)[0]
        s["value_target"] = np.float32(i)  # an id
        samples.append(s)
    batches = list(buf.add(samples)) + list(buf.drain())
    ids = []
    for b in batches:
        assert b["action"].shape[0] <= 8
        assert len({tuple(b["obs"]["grid"].shape[2:])}) == 1
        ids += b["value_target"].int().tolist()
    assert sorted(ids) == list(range(50))


def test_procedural_seeds_shard_disjointly(monkeypatch):
    seen = {}

    def fake(seeds, *a, **k):
        seen.setdefault("s", []).append(list(seeds))
        return iter(())

    monkeypatch.setattr(bc, "procedural_tasks", fake)
    ds = bc.ProceduralEpisodes(10, seed0=100)
    for shard in range(3):
        list(ds.episodes(shard, 3, random.Random(0)))
    first = sum(seen["s"], [])
    assert sorted(first) == list(range(100, 110))  # the shards cover the epoch's seeds once
    ds.set_epoch(1)
    list(ds.episodes(0, 1, random.Random(0)))
    assert set(seen["s"][-1]).isdisjoint(first)  # a fresh epoch draws fresh tasks
    assert max(seen["s"][-1]) < splits.VAL_SEED0


def test_overfit_one_batch():
    """The loss and the whole-action accuracy move the right way on a handful of samples."""
    torch.manual_seed(0)
    samples = []
    for size, y in ((7, 3), (7, 2), (7, 5)):
        w, acts = line_episode(size, y)
        samples += bc_samples.expand_episode(w, acts, [], ["iron-plate"], 15.0, throughput=lambda world: 0.0)
    batch = bc_samples.collate(samples)
    module = bc_module.BCModule(preset="tiny")
    opt = torch.optim.AdamW(module.policy.parameters(), lr=3e-3)
    first = float(module._evaluate(batch)[0].detach())
    for _ in range(100):
        loss, m = module._evaluate(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, m = module._evaluate(batch, unmasked=True)
    assert float(m["loss"][0]) < 0.1 * first
    assert float(m["acc_action"][0]) > 0.9
    assert 0.0 <= float(m["valid_unmasked"][0]) <= 1.0


# ---------------------------------------------------------------------------------- with the real task stack
@needs_all
def test_samples_match_the_env():
    """Replaying the planner in FactorioEnv shows the same observations and masks as the
    samples, and the value target of step 0 is the episode's return."""
    from factorion import tasks

    for family, seed in (("belt", 1), ("assembler1", 2), ("tree2", 3)):
        task = tasks.make_task(family, 4, size=11, seed=seed)
        ep = bc.task_episode(task)
        samples = bc_samples.expand_episode(**ep)
        assert len(samples) == len(ep["actions"]) + 1, family  # no expert action dropped
        env = FactorioEnv(size=11)
        obs, info = env.reset(options={"task": task})
        ret = 0.0
        for s in samples:
            for k in ("grid", "task", "recipes"):
                assert np.array_equal(obs[k], s[k]), (family, k)
            assert obs["step"][0] == pytest.approx(s["step"][0])
            assert obs["ratio"][0] == pytest.approx(s["ratio"][0], rel=1e-5, abs=1e-6)
            m = env.action_masks()
            for key in bc_samples.MASK_KEYS:
                assert np.array_equal(np.asarray(getattr(m, key))[0], s["m_" + key]), (family, key)
            assert m.valid(s["action"][None]).all()
            obs, r, term, trunc, info = env.step(s["action"])
            ret += r
        assert term and not info["invalid"]
        assert info["ratio"] == pytest.approx(1.0, abs=1e-6)  # the expert restores the reference
        assert samples[0]["value_target"] == pytest.approx(ret, abs=1e-4)


@needs_all
def test_datamodule_procedural_and_rollout():
    dm = bc.BCDataModule(data=None, batch_size=8, num_workers=0, train_tasks=6, val_tasks=3, rollout_tasks=1)
    dm.setup("fit")
    assert dm.source == "procedural"
    batches = list(dm.train_dataloader())
    assert batches and all(b["action"].shape[1] == 5 for b in batches)
    assert list(dm.val_dataloader())
    (task,) = dm.rollout_tasks()
    policy = Policy(PolicyConfig.preset("tiny"))
    r = bc_module.rollout(policy, task, max_steps=5)
    assert r["steps"] <= 5 and 0.0 <= r["restored"] <= 1.0


def _write_examples(path: Path, n_train: int = 6, n_val: int = 3) -> None:
    """A few rows in the `make data` example schema, built from procedural tasks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from factorion import tasks
    from pipeline.write import EXAMPLE_SCHEMA

    def ent(e: Entity) -> dict:
        return {
            "name": e.name,
            "y": e.y,
            "x": e.x,
            "direction": e.direction,
            "recipe": e.recipe,
            "io": e.io,
            "item": e.item,
        }

    for split, n, seed0 in (("train", n_train, 0), ("val", n_val, 100)):
        rows = []
        for i in range(n):
            t = tasks.make_task(tasks.FAMILIES[i % len(tasks.FAMILIES)], 3 + i % 2, size=11, seed=seed0 + i)
            acts = bc_samples.expert_actions(t)
            rows.append(
                {
                    "example_id": f"{split}{i}",
                    "bp_id": f"bp{i}",
                    "split": split,
                    "grid_shape": list(t.solution.grid.shape),
                    "grid": t.solution.grid.astype("<i2").tobytes(),
                    "start_grid": t.world.grid.astype("<i2").tobytes(),
                    "level": t.level,
                    "n_removed": len(t.removed),
                    "targets": [ent(e) for e in t.removed],
                    "actions": [
                        {"op": "place", **ent(a[1])}
                        if a[0] == "place"
                        else {
                            "op": "remove",
                            "name": None,
                            "y": a[1],
                            "x": a[2],
                            "direction": 0,
                            "recipe": None,
                            "io": 0,
                            "item": None,
                        }
                        for a in acts
                    ],
                    "reference_throughput": t.reference if i % 3 else float("nan"),
                    "items": sorted(t.items),
                    "recipes": list(t.recipes),
                }
            )
        out = path / "examples" / split
        out.mkdir(parents=True)
        pq.write_table(
            pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA), out / "part-00000.parquet", row_group_size=2
        )
    pq.write_table(pa.table({"x": [1]}), path / "blueprints.parquet")  # not an example table


@needs_all
def test_parquet_stream(tmp_path):
    pytest.importorskip("pipeline.write")
    _write_examples(tmp_path)
    dm = bc.BCDataModule(data=str(tmp_path), batch_size=4, num_workers=0, rollout_tasks=2, shuffle_buffer=8)
    dm.setup("fit")
    assert dm.source.startswith("parquet")
    train = list(dm.train_dataloader())
    val = list(dm.val_dataloader())
    n_train = sum(int(b["action"].shape[0]) for b in train)
    assert n_train >= 6 * 2 and val
    assert all(torch.isfinite(b["value_target"]).all() for b in train)  # NaN reference -> expert's own
    tasks_ = dm.rollout_tasks()
    assert len(tasks_) == 2 and all(t.reference > 0 for t in tasks_)


# ---------------------------------------------------------------------------------- training entry point
def test_training_on_parquet_without_simulator(tmp_path):
    """The entry point trains on `make data` Parquet (here: belt-row episodes written in its
    schema) even without the simulator; the checkpoint loads and acts under the masks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    write = pytest.importorskip("pipeline.write")
    from factorion.train import pretrain as train_bc

    data = tmp_path / "data"
    for split, ys in (("train", (1, 2, 3, 4, 5)), ("val", (3,))):
        rows = []
        for y in ys:
            w, acts = line_episode(7, y)
            full = w.copy()
            for a in acts:
                full.place("transport-belt", y, a[1] % 7, direction=1)
            rows.append(
                {
                    "example_id": f"{split}{y}",
                    "bp_id": f"b{y}",
                    "split": split,
                    "grid_shape": [6, 7, 7],
                    "grid": full.grid.astype("<i2").tobytes(),
                    "start_grid": w.grid.astype("<i2").tobytes(),
                    "level": 4,
                    "n_removed": len(acts),
                    "actions": [
                        {
                            "op": "place",
                            "name": "transport-belt",
                            "y": y,
                            "x": a[1] % 7,
                            "direction": 1,
                            "recipe": None,
                            "io": 0,
                            "item": None,
                        }
                        for a in acts
                    ],
                    "reference_throughput": 15.0,
                    "items": ["iron-plate"],
                    "recipes": [],
                }
            )
        (data / "examples" / split).mkdir(parents=True)
        pq.write_table(
            pa.Table.from_pylist(rows, schema=write.EXAMPLE_SCHEMA),
            data / "examples" / split / "part-00000.parquet",
        )
    out = tmp_path / "bc"
    res = train_bc.main(
        [
            "--data",
            str(data),
            "--out",
            str(out),
            "--preset",
            "tiny",
            "--max-steps",
            "3",
            "--batch-size",
            "8",
            "--val-every",
            "3",
            "--limit-val-batches",
            "1",
            "--workers",
            "0",
            "--rollout-tasks",
            "0",
            "--logger",
            "csv",
            "--no-progress",
            "--warmup-steps",
            "1",
        ]
    )
    assert res["steps"] == 3 and "val/loss" in res["metrics"]
    policy = Policy.load_from_checkpoint(out / "last.ckpt")
    w, _ = line_episode(7, 2)
    layout = bc_samples.layout_for(7, 7)
    masks = bc_samples.build_masks(layout, w.grid[None], [], batched=False)
    s = bc_samples.expand_episode(w, [], [], ["iron-plate"], 15.0, throughput=lambda world: 0.0)[0]
    obs = {k: s[k] for k in ("grid", "task", "recipes", "step", "ratio")}
    for _ in range(20):
        a = policy.act(obs, masks)
        assert a.shape == (5,) and masks.valid(a[None]).all()


@pytest.fixture(scope="module")
def smoke_ckpt(tmp_path_factory):
    if not HAVE_ALL:
        pytest.skip("factorion.sim / tasks / planner not there yet")
    from factorion.train import pretrain as train_bc

    out = tmp_path_factory.mktemp("bc")
    res = train_bc.main(["--smoke", "--out", str(out), "--logger", "csv", "--no-progress"])
    return out, res


def test_smoke_training_checkpoint_loads_and_acts(smoke_ckpt):
    from factorion import tasks

    out, res = smoke_ckpt
    assert res["steps"] == 6
    assert (out / "last.ckpt").exists() and (out / "best.ckpt").exists()
    assert "val/loss" in res["metrics"] and "val/restored" in res["metrics"]
    for name in ("last.ckpt", "best.ckpt"):
        policy = Policy.load_from_checkpoint(out / name)
        assert policy.config == PolicyConfig.preset("tiny")
    task = tasks.make_task("belt", 3, size=11, seed=splits.TEST_SEED0)
    env = FactorioEnv(size=11)
    obs, _ = env.reset(options={"task": task})
    for _ in range(3):
        a = policy.act(obs, env.action_masks())
        assert a.shape == (len(STAGES),) and env.action_masks().valid(a[None]).all()
        obs, _, term, trunc, info = env.step(a)
        assert not info["invalid"]
        if term or trunc:
            break


def test_resume_continues_from_last(smoke_ckpt, tmp_path):
    import shutil

    from factorion.train import pretrain as train_bc

    out, _ = smoke_ckpt
    shutil.copy(out / "last.ckpt", tmp_path / "last.ckpt")
    res = train_bc.main(
        [
            "--smoke",
            "--out",
            str(tmp_path),
            "--logger",
            "csv",
            "--no-progress",
            "--resume",
            "--max-steps",
            "8",
        ]
    )
    assert res["steps"] == 8


def _run_notebook(ckpt: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(ROOT / "notebooks" / "load_checkpoint.ipynb", as_version=4)
    env = {"FACTORION_CKPT": str(ckpt)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nbclient.NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "parameters" in text and "restored" in text
    last = nb.cells[-1]["outputs"][0]["text"].strip()
    assert last.startswith("0") and len(last) > 50  # a blueprint exchange string
    assert any(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def test_notebook_runs_on_tiny_checkpoint(smoke_ckpt):
    out, _ = smoke_ckpt
    _run_notebook(out / "last.ckpt")


def test_notebook_loads_the_shipped_policy():
    shipped = ROOT / "factorion" / "policy" / "default.pt"
    if not shipped.exists():
        pytest.skip("no shipped policy (make policy)")
    _run_notebook(shipped)


@needs_all
def test_parquet_level_filter(tmp_path):
    """``data_levels`` (make pretrain --data-levels) reads only the mined rows of those levels."""
    pytest.importorskip("pipeline.write")
    _write_examples(tmp_path)  # rows alternate levels 3 and 4
    ids = {}
    for levels in (None, (3,), (4,)):
        ds_ = bc.ParquetEpisodes(tmp_path, "train", batch_size=4, shuffle=False, levels=levels)
        ids[levels] = [len(ep["actions"]) for ep in ds_.episodes(0, 1, __import__("random").Random(0))]
    assert len(ids[(3,)]) + len(ids[(4,)]) == len(ids[None]) and ids[(3,)] and ids[(4,)]
    assert all(n == 1 for n in ids[(3,)])  # level 3: one entity removed
    dm = bc.BCDataModule(data=str(tmp_path), batch_size=4, num_workers=0, shuffle_buffer=8, data_levels=(3,))
    dm.setup("fit")
    assert dm.train_set.levels == (3,)


def test_a_family_named_twice_comes_twice_as_often():
    """--families weights by repetition (make policy's second stage weights DAgger to the failing
    families)."""
    from collections import Counter

    from factorion.train.bc import procedural_tasks
    got = Counter(t.family for t in procedural_tasks(range(600), (3,), (7,), ("belt", "belt", "splitter")))
    assert set(got) == {"belt", "splitter"}
    assert 1.6 < got["belt"] / got["splitter"] < 2.5
