"""pipeline.download against a real local HTTP server (127.0.0.1) with programmable misbehaviour."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import zstandard

from pipeline import download as dl

# A plausible-looking (not necessarily decodable: decoding is not this stage's job) blueprint string.
BP = {k: f"0eNq{k}TESTSTRING{k}==" for k in ("-Kaaa", "-Kbbb", "-Kccc", "-Kddd", "-Keee")}


class FakeFirebase:
    """Routes path -> a queue of behaviours; the last one sticks. Counts requests per path.

    Behaviours: ("json", obj) | ("raw", text) | ("status", code, headers) | ("truncate", obj)
    (Content-Length promises more than is sent) | ("sleep", seconds, obj) (then answers obj).
    """

    def __init__(self) -> None:
        self.routes: dict[str, list[tuple]] = {}
        self.hits: Counter[str] = Counter()
        self.queries: list[dict] = []
        self.agents: set[str] = set()
        self.lock = threading.Lock()

    def set(self, path: str, *behaviours: tuple) -> None:
        self.routes[path] = list(behaviours)

    def blueprint(self, key: str, text: str | None = None, favs: int = 1, **extra) -> dict:
        return {"blueprintString": BP[key] if text is None else text, "title": f"title {key}",
                "author": {"userId": f"uid{key}", "displayName": f"name{key}"}, "tags": ["/belt/"],
                "createdDate": 1500000000000, "numberOfFavorites": favs, **extra}

    def publish(self, keys: list[str]) -> None:
        """Index + one blueprint per key (favourites descending in the order given)."""
        favs = {k: 100 - i for i, k in enumerate(keys)}
        self.set("/blueprintSummaries.json", ("json", {k: {"title": k, "numberOfFavorites": f}
                                                       for k, f in favs.items()}))
        for k in keys:
            self.set(f"/blueprints/{k}.json", ("json", self.blueprint(k, favs=favs[k])))

    def bp_hits(self) -> int:
        return sum(n for p, n in self.hits.items() if p.startswith("/blueprints/"))

    def handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                parts = urlsplit(self.path)
                with fake.lock:
                    fake.hits[parts.path] += 1
                    fake.queries.append(parse_qs(parts.query))
                    fake.agents.add(self.headers.get("User-Agent", ""))
                    queue = fake.routes.get(parts.path, [("status", 404, {})])
                    behaviour = queue.pop(0) if len(queue) > 1 else queue[0]
                try:
                    self.act(*behaviour)
                except OSError:  # the client gave up (timeout): fine
                    pass

            def act(self, what: str, *args) -> None:
                if what in ("drip", "gzip", "big"):
                    self.hostile(what, *args)
                    return
                if what == "sleep":
                    time.sleep(args[0])
                    what, args = "json", args[1:]
                if what == "status":
                    code, headers = args
                    self.send_response(code)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = args[0].encode() if what == "raw" else json.dumps(args[0]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                # truncate: promise more than we send, then close the connection (HTTP/1.0)
                self.send_header("Content-Length", str(len(body) + (100 if what == "truncate" else 0)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if what == "truncate" else body)

            def hostile(self, what: str, *args) -> None:
                """drip: a body one byte per ``args[1]`` s; gzip: ``args[0]`` zero bytes gzipped
                (Content-Encoding: gzip); big: a body of ``args[0]`` bytes."""
                if what == "gzip":
                    body = gzip.compress(b"0" * args[0], 9)
                elif what == "big":
                    body = b" " * args[0]
                else:
                    body = json.dumps(args[0]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if what == "gzip":
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if what != "drip":
                    self.wfile.write(body)
                    return
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(args[1])

        return Handler


@pytest.fixture
def server():
    fake = FakeFirebase()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield fake
    httpd.shutdown()
    httpd.server_close()


def config(tmp_path: Path, *sources: dict, **download) -> dict:
    settings = {"rate_limit_per_s": 1000.0, "timeout_s": 2.0, "connect_timeout_s": 1.0, "retries": 3,
                "connect_retries": 0, "body_retries": 2, "backoff": 0.01,
                "cache_dir": str(tmp_path / "cache")}
    return {"download": {**settings, **download}, "source": list(sources)}


def fb(server: FakeFirebase, **extra) -> dict:
    return {"name": "fp", "kind": "firebase", "base_url": server.base_url, "limit": 50,
            "view_url": "https://factorioprints.com/view/{key}", **extra}


def run(cfg: dict, **kw) -> dl.DownloadResult:
    return dl.fetch_all(cfg, progress=False, **kw)


def test_happy_path_provenance(server, tmp_path):
    server.publish(["-Kbbb", "-Kaaa", "-Kccc"])
    res = run(config(tmp_path, fb(server)))
    assert res.errors == [] and res.rejects == []
    assert [r.key for r in res.records] == ["-Kbbb", "-Kaaa", "-Kccc"]  # most favourited first
    r = res.records[0]
    assert (r.source, r.text, r.title, r.author) == ("fp", BP["-Kbbb"], "title -Kbbb", "name-Kbbb")
    assert r.url == "https://factorioprints.com/view/-Kbbb"
    assert r.sha256 == hashlib.sha256(BP["-Kbbb"].encode()).hexdigest()
    assert r.fetched_at.endswith("+00:00") and r.meta["favorites"] == 100 and r.meta["tags"] == ["/belt/"]
    assert r.meta["author_id"] == "uid-Kbbb"
    assert server.queries[0] == {"orderBy": ['"numberOfFavorites"'], "limitToLast": ["50"]}
    assert server.agents == {dl.DOWNLOAD_DEFAULTS["user_agent"]}
    assert res.http_requests == 4
    cached = tmp_path / "cache" / "fp" / "-Kbbb.json.zst"
    assert json.loads(zstandard.decompress(cached.read_bytes()))["blueprintString"] == BP["-Kbbb"]


def test_429_retry_after_then_success(server, tmp_path):
    server.publish(["-Kaaa", "-Kbbb"])
    server.set("/blueprints/-Kaaa.json", ("status", 429, {"Retry-After": "1"}),
               ("json", server.blueprint("-Kaaa")))
    t0 = time.monotonic()
    res = run(config(tmp_path, fb(server)))
    assert time.monotonic() - t0 >= 0.9  # Retry-After honoured
    assert sorted(r.key for r in res.records) == ["-Kaaa", "-Kbbb"] and not res.rejects
    assert server.hits["/blueprints/-Kaaa.json"] == 2


def test_500_twice_then_success(server, tmp_path):
    server.publish(["-Kaaa"])
    server.set("/blueprints/-Kaaa.json", ("status", 500, {}), ("status", 502, {}),
               ("json", server.blueprint("-Kaaa")))
    res = run(config(tmp_path, fb(server)))
    assert [r.key for r in res.records] == ["-Kaaa"] and server.hits["/blueprints/-Kaaa.json"] == 3


def test_500_forever_is_a_reject_and_not_cached(server, tmp_path):
    server.publish(["-Kaaa", "-Kbbb"])
    server.set("/blueprints/-Kaaa.json", ("status", 503, {}))
    res = run(config(tmp_path, fb(server)))
    assert [r.key for r in res.records] == ["-Kbbb"]
    assert [(r.key, r.reason) for r in res.rejects] == [("-Kaaa", "fetch failed: HTTP 503")]
    assert not (tmp_path / "cache" / "fp" / "-Kaaa.json.zst").exists()


def test_truncated_body_retried_then_success(server, tmp_path):
    server.publish(["-Kaaa", "-Kbbb"])
    server.set("/blueprints/-Kaaa.json", ("truncate", server.blueprint("-Kaaa")),
               ("json", server.blueprint("-Kaaa")))
    res = run(config(tmp_path, fb(server)))
    assert sorted(r.key for r in res.records) == ["-Kaaa", "-Kbbb"] and not res.rejects
    assert server.hits["/blueprints/-Kaaa.json"] == 2


def test_truncated_forever_rejected_others_kept(server, tmp_path):
    server.publish(["-Kaaa", "-Kbbb", "-Kccc"])
    server.set("/blueprints/-Kbbb.json", ("truncate", server.blueprint("-Kbbb")))
    res = run(config(tmp_path, fb(server), body_retries=2))
    assert [r.key for r in res.records] == ["-Kaaa", "-Kccc"]
    [reject] = res.rejects
    assert reject.key == "-Kbbb" and reject.reason.startswith("fetch failed: truncated body")
    assert "after 3 attempts" in reject.reason and server.hits["/blueprints/-Kbbb.json"] == 3


def test_invalid_json_body_rejected(server, tmp_path):
    server.publish(["-Kaaa", "-Kbbb"])
    server.set("/blueprints/-Kaaa.json", ("raw", '{"blueprintString": "0eN'))
    res = run(config(tmp_path, fb(server)))
    assert [r.key for r in res.records] == ["-Kbbb"]
    assert res.rejects[0].reason.startswith("fetch failed: invalid body")


@pytest.mark.parametrize("text, reason", [
    ("", "missing or empty"),
    ("  \n", "missing or empty"),
    (None, "missing or empty"),  # no blueprintString field at all
    ("hello world", "not a blueprint string"),
])
def test_implausible_blueprint_string_rejected(server, tmp_path, text, reason):
    server.publish(["-Kaaa", "-Kbbb"])
    bp = server.blueprint("-Kaaa", text=text)
    if text is None:
        del bp["blueprintString"]
    server.set("/blueprints/-Kaaa.json", ("json", bp))
    res = run(config(tmp_path, fb(server)))
    assert [r.key for r in res.records] == ["-Kbbb"]
    [reject] = res.rejects
    assert (reject.source, reject.key, reject.url) == ("fp", "-Kaaa", "https://factorioprints.com/view/-Kaaa")
    assert reason in reject.reason


def test_null_blueprint_rejected(server, tmp_path):
    server.publish(["-Kaaa"])
    server.set("/blueprints/-Kaaa.json", ("json", None))
    res = run(config(tmp_path, fb(server)))
    assert res.rejects[0].reason == "no blueprint at this key"


def test_timeout_retried_then_success_and_permanent_timeout_recorded(server, tmp_path):
    server.publish(["-Kaaa", "-Kbbb", "-Kccc"])
    server.set("/blueprints/-Kaaa.json", ("sleep", 0.6, server.blueprint("-Kaaa")),
               ("json", server.blueprint("-Kaaa")))
    server.set("/blueprints/-Kbbb.json", ("sleep", 0.6, server.blueprint("-Kbbb")))
    res = run(config(tmp_path, fb(server), timeout_s=0.2, retries=1))
    assert [r.key for r in res.records] == ["-Kaaa", "-Kccc"]
    [reject] = res.rejects
    assert reject.key == "-Kbbb" and "timed out" in reject.reason
    assert server.hits["/blueprints/-Kaaa.json"] == 2 and server.hits["/blueprints/-Kbbb.json"] == 2


def test_second_run_uses_cache(server, tmp_path):
    server.publish(["-Kaaa", "-Kbbb", "-Kccc"])
    cfg = config(tmp_path, fb(server))
    first = run(cfg)
    hits = server.bp_hits()
    second = run(cfg)
    assert hits == 3 and server.bp_hits() == 3  # zero blueprint requests the second time
    assert server.hits["/blueprintSummaries.json"] == 1  # index younger than index_max_age_s: reused
    assert second.http_requests == 0
    assert [(r.key, r.sha256, r.fetched_at) for r in second.records] == \
        [(r.key, r.sha256, r.fetched_at) for r in first.records]
    run(config(tmp_path, fb(server), index_max_age_s=0))
    assert server.hits["/blueprintSummaries.json"] == 2 and server.bp_hits() == 3


def test_resume_after_limit(server, tmp_path):
    server.publish(list(BP))
    cfg = config(tmp_path, fb(server))
    assert len(run(cfg, limit=2).records) == 2
    assert server.bp_hits() == 2
    res = run(cfg)
    assert len(res.records) == 5 and server.bp_hits() == 5  # only the 3 missing ones were fetched


def test_resume_after_interruption(server, tmp_path, monkeypatch):
    server.publish(list(BP))
    cfg = config(tmp_path, fb(server))
    real_write, writes = dl.write_bytes_atomic, []

    def write_then_die(data, path):
        if len(writes) == 3:  # index + 2 blueprints written, then the process "dies"
            raise KeyboardInterrupt
        writes.append(path)
        real_write(data, path)

    monkeypatch.setattr(dl, "write_bytes_atomic", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    monkeypatch.setattr(dl, "write_bytes_atomic", real_write)
    assert server.bp_hits() == 3
    assert not list((tmp_path / "cache").rglob(".*.tmp"))  # no temp files left behind
    res = run(cfg)
    assert len(res.records) == 5 and server.bp_hits() == 3 + 3  # 2 cached, 3 fetched


def test_no_network_one_error_other_sources_go_on(tmp_path, caplog):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "bps"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.txt").write_text(BP["-Kbbb"] + "\n")
    (folder / "a.txt").write_text(BP["-Kaaa"])
    (folder / "junk.txt").write_text("not a blueprint")
    toml = tmp_path / "sources.toml"
    toml.write_text(f"""
