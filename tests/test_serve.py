"""factorion serve's JSON API: measuring, build jobs, and a 4xx with a reason for every bad input."""

from __future__ import annotations

import base64
import io
import socket
import subprocess
import sys
import time

import pytest
import requests
from fastapi.testclient import TestClient
from PIL import Image

from factorion.cli import main
from factorion.core import blueprint_world as BW
from factorion.core.blueprint import encode, load_blueprints, make_blueprint
from factorion.core.world import SINK, SOURCE, World
from factorion.report import throughput_text
from factorion.serve.app import MAX_BODY, create_app
from factorion.serve.tasks import MAX_TEXT
from factorion.sim import throughput

SOURCE_CELL = {"kind": "source", "y": 3, "x": 0, "item": "iron-plate"}
SINK_CELL = {"kind": "sink", "y": 3, "x": 6, "item": "iron-plate"}
GRID = {"height": 7, "width": 7, "cells": [SOURCE_CELL, SINK_CELL]}


@pytest.fixture
def client():
    with TestClient(create_app(max_jobs=2, time_limit_s=120)) as c:
        yield c


def wait(client: TestClient, job_id: str, timeout: float = 120) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def detail(r, status: int) -> str:
    assert r.status_code == status, r.text
    d = r.json()["detail"]
    assert isinstance(d, str) and "\n" not in d and d
    return d


def grid(**changes) -> dict:
    return {"grid": {**GRID, **changes}}


# --------------------------------------------------------------------------- what works


def test_page_config_items_and_openapi(client):
    assert "factorion" in client.get("/").text
    assert client.get("/static/app.js").status_code == 200
    cfg = client.get("/api/config").json()
    assert cfg["size"] == {"min": 5, "max": 32} and cfg["policy"] is False
    items = client.get("/api/items").json()["items"]
    assert "iron-plate" in items and "iron-gear-wheel" in items and items == sorted(items)
    assert client.get("/api/items").json()["abbrev"]["iron-plate"] == "FeP"  # as the pictures write it
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/build", "/api/throughput", "/api/jobs/{job_id}"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_throughput_report_is_the_clis(client, capsys):
    w = World(5, 6)
    w.place("source", 2, 0, item="copper-plate")
    for x in range(1, 5):
        w.place("transport-belt", 2, x, direction=1)
    w.place("sink", 2, 5, item="copper-plate")
    text = BW.to_string(w)
    r = client.post("/api/throughput", json={"text": text})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == pytest.approx(throughput(w)) and body["total"] > 0
    assert body["per_sink"][0]["y"] == 2 and body["per_sink"][0]["x"] == 5
    assert body["counts"] == {"transport-belt": 4, "sink": 1, "source": 1}
    assert main(["throughput", text]) == 0
    assert body["report"] == throughput_text(w) == capsys.readouterr().out.rstrip("\n")
    img = Image.open(io.BytesIO(base64.b64decode(body["png"])))
    assert img.width == 6 * 40  # 40 px a tile on the page (the CLI draws 24)
    # a grid with nothing between source and sink: 0 items/s, both idle
    body = client.post("/api/throughput", json=grid()).json()
    assert body["total"] == 0 and len(body["idle"]) == 2


def test_build_job_gives_the_string_of_the_factory(client):
    r = client.post("/api/build", json={**grid(), "budget_s": 1})
    assert r.status_code == 202, r.text
    job = wait(client, r.json()["id"])
    assert job["state"] == "done", job["error"]
    res = job["result"]
    w = BW.from_blueprint(load_blueprints(res["blueprint"])[0].raw)
    assert w.shape == (7, 7)
    assert w.entity_at(3, 0).name == SOURCE and w.entity_at(3, 6).name == SINK
    assert res["throughput"] > 0 and throughput(w) == pytest.approx(res["throughput"])
    assert res["warnings"] == [] and res["summary"][0].startswith("throughput:")
    assert job["progress"] == 1.0


