"""Decode stage of ``make data``: raw strings -> every blueprint of every (nested) book, 2.0-normalised,
with a content hash; failures become :class:`RejectRow` rows and the run goes on.

* Decoding: ``"0" + base64(zlib(json))`` or plain JSON, with the checks of
  :func:`factorion.core.blueprint.decode` (decompressed size cap, top-level key). JSON is parsed with
  ``orjson`` when it is installed (2.5x faster on the corpus), else with the stdlib.
* Books are walked here rather than with :func:`factorion.core.blueprint.iter_blueprints` so that one bad
  blueprint in a book is rejected alone (with its book path) and its siblings are kept. A planner string
  is a ``planner`` reject; planners inside books are skipped silently; an empty book is a reject.
* Normalisation: as :func:`factorion.core.blueprint.normalise_blueprint` (1.x -> 2.0 directions and names),
  done by :func:`normalise_in_place` in one pass that also collects the hash rows (the decoded dicts
  are ours, so no copy; a test checks the result equals ``normalise_blueprint``'s).
* Content hash (the blueprint id): :func:`content_hash` -- the sha256 of the *normalised entity list*
  with entity numbers, wires and everything cosmetic dropped, positions made relative to the
  blueprint's minimum x / y, and the list sorted. The same blueprint in two books (or moved, or
  re-exported with its entities in another order) gets the same id and is kept once.

Reject reasons are short categories (``reason``) plus the full message (``detail``); see
:data:`REASONS`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from factorion.core.blueprint import (
    DEFAULT_MAX_BYTES,
    PLANNER_KEYS,
    RENAMES_1_TO_2,
    V2,
    BlueprintError,
    decode,
    normalise_blueprint,
    parse_version,
)

try:  # optional speed-up; the stdlib is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

HAVE_ORJSON = _orjson is not None

__all__ = ["DecodedBlueprint", "RejectRow", "REASONS", "decode_text", "decode_record", "content_hash",
           "ID_HEX"]

ID_HEX = 16  # blueprint ids are the first 16 hex digits (64 bits) of the sha256

# reason categories (the ``reason`` column); ``detail`` keeps the full message
REASONS = {
    "empty": "empty input",
    "bad-version-byte": "neither '0' + base64 nor plain JSON",
    "bad-base64": "base64 does not decode",
    "bad-zlib": "zlib stream broken or truncated",
    "too-large": "decompressed JSON over the size cap",
    "bad-json": "not JSON",
    "bad-top-level": "not a blueprint/book/planner object",
    "bad-blueprint": "blueprint or book entry is not an object, bad version field",
    "bad-entity": "an entity without name or numeric position",
    "empty-book": "a book with no blueprint in it",
    "planner": "an upgrade or deconstruction planner, not a blueprint",
    "no-entities": "a blueprint with no entities (tiles only, or empty)",
    "duplicate": "same content hash as a blueprint kept earlier (not an error)",
    "rasterise": "the world cannot be built (overlapping entities)",
    "no-windows": "no window passed the filters (not an error)",
    "download": "rejected by the download stage",
    "internal": "an unexpected exception while processing (a bug: please report)",
}


@dataclass(slots=True)
class RejectRow:
    """One row of the rejects table."""

    source: str
    key: str
    path: str  # book index path, "/"-joined ("" = the whole string / a top-level blueprint)
    stage: str  # download | decode | dedup | chunk
    reason: str  # a key of REASONS
    detail: str = ""
    bp_id: str = ""


@dataclass(slots=True)
class DecodedBlueprint:
    """A normalised blueprint and where it came from."""

    bp_id: str
    path: str
    label: str
    book_labels: tuple[str, ...]
    version: str  # of the source string, "1.1.61.0"; "" when absent
    raw: dict = field(repr=False)  # the normalised dict under "blueprint"
    n_entities: int = 0


def decode_text(text: str, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Decode an exchange string or plain JSON to its top-level dict (``factorion.core.blueprint.decode``)."""
    return decode(text, max_bytes)