[download]
rate_limit_per_s = 1000
backoff = 0.01
cache_dir = "{(tmp_path / 'cache').as_posix()}"

[[source]]
name = "factorioprints"
kind = "firebase"
base_url = "http://127.0.0.1:{port}"

[[source]]
name = "local"
kind = "folder"
path = "{folder.as_posix()}"
""")
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="pipeline.download"):
        res = dl.fetch_all(toml, progress=False)
    assert time.monotonic() - t0 < 5
    [error] = res.errors
    assert error.startswith("factorioprints: network unreachable (") and error.endswith("; skipped")
    assert "refused" in error.lower()
    assert [m for m in caplog.messages if "factorioprints" in m] == [error]
    assert [r.key for r in res.records] == ["a.txt", "sub/b.txt"]
    assert [(r.key, r.reason[:22]) for r in res.rejects] == [("junk.txt", "not a blueprint string")]


def test_read_folder_with_manifest(tmp_path):
    text = "0eNqABC"
    sha = hashlib.sha256(text.encode()).hexdigest()
    (tmp_path / "owner__repo").mkdir()
    (tmp_path / "owner__repo" / f"{sha[:16]}.txt").write_text(text[:4] + "\n" + text[4:] + "\n")
    (tmp_path / "loose.txt").write_text("{\"blueprint\": {\"label\": \"a b\"}}")
    (tmp_path / "MANIFEST.tsv").write_text(
        "source\tpath\tcommit\tsha256\tkind\n"
        f"owner/repo\tbooks/smelting.txt\tabc123\t{sha}\tblueprint\n")
    rejects: list = []
    records = list(dl.read_folder(tmp_path, "shared", rejects))
    assert [r.key for r in records] == ["loose.txt", f"owner__repo/{sha[:16]}.txt"] and rejects == []
    loose, r = records
    assert loose.text == "{\"blueprint\": {\"label\": \"a b\"}}" and loose.title == "loose"
    assert (r.text, r.sha256, r.title, r.author) == (text, sha, "smelting", "owner")
    assert r.url == "https://github.com/owner/repo/blob/abc123/books/smelting.txt"
    assert r.meta["kind"] == "blueprint"


def test_missing_folder_and_url_list_are_empty(tmp_path):
    cfg = config(tmp_path, {"name": "u", "kind": "urls", "file": str(tmp_path / "nope.txt")},
                 {"name": "f", "kind": "folder", "path": str(tmp_path / "nope")})
    res = run(cfg)
    assert (res.records, res.rejects, res.errors, res.http_requests) == ([], [], [], 0)


def test_url_list_source(server, tmp_path):
    server.set("/raw/1", ("raw", BP["-Kaaa"] + "\n"))
    server.set("/raw/2", ("raw", "<html>nope</html>"))
    urls = tmp_path / "urls.txt"
    one, two = f"{server.base_url}/raw/1", f"{server.base_url}/raw/2"
    urls.write_text(f"# comment\n{one}\n\n{two}\n{one}\n")  # a duplicate URL is fetched once
    cfg = config(tmp_path, {"name": "u", "kind": "urls", "file": str(urls)})
    res = run(cfg)
    assert [(r.key, r.text, r.url) for r in res.records] == [(one, BP["-Kaaa"], one)]
    assert [r.key for r in res.rejects] == [two]
    run(cfg)
    assert server.hits["/raw/1"] == 1 and server.hits["/raw/2"] == 1


def test_factorio_school_pages(server, tmp_path):
    server.publish(["-Kaaa", "-Kbbb", "-Kccc"])
    server.set("/api/blueprintSummaries/search/page/1",
               ("json", {"_data": [{"key": "-Kaaa"}, {"key": "-Kbbb"}], "_metadata": {}}))
    server.set("/api/blueprintSummaries/search/page/2", ("json", [{"id": "-Kccc"}]))
    src = {"name": "fs", "kind": "factorio_school", "base_url": server.base_url, "pages": 3,
           "blueprint_base_url": server.base_url, "query": {"orderBy": "Favorites"}}
    res = run(config(tmp_path, src))
    assert [r.key for r in res.records] == ["-Kaaa", "-Kbbb", "-Kccc"] and not res.errors
    assert [(r.key, r.reason) for r in res.rejects] == [("page3", "fetch failed: HTTP 404")]
    assert server.hits["/api/blueprintSummaries/search/page/3"] == 1
    assert {"orderBy": ["Favorites"]} in server.queries


def test_summary_keys_shapes():
    assert dl.summary_keys([{"key": "a"}, {"id": "b"}, "c", {"x": 1}]) == ["a", "b", "c"]
    assert dl.summary_keys({"content": [{"blueprintKey": "k"}], "total": 1}) == ["k"]
    assert dl.summary_keys({"-K1": {"title": "t"}, "-K2": {}}) == ["-K1", "-K2"]
    assert dl.summary_keys(None) == [] and dl.summary_keys({"_data": []}) == []


def test_cache_name_is_safe_and_unique():
    assert dl.cache_name("-Kabc_12") == "-Kabc_12"
    a, b = dl.cache_name("https://x/a?b=1"), dl.cache_name("https://x/a?b=2")
    assert a != b and "/" not in a and "?" not in a
    assert not dl.cache_name("../etc/passwd").startswith(".")


def test_only_and_disabled_sources(server, tmp_path):
    server.publish(["-Kaaa"])
    cfg = config(tmp_path, fb(server, enabled=False), {"name": "f", "kind": "folder", "path": str(tmp_path)})
    assert run(cfg).http_requests == 0  # disabled
    assert [r.key for r in run(cfg, only="fp").records] == ["-Kaaa"]
    with pytest.raises(ValueError, match="unknown source"):
        run(cfg, only=["nope"])


def test_shipped_config_loads():
    cfg = dl.load_config(Path(__file__).resolve().parents[1] / "data" / "sources.toml")
    kinds = {s["name"]: s["kind"] for s in cfg.sources}
    assert kinds["factorioprints"] == "firebase" and set(kinds.values()) <= set(dl.KINDS)
    assert cfg.download["rate_limit_per_s"] <= 1.0 and "factorion" in cfg.download["user_agent"]


def test_rate_limit_spaces_requests(server, tmp_path):
    server.publish(["-Kaaa", "-Kbbb", "-Kccc"])
    t0 = time.monotonic()
    res = run(config(tmp_path, fb(server), rate_limit_per_s=20.0))
    assert res.http_requests == 4 and time.monotonic() - t0 >= 3 / 20 - 0.01


def test_cli_prints_counts(server, tmp_path, capsys):
    server.publish(["-Kaaa", "-Kbbb"])
    folder = tmp_path / "bps"
    folder.mkdir()
    (folder / "x.txt").write_text(BP["-Kccc"])
    toml = tmp_path / "sources.toml"
    toml.write_text(f"""[download]
