"""Download stage of ``make data``: fetch raw blueprint strings with provenance (no decoding here).

Sources come from ``data/sources.toml`` (``[[source]]`` tables + a ``[download]`` table). Kinds:

- ``firebase``: FactorioPrints' Firebase DB, plain REST. ``{base_url}/blueprintSummaries.json?orderBy=
  "numberOfFavorites"&limitToLast={limit}`` (object ``key -> summary``), then ``{base_url}/blueprints/
  {key}.json`` per key, most favourited first (``blueprintString``, ``title``, ``author{userId,
  displayName}``, ``tags``, ``createdDate``, ``numberOfFavorites``).
- ``factorio_school``: ``{base_url}/api/blueprintSummaries/search/page/{n}``, n = 1..``pages`` (``query``:
  extra parameters), then blueprints from ``blueprint_base_url`` as above. The API is undocumented;
  ASSUMED shape, parsed tolerantly by :func:`summary_keys`: a list of summaries, or an object holding
  one (``_data``/``data``/``content``/``results``/``items``/``blueprintSummaries``, else its first list),
  or a ``key -> summary`` object; a summary's key is its ``key``/``id``/``blueprintKey`` (or itself).
- ``urls``: ``file`` lists URLs (``#`` comments), each answering a raw string. ``folder``: ``path`` holds
  ``*.txt`` strings (:func:`read_folder`). A missing file/folder is an empty source.

HTTP: one ``requests.Session`` (clear User-Agent), urllib3 ``Retry`` on 429/5xx/read errors honouring
``Retry-After`` up to ``max_retry_after_s`` (a longer one is a reject), timeouts, at most
``rate_limit_per_s`` requests/s. Truncated bodies and invalid JSON are retried here too. Every URL has a
total ``deadline_s`` (attempts, waits and a slow body together) and bodies are streamed and capped at
``max_body_bytes`` after decompression (a gzip bomb stops there); both end as a reject, never cached.
DNS/connect failures get ``connect_retries`` only: with no network a source is skipped
with ONE line on stderr (and in ``errors``) and the run goes on.

Cache: raw bodies, zstd, ``<cache_dir>/<source>/<key>.json.zst`` (``.txt.zst`` for raw text), written
atomically, so a rerun requests no cached key and an interrupted run resumes. Indexes live in
``<source>/_index/`` and are reused while younger than ``index_max_age_s``. Failures are not cached.
Each item ends as a :class:`RawRecord` or a :class:`Reject` with its reason (fetch failed, no blueprint
at that key, missing/empty string, or one starting with neither ``0`` nor ``{``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import requests
import urllib3
import zstandard
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.retry import Retry

from factorion.core.files import write_bytes_atomic

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "data/sources.toml"
MAX_FILE_BYTES = 64 * 1024 * 1024  # a folder's *.txt over this is a reject (the decoder's JSON cap)
FIREBASE_URL = "https://facorio-blueprints.firebaseio.com"
DOWNLOAD_DEFAULTS: dict[str, Any] = {  # the [download] table; data/sources.toml documents each
    "rate_limit_per_s": 1.0, "timeout_s": 20.0, "connect_timeout_s": 5.0, "retries": 5, "connect_retries": 1,
    "body_retries": 3, "backoff": 1.0, "cache_dir": "data/cache", "index_max_age_s": 86400.0,
    "deadline_s": 60.0, "max_retry_after_s": 60.0, "max_body_bytes": 32 * 1024 * 1024,
    "user_agent": "factorion-data/0.1 (+https://github.com/factorion; research dataset builder)",
}


@dataclass(slots=True)
class RawRecord:
    """One raw blueprint string and where it came from. ``meta``: extra provenance (tags, favourites…)."""

    source: str
    key: str
    text: str
    title: str
    author: str
    url: str
    fetched_at: str
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reject:
    source: str
    key: str
    url: str
    reason: str


@dataclass(slots=True)
class DownloadResult:
    records: list[RawRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    http_requests: int = 0  # GETs issued by this run (urllib3's internal retries not counted)


@dataclass(slots=True)
class Config:
    download: dict[str, Any]
    sources: list[dict[str, Any]]


class FetchError(Exception):
    """A URL could not be fetched, retries included."""


class Unreachable(FetchError):
    """DNS or connect failure: the network (or the host) is unreachable."""


def load_config(path: str | os.PathLike = DEFAULT_CONFIG) -> Config:
    with open(path, "rb") as f:
        return _to_config(tomllib.load(f))


def _to_config(raw: Mapping[str, Any]) -> Config:
    sources = [dict(s) for s in raw.get("source", [])]
    for s in sources:
        if s.get("kind") not in KINDS or not s.get("name"):
            raise ValueError(f"each [[source]] needs a name and a kind in {sorted(KINDS)}: {s}")
    dupes = [n for n, c in Counter(s["name"] for s in sources).items() if c > 1]
    if dupes:
        raise ValueError(f"duplicate source names: {dupes}")
    return Config({**DOWNLOAD_DEFAULTS, **raw.get("download", {})}, sources)


def implausible(text: str) -> str | None:
    """Why ``text`` cannot be a blueprint string, or None. A cheap check only: decoding is done later."""
    if not text:
        return "missing or empty blueprint string"
    if text[0] not in "0{":
        return f"not a blueprint string (starts with {text[:16]!r})"
    return None


def _normalise(text: Any) -> str:
    """Strip; base64 strings ("0…") also lose inner whitespace (line wrapping). JSON ("{…") is kept."""
    if not isinstance(text, str):
        return ""
    text = text.strip()
    return "".join(text.split()) if text.startswith("0") else text


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _record(source: str, key: str, text: Any, *, url: str, ts: float, title: Any = "", author: Any = "",
            meta: dict[str, Any] | None = None) -> RawRecord | Reject:
    text = _normalise(text)
    why = implausible(text)
    if why:
        return Reject(source, key, url, why)
    sha = hashlib.sha256(text.encode()).hexdigest()
    return RawRecord(source, key, text, str(title or ""), str(author or ""), url, _iso(ts), sha, meta or {})


def cache_name(key: str) -> str:
    """A safe file name for ``key``: the key itself when safe, else a sanitised prefix + a short hash."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key).lstrip(".")
    if safe == key and len(key) <= 100:
        return key
    return f"{safe[:80]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (MaxRetryError.reason, args[0], __cause__), outermost first."""
    chain = [exc]
    while True:
        nxt = getattr(exc, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc.__cause__
        if nxt is None or any(nxt is c for c in chain):
            return chain
        chain.append(exc := nxt)


def _describe(exc: BaseException) -> str:
    text = re.sub(r"^<[^>]*>:\s*", "", str(exc)) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


class GiveUp(urllib3.exceptions.HTTPError):
    """Raised inside urllib3's retry loop: the URL's deadline is reached, or Retry-After is too long."""


class _PoliteRetry(Retry):
    """A Retry whose backoff is never shorter than MIN_BACKOFF (urllib3's first retry is immediate),
    that waits at most MAX_RETRY_AFTER for a Retry-After and never sleeps past ``deadline``."""

    MIN_BACKOFF = 0.0
    MAX_RETRY_AFTER = 60.0
    deadline = float("inf")  # time.monotonic() value; set by the Fetcher before each request

    def get_backoff_time(self) -> float:
        return max(super().get_backoff_time(), self.MIN_BACKOFF)

    def sleep(self, response=None) -> None:
        wait = self.get_retry_after(response) if response is not None and self.respect_retry_after_header \
            else None
        if wait is not None and wait > self.MAX_RETRY_AFTER:
            raise GiveUp(f"server asked to wait {wait:.0f} s (Retry-After), over the "
                         f"{self.MAX_RETRY_AFTER:.0f} s cap")
        if time.monotonic() + (wait or self.get_backoff_time()) > self.deadline:
            raise GiveUp("deadline reached while retrying")
        super().sleep(response)


class Fetcher:
    """One polite, retrying, rate-limited ``requests.Session`` in front of the zstd response cache."""

    def __init__(self, settings: Mapping[str, Any]):
        self.settings = settings
        self.cache_dir = Path(settings["cache_dir"])
        rate = float(settings["rate_limit_per_s"])
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self.requests = 0
        retries = int(settings["retries"])
        self.deadline_s = float(settings["deadline_s"])
        self.max_body = int(settings["max_body_bytes"])
        retry_cls = type("PoliteRetry", (_PoliteRetry,), {
            "MIN_BACKOFF": self.interval, "MAX_RETRY_AFTER": float(settings["max_retry_after_s"])})
        self.retry_cls = retry_cls
        retry = retry_cls(
            total=retries, connect=int(settings["connect_retries"]), read=retries, status=retries,
            backoff_factor=float(settings["backoff"]), status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}), respect_retry_after_header=True, raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.headers["User-Agent"] = str(settings["user_agent"])
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.timeout = (float(settings["connect_timeout_s"]), float(settings["timeout_s"]))

    def _throttle(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + self.interval
        if wait > 0:
            time.sleep(wait)

    def _download(self, url: str, params: Mapping[str, Any] | None, parse: Callable[[bytes], Any]):
        """GET ``url`` -> (body, parsed); truncated bodies and unparsable ones are retried here, all
        within the URL's deadline."""
        attempts, last = int(self.settings["body_retries"]) + 1, ""
        deadline = time.monotonic() + self.deadline_s
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(float(self.settings["backoff"]) * 2 ** (attempt - 1), 30.0,
                               max(0.0, deadline - time.monotonic())))
            self._throttle()
            left = deadline - time.monotonic()
            if left <= 0:
                raise FetchError(f"deadline of {self.deadline_s:g} s reached"
                                 + (f" ({last})" if last else ""))
            self.requests += 1
            try:
                body = self._get_body(url, params, deadline)
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as e:
                last = f"truncated body: {_describe(_causes(e)[-1])}"
                continue
            try:
                return body, parse(body)
            except ValueError as e:  # invalid JSON, or text that is not UTF-8
                last = f"invalid body: {_describe(e)}"
        raise FetchError(f"{last} (after {attempts} attempts)")

    def _get_body(self, url: str, params: Mapping[str, Any] | None, deadline: float) -> bytes:
        """One GET (urllib3's retries inside it), its body streamed under the deadline and size cap."""
        left = deadline - time.monotonic()
        timeout = urllib3.Timeout(connect=min(self.timeout[0], left), read=min(self.timeout[1], left),
                                  total=left)
        self.retry_cls.deadline = deadline
        try:
            response = self.session.get(url, params=params, timeout=timeout, stream=True)
        except GiveUp as e:
            raise FetchError(str(e)) from e
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            raise
        except requests.RequestException as e:
            causes = _causes(e)  # ConnectTimeoutError includes NewConnectionError, NameResolutionError
            if any(isinstance(c, ConnectTimeoutError | socket.gaierror) for c in causes):
                raise Unreachable(_describe(causes[-1])) from e
            raise FetchError(_describe(causes[-1])) from e
        with response:
            try:
                response.raise_for_status()
            except requests.HTTPError as e:
                raise FetchError(f"HTTP {e.response.status_code}") from e
            chunks, size = [], 0
            try:  # read1: what has arrived (decoded at most 64 KiB at a time), so the clock is checked
                while chunk := response.raw.read1(65536, decode_content=True):
                    size += len(chunk)
                    if size > self.max_body:
                        raise FetchError(f"body over {self.max_body} bytes (decompressed); not kept")
                    if time.monotonic() > deadline:
                        raise FetchError(f"deadline of {self.deadline_s:g} s reached reading the body "
                                         f"({size} bytes so far)")
                    chunks.append(chunk)
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as e:
                raise requests.exceptions.ChunkedEncodingError(e) from e  # truncated: retried
            except (urllib3.exceptions.HTTPError, OSError) as e:  # a read timeout, say
                raise FetchError(_describe(_causes(e)[-1])) from e
        return b"".join(chunks)

    def get(self, url: str, params: Mapping[str, Any] | None = None, *, cache: Path,
            max_age: float | None = None, as_json: bool = True) -> tuple[Any, float]:
        """(payload, fetch time): from the cache if there (and younger than ``max_age``), else fetched."""
        parse = json.loads if as_json else (lambda body: body.decode("utf-8"))
        if cache.is_file():
            mtime = cache.stat().st_mtime
            if max_age is None or time.time() - mtime < max_age:
                try:
                    return parse(self._read_cache(cache)), mtime
                except (zstandard.ZstdError, ValueError):
                    log.warning("%s: unreadable or oversized cache entry, fetching again", cache)
        body, payload = self._download(url, params, parse)
        write_bytes_atomic(zstandard.compress(body), cache)
        return payload, time.time()

    def _read_cache(self, cache: Path) -> bytes:
        """A cached body, held to ``max_body_bytes`` like a fresh one (an older run may have kept more)."""
        data = cache.read_bytes()
        if zstandard.frame_content_size(data) > self.max_body:
            raise ValueError("over max_body_bytes")
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=self.max_body)

    def item_cache(self, source: str, key: str, ext: str = "json") -> Path:
        return self.cache_dir / cache_name(source) / f"{cache_name(key)}.{ext}.zst"

    def index_cache(self, source: str, name: str) -> Path:
        return self.cache_dir / cache_name(source) / "_index" / f"{cache_name(name)}.json.zst"