def reason_of(message: str) -> str:
    """The reason category of a BlueprintError message."""
    m = message.lower()
    for needle, reason in (("empty input", "empty"), ("version byte", "bad-version-byte"),
                           ("base64", "bad-base64"), ("zlib", "bad-zlib"), ("too large", "too-large"),
                           ("not json", "bad-json"), ("top-level", "bad-top-level"),
                           ("has no name", "bad-entity"), ("has no position", "bad-entity"),
                           ("'entities'", "bad-entity")):
        if needle in m:
            return reason
    return "bad-blueprint"


def content_hash(entities: list[dict]) -> str:
    """Blueprint id: sha256 (first :data:`ID_HEX` hex digits) of the normalised entity list.

    Each entity contributes (name, x - min x, y - min y, direction, recipe, type, and -- when present --
    the fields that change behaviour: filters, filter mode, priorities, infinity settings, bar);
    entity numbers, wires, tags, items and the entity order do not count.
    """
    return _hash_rows([_row(e) for e in entities])


def _row(e: dict) -> tuple:
    p = e["position"]
    extra = ""
    if len(e) > 3 and not _PLAIN_KEYS.issuperset(e):  # a field that changes behaviour
        d = {k: e[k] for k in _HASH_EXTRA if k in e}
        extra = _dumps_sorted(d) if d else ""
    return (e["name"], p["x"], p["y"], e.get("direction") or 0, e.get("recipe") or "", e.get("type") or "",
            extra)


def _hash_rows(rows: list[tuple]) -> str:
    if rows:
        mx = min(r[1] for r in rows)
        my = min(r[2] for r in rows)
        rows = [(r[0], r[1] - mx, r[2] - my, *r[3:]) for r in rows]
        rows.sort()
    return hashlib.sha256(_dumps_sorted(rows).encode()).hexdigest()[:ID_HEX]


_HASH_EXTRA = ("filter", "filters", "use_filters", "filter_mode", "infinity_settings", "input_priority",
               "output_priority", "bar", "request_filters")
_PLAIN_KEYS = frozenset(("entity_number", "name", "position", "direction", "recipe", "type", "connections",
                         "neighbours", "items", "tags", "control_behavior", "quality", "mirror",
                         "recipe_quality", "orientation", "color", "station", "player_description"))
_NUM = (int, float)


def normalise_in_place(bp: dict, default_version: Any = None) -> list[tuple]:
    """:func:`factorion.core.blueprint.normalise_blueprint`, but in place (the decoded dict is ours) and in
    one pass that also returns the hash rows; the same result (a test checks it on the corpus), the
    same errors (an invalid blueprint is handed to ``normalise_blueprint`` itself for its message)."""
    ents = bp.get("entities")
    v = bp.get("version", default_version)
    if type(ents) is not list or (v is not None and type(v) is not int):
        normalise_blueprint(bp, default_version)  # raises the project's error, or copes
        ents = ents or []
    old = v is not None and parse_version(v)[0] < 2
    rows = []
    renames = RENAMES_1_TO_2
    for e in ents:
        if type(e) is not dict:
            return _fallback(bp, default_version)
        name, p = e.get("name"), e.get("position")
        if type(name) is not str or type(p) is not dict or type(p.get("x")) not in _NUM \
                or type(p.get("y")) not in _NUM:
            return _fallback(bp, default_version)
        if old:
            e["name"] = name = renames.get(name, name)
            if "direction" in e:
                if type(e["direction"]) is not int:  # the project's normaliser names the bad field
                    return _fallback(bp, default_version)
                e["direction"] = 2 * e["direction"]
        extra = ""
        if len(e) > 3 and not _PLAIN_KEYS.issuperset(e):
            d = {k: e[k] for k in _HASH_EXTRA if k in e}
            extra = _dumps_sorted(d) if d else ""
        rows.append((name, p["x"], p["y"], e.get("direction") or 0, e.get("recipe") or "",
                     e.get("type") or "", extra))
    if old:
        bp["version"] = V2
    return rows


