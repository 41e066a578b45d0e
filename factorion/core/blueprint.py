"""Factorio blueprint exchange strings: decode, encode, flatten books, normalise 1.x to 2.0.

Format
------
An exchange string is the version byte ``"0"`` followed by ``base64(zlib(json))``. The game (2.0)
also imports plain JSON text, which :func:`decode` accepts too. The JSON object has exactly one
top-level key: ``blueprint``, ``blueprint_book``, ``upgrade_planner`` or ``deconstruction_planner``.
A book holds ``blueprints: [{"index": i, "blueprint" | "blueprint_book" | ...: {...}}]`` and books
nest to any depth.

A blueprint holds ``entities`` (each with a 1-based ``entity_number``, a ``name`` and a
``position {x, y}`` = the entity's centre; ``direction`` absent means north), optional ``tiles``,
``icons``, ``label`` and ``version`` = ``(major << 48) | (minor << 32) | (patch << 16) | dev``.

1.x → 2.0
---------
1.x has 8 directions (N0 E2 S4 W6), 2.0 has 16 (N0 E4 S8 W12), so ``dir_2_0 = 2 * dir_1_x``; some
entities were renamed (:data:`RENAMES_1_TO_2`). :func:`normalise_blueprint` applies both and stamps
the result as 2.0.0.0, which makes it idempotent. It does *not* migrate circuit/copper wires (1.x
``connections`` / ``neighbours`` stay as they are), item requests, or icon signal names.

Only the stdlib is used so that this module imports fast.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson

__all__ = [
    "BlueprintError",
    "Blueprint",
    "RENAMES_1_TO_2",
    "TOP_LEVEL_KEYS",
    "DEFAULT_MAX_BYTES",
    "decode",
    "encode",
    "parse_version",
    "version_int",
    "normalise_blueprint",
    "validate_entities",
    "entity_problem",
    "iter_blueprints",
    "load_blueprints",
    "make_blueprint",
]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # cap on the decompressed JSON size
TOP_LEVEL_KEYS = ("blueprint", "blueprint_book", "upgrade_planner", "deconstruction_planner")
PLANNER_KEYS = ("upgrade_planner", "deconstruction_planner")

# Entity prototypes renamed between 1.1 and 2.0 (the 2.0 rails are new types; old ones become legacy).
RENAMES_1_TO_2: dict[str, str] = {
    "stack-inserter": "bulk-inserter",
    "stack-filter-inserter": "bulk-inserter",
    "filter-inserter": "fast-inserter",
    "logistic-chest-active-provider": "active-provider-chest",
    "logistic-chest-passive-provider": "passive-provider-chest",
    "logistic-chest-storage": "storage-chest",
    "logistic-chest-buffer": "buffer-chest",
    "logistic-chest-requester": "requester-chest",
    "straight-rail": "legacy-straight-rail",
    "curved-rail": "legacy-curved-rail",
}


class BlueprintError(ValueError):
    """Any problem with a blueprint string or its contents; the message names the problem."""


# --------------------------------------------------------------------------- versions


def version_int(major: int, minor: int, patch: int, dev: int = 0) -> int:
    """Pack a version the way blueprints store it: 16 bits per part."""
    for part in (major, minor, patch, dev):
        if not 0 <= part < 1 << 16:
            raise BlueprintError(f"version part {part} out of range 0..65535")
    return (major << 48) | (minor << 32) | (patch << 16) | dev


def parse_version(v: int) -> tuple[int, int, int, int]:
    """Unpack a blueprint ``version`` integer into ``(major, minor, patch, dev)``."""
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64:
        raise BlueprintError(f"bad version field {v!r}: expected a 64-bit unsigned integer")
    return ((v >> 48) & 0xFFFF, (v >> 32) & 0xFFFF, (v >> 16) & 0xFFFF, v & 0xFFFF)


V2 = version_int(2, 0, 0, 0)


# --------------------------------------------------------------------------- strings


IGNORED_TOP_LEVEL_KEYS = ("index",)  # a string copied out of a book keeps its slot beside "blueprint"


def _check_top_level(obj: object) -> dict:
    if not isinstance(obj, dict):
        raise BlueprintError(f"not a JSON object: top level is {type(obj).__name__}")
    unknown = sorted(str(k) for k in obj if k not in TOP_LEVEL_KEYS and k not in IGNORED_TOP_LEVEL_KEYS)
    if unknown or not any(k in obj for k in TOP_LEVEL_KEYS):
        raise BlueprintError(f"unknown top-level key {unknown!r}; expected one of {TOP_LEVEL_KEYS}")
    return obj


def decode(text: str, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Decode an exchange string (``"0" + base64(zlib(json))``) or plain JSON text to its dict.

    Whitespace anywhere in an exchange string is ignored. The decompressed size is capped at
    ``max_bytes`` without ever allocating more than that (zlib bombs fail fast).
    """
    if isinstance(text, bytes | bytearray):
        text = text.decode("ascii", errors="replace")
    if not isinstance(text, str):
        raise BlueprintError(f"expected text, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise BlueprintError("empty input")
    if text.startswith("{"):
        raw: bytes | str = text
    else:
        if text[0] != "0":
            raise BlueprintError(f"unsupported version byte {text[0]!r} (expected '0' or plain JSON)")
        try:
            data = base64.b64decode("".join(text[1:].split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise BlueprintError(f"bad base64: {e}") from None
        d = zlib.decompressobj()
        try:
            raw = d.decompress(data, max_bytes + 1)
        except zlib.error as e:
            raise BlueprintError(f"bad zlib data: {e}") from None
        if len(raw) > max_bytes or d.unconsumed_tail:
            raise BlueprintError(f"too large: decompressed JSON exceeds {max_bytes} bytes")
        if not d.eof:
            raise BlueprintError("bad zlib data: truncated stream")
    if len(raw) > max_bytes:
        raise BlueprintError(f"too large: JSON text exceeds {max_bytes} bytes")
    try:
        obj = orjson.loads(raw)  # ~1.7x faster than json on the corpus; same results
    except orjson.JSONDecodeError:  # stricter than json (NaN, huge ints): let the stdlib decide
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, too deep
            raise BlueprintError(f"not JSON: {e}") from None
    return _check_top_level(obj)


def encode(obj: dict, level: int = 9) -> str:
    """Encode a blueprint dict (top-level key included) as an exchange string."""
    _check_top_level(obj)
    try:  # strict JSON: NaN and Infinity are not JSON, and the game would refuse them
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError as e:
        raise BlueprintError(f"cannot export: {e}") from None
    return "0" + base64.b64encode(zlib.compress(data, level)).decode("ascii")


# --------------------------------------------------------------------------- blueprints


@dataclass
class Blueprint:
    """One blueprint, flattened out of any books that held it."""

    label: str | None
    path: tuple[int, ...]  # index path through nested books; () for a top-level blueprint
    book_labels: tuple[str, ...]  # labels of the enclosing books, outermost first
    version: tuple[int, int, int, int] | None  # version of the source string (before normalising)
    entities: list[dict] = field(default_factory=list)
    raw: dict = field(default_factory=dict)  # the (normalised) value under "blueprint"


POSITION_LIMIT = float(1 << 31)  # |x|, |y| beyond this are no position (the game's map is +-1e6 tiles)


def validate_entities(entities: object) -> list[dict]:
    """Check every entity (see :func:`entity_problem`); return the list. BlueprintError names the
    first bad entity and field."""
    if entities is None:
        return []
    if not isinstance(entities, list):
        raise BlueprintError(f"'entities' is not a list but {type(entities).__name__}")
    for i, e in enumerate(entities):
        why = entity_problem(e)
        if why:
            num = e.get("entity_number") if isinstance(e, dict) else None
            raise BlueprintError(f"entity at index {i} (entity_number {_short_repr(num)}) {why}")
    return entities


def _short_repr(v: object, n: int = 40) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n - 3] + "..."


def entity_problem(e: object) -> str | None:
    """What is wrong with one blueprint entity dict, or None. Checked: a ``name`` (string); a
    ``position`` with finite numeric ``x`` and ``y`` within +-2^31; ``direction`` an integer 0..15;
    ``recipe`` and ``type`` strings; ``tags`` an object; ``infinity_settings`` an object whose
    ``filters`` is a list of objects with a string ``name``/``mode`` and a numeric ``count``."""
    if not isinstance(e, dict) or not isinstance(e.get("name"), str):
        return "has no name"
    pos = e.get("position")
    if not (isinstance(pos, dict) and _is_num(pos.get("x")) and _is_num(pos.get("y"))):
        return "has no position with numeric x and y"
    for axis in ("x", "y"):
        v = pos[axis]
        if not _finite(v) or abs(v) > POSITION_LIMIT:
            return f"has position.{axis} {_short_repr(v)}: not a finite number within +-2^31"
    d = e.get("direction")
    if d is not None and not (isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 16):
        return f"has direction {_short_repr(d)}: expected an integer 0..15"
    for key in ("recipe", "type"):
        if e.get(key) is not None and not isinstance(e[key], str):
            return f"has {key} {_short_repr(e[key])}: expected a string"
    if e.get("tags") is not None and not isinstance(e["tags"], dict):
        return f"has tags {_short_repr(e['tags'])}: expected an object"
    inf = e.get("infinity_settings")
    if inf is None:
        return None
    if not isinstance(inf, dict):
        return f"has infinity_settings {_short_repr(inf)}: expected an object"
    filters = inf.get("filters")
    if filters is not None and not isinstance(filters, list):
        return f"has infinity_settings.filters {_short_repr(filters)}: expected a list"
    for f in filters or []:
        if not isinstance(f, dict):
            return f"has an infinity filter {_short_repr(f)}: expected an object"
        for key, ok in (("name", isinstance(f.get("name"), str)), ("mode", isinstance(f.get("mode"), str)),
                        ("count", _is_num(f.get("count")) and _finite(f["count"]))):
            if f.get(key) is not None and not ok:
                return f"has an infinity filter {key} {_short_repr(f[key])}: expected a " \
                       + ("number" if key == "count" else "string")
    return None


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _finite(v: int | float) -> bool:
    return isinstance(v, int) or math.isfinite(v)  # math.isfinite(10**400) raises


def normalise_blueprint(bp: dict, default_version: int | None = None) -> dict:
    """Return a copy of blueprint dict ``bp`` (the value under "blueprint") in 2.0 conventions.

    A version with major < 2 (0.x and 1.x) gets entity directions doubled and entities renamed,
    and is re-stamped 2.0.0.0. ``default_version`` is used when ``bp`` has no ``version`` (a book's
    version, say); with neither, the blueprint is taken as already 2.0. Raises
    :class:`BlueprintError` on entities without name or position.

    The input is never mutated. The result and its entity dicts are new; values nested deeper
    (``items``, ``connections``, ``tiles``...) are shared with the input, as a deep copy would
    cost more than decoding the string did: ``copy.deepcopy`` the result before mutating those.
    """
    if not isinstance(bp, dict):
        raise BlueprintError(f"blueprint is not an object but {type(bp).__name__}")
    entities = validate_entities(bp.get("entities"))
    out = dict(bp)
    v = bp.get("version", default_version)
    if v is None or parse_version(v)[0] >= 2:
        if "entities" in bp:
            out["entities"] = [dict(e) for e in entities]
        return out
    if "entities" in bp:
        out["entities"] = [_entity_1_to_2(e) for e in entities]
    out["version"] = V2
    return out


def _entity_1_to_2(e: dict) -> dict:
    e = dict(e)
    e["name"] = RENAMES_1_TO_2.get(e["name"], e["name"])
    if e.get("direction"):  # an integer (validate_entities); null and 0 stay as they are
        e["direction"] = 2 * e["direction"]
    return e


def iter_blueprints(obj: dict, normalise: bool = True) -> Iterator[Blueprint]:
    """Yield every blueprint in a decoded dict, flattening books to any depth.

    Planners are skipped. ``path`` uses each book entry's ``index`` when present, else its
    position in the list. Entities are validated whether or not ``normalise`` is set.
    """
    yield from _walk(_check_top_level(obj), (), (), None, normalise)


def _walk(node: dict, path, labels, inherited_version, normalise) -> Iterator[Blueprint]:
    if "blueprint" in node:
        bp = node["blueprint"]
        if not isinstance(bp, dict):
            raise BlueprintError(f"blueprint at path {path} is not an object")
        v = bp.get("version", inherited_version)
        if bp.get("label") is not None and not isinstance(bp["label"], str):
            raise BlueprintError(f"blueprint at path {path} has label {_short_repr(bp['label'])}: "
                                 "expected a string")
        if normalise:
            bp = normalise_blueprint(bp, inherited_version)
        else:
            validate_entities(bp.get("entities"))
        yield Blueprint(
            label=bp.get("label"),
            path=path,
            book_labels=labels,
            version=parse_version(v) if v is not None else None,
            entities=bp.get("entities") or [],
            raw=bp,
        )
    elif "blueprint_book" in node:
        book = node["blueprint_book"]
        if not isinstance(book, dict):
            raise BlueprintError(f"blueprint book at path {path} is not an object")
        v = book.get("version", inherited_version)
        label = book.get("label")
        if label is not None and not isinstance(label, str):
            raise BlueprintError(f"blueprint book at path {path} has label {_short_repr(label)}: "
                                 "expected a string")
        entries = book.get("blueprints")
        if entries is not None and not isinstance(entries, list):
            raise BlueprintError(f"blueprint book at path {path} has blueprints {_short_repr(entries)}: "
                                 "expected a list")
        sub_labels = (*labels, label or "")
        for pos, entry in enumerate(entries or []):
            if not isinstance(entry, dict):
                raise BlueprintError(f"book entry {pos} at path {path} is not an object")
            idx = entry.get("index", pos)
            if not isinstance(idx, int) or isinstance(idx, bool):
                idx = pos
            yield from _walk(entry, (*path, idx), sub_labels, v, normalise)


def load_blueprints(text: str, normalise: bool = True, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Blueprint]:
    """Decode ``text`` and return all its blueprints (see :func:`iter_blueprints`)."""
    return list(iter_blueprints(decode(text, max_bytes), normalise=normalise))


def make_blueprint(
    entities: list[dict],
    label: str | None = None,
    version: tuple[int, int, int, int] = (2, 0, 0, 0),
    **extra,
) -> dict:
    """Build ``{"blueprint": {...}}`` from entities, numbering them 1..n; ``extra`` keys
    (``icons``, ``tiles``, ``wires``...) go into the blueprint dict. ``label=None`` omits the label."""
    ents = [
        {"entity_number": i, **{k: copy.deepcopy(v) for k, v in e.items() if k != "entity_number"}}
        for i, e in enumerate(entities, 1)
    ]
    validate_entities(ents)
    bp: dict = {"item": "blueprint"}
    if label is not None:
        bp["label"] = label
    bp["entities"] = ents
    bp.update(extra)
    bp["version"] = version_int(*version)
    return {"blueprint": bp}