Items = Iterator[RawRecord | Reject]


def _index_age(fx: Fetcher, src: Mapping[str, Any]) -> float:
    return float(src.get("index_max_age_s", fx.settings["index_max_age_s"]))


def _favourites(summary: Any) -> float:
    value = summary.get("numberOfFavorites") if isinstance(summary, dict) else None
    return float(value) if isinstance(value, int | float) else 0.0


def _iter_firebase(fx: Fetcher, src: Mapping[str, Any], limit: int | None, progress: bool) -> Items:
    base, n = src["base_url"].rstrip("/"), int(src.get("limit", 200))
    index, _ = fx.get(f"{base}/blueprintSummaries.json",
                      {"orderBy": '"numberOfFavorites"', "limitToLast": n},
                      cache=fx.index_cache(src["name"], f"top{n}-by-favorites"), max_age=_index_age(fx, src))
    if not isinstance(index, dict):
        raise FetchError(f"unexpected summary index ({type(index).__name__}, expected an object)")
    keys = sorted(index, key=lambda k: (-_favourites(index[k]), k))
    yield from _iter_blueprints(fx, src, keys[:limit], base, progress)


def summary_keys(data: Any) -> list[str]:
    """Blueprint keys in a factorio.school search page, whatever its (assumed, see module doc) shape."""
    items: Any = data
    if isinstance(data, dict):
        lists = [data[k] for k in ("_data", "data", "content", "results", "items", "blueprintSummaries")
                 if isinstance(data.get(k), list)] + [v for v in data.values() if isinstance(v, list)]
        if lists:
            items = lists[0]
        elif data and all(isinstance(v, dict) for v in data.values()):
            items = [{"key": k, **v} for k, v in data.items()]
    keys: list[str] = []
    for item in items if isinstance(items, list) else []:
        key = item if isinstance(item, str) else None
        if isinstance(item, dict):
            key = item.get("key") or item.get("id") or item.get("blueprintKey")
        if key and str(key) not in keys:
            keys.append(str(key))
    return keys