def _fallback(bp: dict, default_version: Any) -> list[tuple]:
    norm = normalise_blueprint(bp, default_version)  # raises BlueprintError with the project's message
    bp.clear()
    bp.update(norm)
    return [_row(e) for e in bp.get("entities") or []]


def _dumps_sorted(obj: Any) -> str:
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, option=_orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            pass
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _version_str(v: Any) -> str:
    if v is None:
        return ""
    try:
        return ".".join(map(str, parse_version(v)))
    except BlueprintError:
        return ""


def _walk(node: dict, path: tuple, labels: tuple, inherited: Any, out: list, rejects: list,
          source: str, key: str) -> None:
    spath = "/".join(map(str, path))
    if "blueprint" in node:
        bp = node["blueprint"]
        try:
            if not isinstance(bp, dict):
                raise BlueprintError(f"blueprint at path {path} is not an object")
            v = bp.get("version", inherited)
            version = _version_str(v)
            if v is not None:
                parse_version(v)  # raises on a malformed version field
            rows = normalise_in_place(bp, inherited)
        except BlueprintError as e:
            rejects.append(RejectRow(source, key, spath, "decode", reason_of(str(e)), str(e)))
            return
        if not rows:
            rejects.append(RejectRow(source, key, spath, "decode", "no-entities",
                                     "blueprint has no entities"))
            return
        label = bp.get("label")
        out.append(DecodedBlueprint(_hash_rows(rows), spath, label if isinstance(label, str) else "",
                                    labels, version, bp, len(rows)))
    elif "blueprint_book" in node:
        book = node["blueprint_book"]
        if not isinstance(book, dict):
            rejects.append(RejectRow(source, key, spath, "decode", "bad-blueprint",
                                     f"blueprint book at path {path} is not an object"))
            return
        entries = book.get("blueprints") or []
        if not isinstance(entries, list):
            entries = []
        v = book.get("version", inherited)
        lab = book.get("label")
        sub = (*labels, lab if isinstance(lab, str) else "")
        before = len(out) + len(rejects)
        for pos, entry in enumerate(entries):
            if not isinstance(entry, dict):
                why = f"book entry {pos} at path {path} is not an object"
                where = "/".join(map(str, (*path, pos)))
                rejects.append(RejectRow(source, key, where, "decode", "bad-blueprint", why))
                continue
            idx = entry.get("index", pos)
            _walk(entry, (*path, idx), sub, v, out, rejects, source, key)
        if len(out) + len(rejects) == before and not any(
                isinstance(e, dict) and any(k in e for k in PLANNER_KEYS) for e in entries):
            rejects.append(RejectRow(source, key, spath, "decode", "empty-book", "book holds no blueprint"))
    # planners: not blueprints, skipped without a reject


def decode_record(text: str, source: str = "", key: str = "",
                  max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[list[DecodedBlueprint], list[RejectRow]]:
    """All blueprints of one raw string, deduplicated within it (first occurrence kept), and rejects."""
    rejects: list[RejectRow] = []
    try:
        obj = decode_text(text, max_bytes)
    except BlueprintError as e:
        return [], [RejectRow(source, key, "", "decode", reason_of(str(e)), str(e))]
    if any(k in obj for k in PLANNER_KEYS):
        return [], [RejectRow(source, key, "", "decode", "planner", f"a {next(iter(obj))}, not a blueprint")]
    found: list[DecodedBlueprint] = []
    _walk(obj, (), (), None, found, rejects, source, key)
    seen: set[str] = set()
    out = []
    for bp in found:
        if bp.bp_id in seen:
            rejects.append(RejectRow(source, key, bp.path, "dedup", "duplicate",
                                     f"same content as blueprint {bp.bp_id} earlier in this string",
                                     bp.bp_id))
            continue
        seen.add(bp.bp_id)
        out.append(bp)
    return out, rejects