rate_limit_per_s = 1000
cache_dir = "{(tmp_path / 'cache').as_posix()}"

[[source]]
name = "fp"
kind = "firebase"
base_url = "{server.base_url}"
""")
    assert dl.main(["--config", str(toml), "--limit", "1", "--no-progress", "--folder", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "fp" in out and "bps" in out and "total" in out and "2 records" in out


# ----------------------------------------------------------------------------- hostile servers (issue 16)
def test_a_slow_body_ends_at_the_deadline(server, tmp_path):
    """1 byte every 0.2 s (each under the read timeout): the URL's total deadline ends it."""
    server.publish(["-Kaaa", "-Kbbb"])
    server.set("/blueprints/-Kaaa.json", ("drip", server.blueprint("-Kaaa"), 0.2))
    t = time.perf_counter()
    res = run(config(tmp_path, fb(server), deadline_s=1.5))
    assert time.perf_counter() - t < 6
    assert [r.key for r in res.records] == ["-Kbbb"]
    [reject] = res.rejects
    assert reject.key == "-Kaaa" and "deadline of 1.5 s reached" in reject.reason
    assert not any("Kaaa" in p.name for p in (tmp_path / "cache").rglob("*"))  # not cached


def test_a_long_retry_after_is_a_reject_not_a_sleep(server, tmp_path):
    server.publish(["-Kaaa", "-Kbbb"])
    server.set("/blueprints/-Kaaa.json", ("status", 429, {"Retry-After": "3600"}))
    t = time.perf_counter()
    res = run(config(tmp_path, fb(server), max_retry_after_s=5))
    assert time.perf_counter() - t < 5
    [reject] = res.rejects
    assert "asked to wait 3600 s (Retry-After), over the 5 s cap" in reject.reason
    assert [r.key for r in res.records] == ["-Kbbb"]