def _iter_factorio_school(fx: Fetcher, src: Mapping[str, Any], limit: int | None, progress: bool) -> Items:
    base = src["base_url"].rstrip("/")
    query = dict(src.get("query", {}))
    tag = hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:8] if query else ""
    keys: list[str] = []
    for page in range(1, int(src.get("pages", 1)) + 1):
        url = f"{base}/api/blueprintSummaries/search/page/{page}"
        try:
            data, _ = fx.get(url, query or None, max_age=_index_age(fx, src),
                             cache=fx.index_cache(src["name"], f"page{page}{'-' + tag if tag else ''}"))
        except FetchError as e:
            if page == 1 or isinstance(e, Unreachable):
                raise
            yield Reject(src["name"], f"page{page}", url, f"fetch failed: {e}")  # keep the pages we have
            break
        new = [k for k in summary_keys(data) if k not in keys]
        if not new:
            break
        keys += new
    bp_base = str(src.get("blueprint_base_url", FIREBASE_URL)).rstrip("/")
    yield from _iter_blueprints(fx, src, keys[:limit], bp_base, progress)


def _iter_blueprints(fx: Fetcher, src: Mapping[str, Any], keys: Sequence[str], base: str,
                     progress: bool) -> Items:
    name, view = src["name"], src.get("view_url", "")
    for key in tqdm(keys, desc=name, unit="bp", disable=not progress):
        api = f"{base}/blueprints/{key}.json"
        url = view.format(key=key) if view else api
        bp, ts = _fetch_item(fx, name, key, url, api)
        if isinstance(bp, Reject):
            yield bp
        elif not isinstance(bp, dict):
            yield Reject(name, key, url, "no blueprint at this key" if bp is None else "unexpected JSON")
        else:
            author = bp.get("author") if isinstance(bp.get("author"), dict) else {}
            meta = {"api_url": api, "author_id": author.get("userId"), "tags": bp.get("tags"),
                    "created": bp.get("createdDate"), "favorites": bp.get("numberOfFavorites")}
            yield _record(name, key, bp.get("blueprintString"), url=url, ts=ts, title=bp.get("title"),
                          author=author.get("displayName") or author.get("userId"), meta=meta)


