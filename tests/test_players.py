"""Whole player-made factories as level-5 tasks (factorion.tasks.players, factorion.players_bench)."""

from __future__ import annotations

from pathlib import Path

import pytest

from factorion import tasks as T
from factorion.core import blueprint_world as BW
from factorion.core.world import SINK, SOURCE, Entity, World
from factorion.tasks import players as P
from factorion.tasks import scale as S

sim = pytest.importorskip("factorion.sim")
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "blueprints"


def _player_gears() -> World:
    """A player's gear factory: a plate belt enters on the left edge, two machines, a gear belt
    leaves on the right edge (no chests, no infinity chests)."""
    d = S.Design("iron-gear-wheel", ("iron-plate",), "iron-gear-wheel", "assembling-machine-2",
                 "fast-inserter", 1, 2, "one-side")
    w = World(7, 8)
    for e in S.design_entities(d, 0, 1):
        w.place(e)
    w.place(Entity("fast-transport-belt", 0, 0, 1))  # the plate belt from the edge
    for x in range(1, 8):  # the gear belt runs to the right edge
        if w.entity_at(6, x) is None:
            w.place(Entity("fast-transport-belt", 6, x, 1))
    return w


def test_ports_are_read_from_edge_belts():
    bp = BW.to_blueprint(_player_gears())["blueprint"]
    got = P.player_task(bp)
    assert got is not None
    task, machines = got
    assert machines == 2 and task.level == 5 and task.family == "player"
    ents = task.world.entities()
    assert {(e.name, e.item) for e in ents} == {(SOURCE, "iron-plate"), (SINK, "iron-gear-wheel")}
    src = next(e for e in ents if e.name == SOURCE)
    snk = next(e for e in ents if e.name == SINK)
    assert (src.y, src.x) == (1, 0) and (snk.y, snk.x) == (7, 9)  # in the padding
    # two assembling-machine-2 at 1.5 gears/s each (two fast inserters give 4.6 plates/s)
    assert task.reference == pytest.approx(3.0)
    assert sim.throughput(task.solution) == pytest.approx(task.reference)


def test_a_factory_without_readable_ports_is_left_out():
    w = _player_gears()
    w.remove(6, 7)  # the gear belt no longer reaches the edge
    w.remove(0, 0)
    assert P.player_task(BW.to_blueprint(w)["blueprint"]) is None


def test_split_is_by_blueprint_hash():
    ids = [f"{i:016x}" for i in range(2000)]
    splits = [P.split_of(i) for i in ids]
    assert splits == [P.split_of(i) for i in ids]
    assert 0.05 < splits.count("test") / len(ids) < 0.15
    a = [{"name": "transport-belt", "position": {"x": 0.5, "y": 0.5}}]
    b = [{"name": "transport-belt", "position": {"x": 10.5, "y": 3.5}}]
    assert P.blueprint_id(a) == P.blueprint_id(b)  # where it sits does not count


@pytest.mark.skipif(not CORPUS.exists(), reason="the blueprint corpus is not here")
def test_corpus_factories_are_level5_tasks():
    fs = list(P.player_factories([CORPUS], split=None, limit=2))
    assert fs
    for f in fs:
        assert f.task.reference > 0 and max(f.task.world.shape) <= 32
        assert {e.name for e in f.task.world.entities()} <= set(T.FIXED)


def test_players_report(tmp_path):
    from factorion import players_bench as PB
    bp = BW.to_blueprint(_player_gears())["blueprint"]
    task, machines = P.player_task(bp)
    f = P.PlayerFactory("x", "gears#0", "test", task, machines)
    df, builds = PB.run_players([f], budget_s=3.0, progress=False)
    assert df.ratio.iloc[0] > 0
    lines = PB.report_lines(df, builds, tmp_path, 3.0)
    assert (tmp_path / "players.png").exists() and (tmp_path / "players.csv").exists()
    assert any("By machine count" in x for x in lines)