def test_retries_stop_at_the_deadline(server, tmp_path):
    server.publish(["-Kaaa"])
    server.set("/blueprints/-Kaaa.json", ("status", 503, {"Retry-After": "1"}))
    t = time.perf_counter()
    res = run(config(tmp_path, fb(server), retries=50, deadline_s=2.5))
    assert time.perf_counter() - t < 6
    [reject] = res.rejects
    assert "deadline" in reject.reason


@pytest.mark.parametrize("what", ["big", "gzip"])
def test_oversized_and_gzip_bomb_bodies_are_capped_and_not_cached(server, tmp_path, what):
    """3 MB of body, or 64 KB of gzip inflating to 64 MB: stopped at the 1 MB cap, never cached."""
    server.publish(["-Kaaa", "-Kbbb"])
    server.set("/blueprints/-Kaaa.json", (what, 3_000_000 if what == "big" else 64_000_000))
    res = run(config(tmp_path, fb(server), max_body_bytes=1_000_000))
    [reject] = res.rejects
    assert "body over 1000000 bytes (decompressed); not kept" in reject.reason
    assert [r.key for r in res.records] == ["-Kbbb"]
    assert not any("Kaaa" in p.name for p in (tmp_path / "cache").rglob("*"))
    assert server.hits["/blueprints/-Kaaa.json"] == 1  # not retried either