def _fetch_item(fx: Fetcher, source: str, key: str, url: str, api: str, ext: str = "json"):
    """(payload, fetch time), or (Reject, 0) when this one item fails. Unreachable propagates."""
    try:
        return fx.get(api, cache=fx.item_cache(source, key, ext), as_json=ext == "json")
    except Unreachable:
        raise
    except FetchError as e:
        return Reject(source, key, url, f"fetch failed: {e}"), 0.0


def _iter_urls(fx: Fetcher, src: Mapping[str, Any], limit: int | None, progress: bool) -> Items:
    name, path = src["name"], Path(src.get("file", ""))
    if not path.is_file():
        log.info("%s: no URL list at %s; nothing to fetch", name, path)
        return
    lines = (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines())
    urls = list(dict.fromkeys(ln for ln in lines if ln and not ln.startswith("#")))
    for url in tqdm(urls[:limit], desc=name, unit="bp", disable=not progress):
        text, ts = _fetch_item(fx, name, url, url, url, ext="txt")
        yield text if isinstance(text, Reject) else _record(name, url, text, url=url, ts=ts)


def _read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows (source, path, commit, sha256, …) by sha256 and by its 16-char file-name prefix."""
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {k: row for row in rows if row.get("sha256") for k in (row["sha256"], row["sha256"][:16])}


def _scan_folder(root: Path, source: str) -> Items:
    if not root.is_dir():
        log.info("%s: no folder %s; nothing to read", source, root)
        return
    manifest = _read_manifest(root / "MANIFEST.tsv")
    for file in sorted(root.rglob("*.txt")):
        key = file.relative_to(root).as_posix()
        if not file.is_file():  # a folder (or a dangling link) named *.txt
            yield Reject(source, key, (root / key).as_posix(), "not a regular file")
            continue
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                raise OSError(f"over {MAX_FILE_BYTES} bytes")
            text = _normalise(file.read_text(encoding="utf-8", errors="replace"))
        except OSError as e:
            yield Reject(source, key, (root / key).as_posix(), f"unreadable: {e.strerror or e}")
            continue
        row = manifest.get(hashlib.sha256(text.encode()).hexdigest()) or manifest.get(file.stem)
        title, author, url, meta = file.stem, "", (root / key).as_posix(), {}
        if row and "/" in row.get("source", ""):
            repo, rel = row["source"], row.get("path", key)
            title, author, meta = Path(rel).stem, repo.split("/")[0], dict(row)
            url = f"https://github.com/{repo}/blob/{row.get('commit') or 'HEAD'}/{rel}"
        yield _record(source, key, text, url=url, ts=file.stat().st_mtime, title=title, author=author,
                      meta=meta)


def read_folder(path: str | os.PathLike, source_name: str,
                rejects: list[Reject] | None = None) -> Iterator[RawRecord]:
    """RawRecords from the ``*.txt`` files under ``path`` (recursive, sorted; key = relative path).

    With a ``MANIFEST.tsv`` (columns source, path, commit, sha256, …, as in ``../shared/blueprints``)
    rows are matched by the sha256 of the (whitespace-normalised) string and give title (file stem),
    author (repo owner), a GitHub URL at the pinned commit, and ``meta`` (the whole row). Implausible
    files go to ``rejects`` when given, else are logged.
    """
    for item in _scan_folder(Path(path), source_name):
        if isinstance(item, RawRecord):
            yield item
        elif rejects is not None:
            rejects.append(item)
        else:
            log.warning("%s: %s rejected: %s", item.source, item.key, item.reason)


def _iter_folder(fx: Fetcher, src: Mapping[str, Any], limit: int | None, progress: bool) -> Items:
    return islice(_scan_folder(Path(src.get("path", "")), src["name"]), limit)


KINDS: dict[str, Callable[[Fetcher, Mapping[str, Any], int | None, bool], Items]] = {
    "firebase": _iter_firebase,
    "factorio_school": _iter_factorio_school,
    "urls": _iter_urls,
    "folder": _iter_folder,
}


def failure_summary(source: str, rejects: Sequence[Reject], top: int = 3) -> str | None:
    """One console line for a source's failed items: how many, and the commonest reasons."""
    if not rejects:
        return None
    reasons = Counter(r.reason[:80] for r in rejects)
    parts = [f"{why} (x{n})" for why, n in reasons.most_common(top)]
    more = f"; {len(reasons) - top} more kinds" if len(reasons) > top else ""
    return f"{source}: {len(rejects)} item(s) rejected: " + "; ".join(parts) + more + " (rejects.parquet)"