# --------------------------------------------------------------------------- every error path


@pytest.mark.parametrize("changes, match", [
    ({"height": 4}, "height"), ({"width": 33}, "width"), ({"height": "big"}, "height"),
])
def test_size_out_of_range(client, changes, match):
    for path in ("/api/throughput", "/api/build"):
        assert match in detail(client.post(path, json=grid(**changes)), 422)


def test_pasted_factory_size_limits(client):
    small = "size 3 9\nsource 1 0 iron-plate\nsink 1 8 iron-plate"
    assert "3x9" in detail(client.post("/api/build", json={"text": small}), 400)
    assert client.post("/api/throughput", json={"text": small}).status_code == 200  # measuring is fine
    huge = BW.to_string(World(300, 5))
    assert "300x5" in detail(client.post("/api/throughput", json={"text": huge}), 400)
    # refused before the grid is allocated (a 10^5 x 10^5 world would not fit in memory)
    assert "100000x100000" in detail(client.post("/api/throughput", json={"text": "size 100000 100000"}), 400)
    far = encode(make_blueprint([{"name": "wooden-chest", "position": {"x": 0.5, "y": 0.5}},
                                 {"name": "wooden-chest", "position": {"x": 9e6 + 0.5, "y": 0.5}}]))
    assert "9000001" in detail(client.post("/api/throughput", json={"text": far}), 400)


def test_unknown_item(client):
    cells = [SOURCE_CELL, {**SINK_CELL, "item": "unobtainium"}]
    for path in ("/api/throughput", "/api/build"):
        assert "unknown item 'unobtainium'" in detail(client.post(path, json=grid(cells=cells)), 400)
    spec = "size 7 7\nsource 3 0 unobtainium\nsink 3 6 iron-plate"
    assert "unknown item" in detail(client.post("/api/build", json={"text": spec}), 400)


@pytest.mark.parametrize("text, match", [
    ("0eNgarbage!!", "base64"),
    ("0eNq1kk1qwzAQRq8i", "bad"),
    ("{not json", "JSON"),
    ("size 7 seven", "spec line 1"),
])
def test_malformed_string(client, text, match):
    for path in ("/api/throughput", "/api/build"):
        assert match in detail(client.post(path, json={"text": text}), 400)


def test_bad_task_bodies(client):
    assert "over the limit" in detail(client.post("/api/throughput", content=b"x" * (MAX_BODY + 1)), 413)
    assert "text" in detail(client.post("/api/throughput", json={"text": "0" * (MAX_TEXT + 1)}), 422)
    assert "either 'grid' or 'text'" in detail(client.post("/api/throughput", json={}), 422)
    assert "either 'grid' or 'text'" in detail(client.post("/api/build", json={**grid(), "text": "x"}), 422)
    out = [SOURCE_CELL, {**SINK_CELL, "x": 7}]
    assert "outside the 7x7 grid" in detail(client.post("/api/build", json=grid(cells=out)), 400)
    same = [SOURCE_CELL, {**SINK_CELL, "x": 0}]
    assert "overlaps" in detail(client.post("/api/build", json=grid(cells=same)), 400)
    no_item = [SOURCE_CELL, {"kind": "sink", "y": 3, "x": 6}]
    assert "needs an item" in detail(client.post("/api/build", json=grid(cells=no_item)), 400)
    lamp = [SOURCE_CELL, {"kind": "lamp", "y": 3, "x": 6}]
    assert "kind" in detail(client.post("/api/build", json=grid(cells=lamp)), 422)
    assert "at least one source and one sink" in detail(
        client.post("/api/build", json=grid(cells=[SOURCE_CELL])), 400)
    rocket = [SOURCE_CELL, {**SINK_CELL, "item": "rocket-part"}]
    assert "no recipe chain" in detail(client.post("/api/build", json=grid(cells=rocket)), 400)
    assert "policy checkpoint" in detail(client.post("/api/build", json={**grid(), "policy": True}), 400)