def test_an_oversized_cache_entry_is_not_used(server, tmp_path):
    """A body an older run cached beyond today's cap is fetched again (and then rejected)."""
    server.publish(["-Kaaa"])
    cfg = config(tmp_path, fb(server), max_body_bytes=1_000)
    fx = dl.Fetcher({**dl.DOWNLOAD_DEFAULTS, **cfg["download"]})
    dl.write_bytes_atomic(zstandard.compress(json.dumps(server.blueprint("-Kaaa", pad="x" * 5_000)).encode()),
                          fx.item_cache("fp", "-Kaaa"))
    server.set("/blueprints/-Kaaa.json", ("big", 5_000))
    res = run(cfg)
    [reject] = res.rejects
    assert "body over 1000 bytes" in reject.reason and server.hits["/blueprints/-Kaaa.json"] == 1


def test_failures_are_summarised_per_source_on_the_console(server, tmp_path, caplog):
    server.publish(["-Kaaa", "-Kbbb", "-Kccc"])
    server.set("/blueprints/-Kaaa.json", ("status", 500, {}))
    server.set("/blueprints/-Kbbb.json", ("status", 500, {}))
    with caplog.at_level(logging.WARNING, logger="pipeline.download"):
        run(config(tmp_path, fb(server), retries=0))
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline.download"]
    assert "fp: 2 item(s) rejected: fetch failed: HTTP 500 (x2) (rejects.parquet)" in lines


def test_a_folder_named_txt_is_a_reject_not_an_abort(tmp_path):
    root = tmp_path / "bps"
    (root / "x.txt").mkdir(parents=True)
    (root / "ok.txt").write_text(BP["-Kaaa"])
    rejects: list = []
    recs = list(dl.read_folder(root, "bps", rejects))
    assert [r.key for r in recs] == ["ok.txt"]
    assert [(r.key, r.reason) for r in rejects] == [("x.txt", "not a regular file")]