def fetch_all(config_path: str | os.PathLike | Mapping[str, Any] | Config = DEFAULT_CONFIG,
              only: str | Sequence[str] | None = None, limit: int | None = None, progress: bool = True,
              folders: Sequence[str | os.PathLike] = ()) -> DownloadResult:
    """Run every enabled source (or just ``only``, enabled or not) and collect records/rejects/errors.

    ``config_path`` may also be a parsed TOML-shaped mapping or a :class:`Config`. ``limit`` caps the
    items taken from each source. ``folders`` adds ``folder`` sources named after the folder.
    A failing source logs one line, lands in ``errors``, and the run goes on with the next.
    """
    config = (config_path if isinstance(config_path, Config) else _to_config(config_path)
              if isinstance(config_path, Mapping) else load_config(config_path))
    wanted = {only} if isinstance(only, str) else set(only or ())
    unknown = wanted - {s["name"] for s in config.sources}
    if unknown:
        raise ValueError(f"unknown source(s): {sorted(unknown)}")
    sources = [s for s in config.sources if (s["name"] in wanted if wanted else s.get("enabled", True))]
    sources += [{"name": Path(p).resolve().name, "kind": "folder", "path": str(p)} for p in folders]
    fx = Fetcher(config.download)
    result = DownloadResult()
    try:
        for src in sources:
            before = len(result.rejects)
            try:
                for item in KINDS[src["kind"]](fx, src, limit, progress):
                    (result.records if isinstance(item, RawRecord) else result.rejects).append(item)
            except FetchError as e:
                why = f"network unreachable ({e})" if isinstance(e, Unreachable) else str(e)
                result.errors.append(f"{src['name']}: {why}; skipped")
                log.warning("%s", result.errors[-1])
            summary = failure_summary(src["name"], result.rejects[before:])
            if summary:
                log.warning("%s", summary)
    finally:
        fx.session.close()
    result.http_requests = fx.requests
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.download", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="sources file (default: %(default)s)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this source, even if disabled (repeatable)")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N items per source")
    parser.add_argument("--folder", action="append", default=[], metavar="PATH",
                        help="also read *.txt blueprint strings under PATH (e.g. ../shared/blueprints)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit: at least 1 item per source, got {args.limit}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        res = fetch_all(args.config, only=args.only, limit=args.limit, progress=not args.no_progress,
                        folders=args.folder)
    except (OSError, ValueError) as e:  # missing/bad config, unknown --only
        parser.error(str(e))
    records, rejects = Counter(r.source for r in res.records), Counter(r.source for r in res.rejects)
    for name in sorted(records | rejects):
        print(f"{name:24s} {records[name]:7d} records {rejects[name]:6d} rejects")
    print(f"{'total':24s} {len(res.records):7d} records {len(res.rejects):6d} rejects "
          f"{len(res.errors)} source errors, {res.http_requests} HTTP requests")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