@pytest.mark.parametrize("rate", [0, -1, 1e9, "fast"])
def test_bad_rate(client, rate):
    cells = [{**SOURCE_CELL, "rate": rate}, SINK_CELL]
    assert "rate" in detail(client.post("/api/build", json=grid(cells=cells)), 422)


def test_bad_rate_elsewhere(client):
    cells = [SOURCE_CELL, SINK_CELL, {"kind": "obstacle", "y": 0, "x": 0, "rate": 5}]
    assert "an obstacle takes no rate" in detail(client.post("/api/build", json=grid(cells=cells)), 400)
    spec = "size 7 7\nsource 3 0 iron-plate -5\nsink 3 6 iron-plate"
    assert "rate '-5' is not a finite" in detail(client.post("/api/build", json={"text": spec}), 400)
    spec = "size 7 7\nsource 3 0 iron-plate nan\nsink 3 6 iron-plate"
    assert "rate 'nan' is not a finite number" in detail(client.post("/api/build", json={"text": spec}), 400)


@pytest.mark.parametrize("budget", [0, 0.5, 61, -3, "long"])
def test_budget_out_of_range(client, budget):
    assert "budget_s" in detail(client.post("/api/build", json={**grid(), "budget_s": budget}), 422)


def test_too_many_concurrent_jobs():
    with TestClient(create_app(max_jobs=1, time_limit_s=120)) as client:
        first = client.post("/api/build", json={**grid(), "budget_s": 30})
        assert first.status_code == 202
        assert "1 builds are running" in detail(client.post("/api/build", json=grid()), 429)
        assert client.get(f"/api/jobs/{first.json()['id']}").json()["state"] in ("starting", "running")


def test_job_time_limit():
    with TestClient(create_app(time_limit_s=0.05)) as client:
        r = client.post("/api/build", json={**grid(), "budget_s": 5})
        assert r.status_code == 202
        job = wait(client, r.json()["id"], timeout=30)
        assert job["state"] == "failed" and "time limit of 0.05 s" in job["error"]
        assert job["result"] is None and job["elapsed_s"] < 10
        # the slot is free again: the next job starts
        assert client.post("/api/build", json={**grid(), "budget_s": 5}).status_code == 202


def test_unknown_job(client):
    assert "no job 'nope'" in detail(client.get("/api/jobs/nope"), 404)


def test_build_with_the_policy(tmp_path):
    torch = pytest.importorskip("torch")
    from factorion.policy.model import Policy, PolicyConfig
    torch.manual_seed(0)
    path = tmp_path / "p.pt"
    Policy(PolicyConfig.preset("tiny")).eval().save(path)
    with TestClient(create_app(checkpoint=str(path), time_limit_s=120)) as client:
        assert client.get("/api/config").json()["policy"] is True
        r = client.post("/api/build", json={**grid(), "budget_s": 2, "policy": True})
        assert r.status_code == 202, r.text
        job = wait(client, r.json()["id"])
    assert job["state"] == "done", job["error"] and job["policy"] is True
    assert job["result"]["candidates"] > 2  # the planner's two and the policy's roll-outs


def test_serve_command(tmp_path, capsys):
    assert main(["serve", "--checkpoint", str(tmp_path / "missing.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("factorion: error:") and "missing.pt" in err and err.count("\n") == 1
    for bad in (["--port", "70000"], ["--max-jobs", "0"], ["--time-limit", "-1"], ["--time-limit", "nan"]):
        assert main(["serve", *bad]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    with socket.socket() as s:  # a free port (released for the server to take)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "factorion.cli", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        t0 = time.monotonic()
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() - t0 < 60, "the server did not answer within 60 s"
            try:
                r = requests.get(f"http://127.0.0.1:{port}/api/config", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert r.json()["size"]["max"] == 32
        assert "id=\"grid\"" in requests.get(f"http://127.0.0.1:{port}/", timeout=5).text
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/" in out
