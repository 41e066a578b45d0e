"""Write stage of ``make data``: THE schema of the dataset, the split, and atomic Parquet output.

This module is the one documented place for the schema: :data:`EXAMPLE_SCHEMA`,
:data:`BLUEPRINT_SCHEMA` and :data:`REJECT_SCHEMA` carry a description on every field (Parquet field
metadata ``doc``), and the dataset card prints them from there (:func:`schema_markdown`).

Layout of ``--out`` (default ``data/out``)::

    examples/train/part-00000.parquet ...   one row per example (EXAMPLE_SCHEMA)
    examples/val/...  examples/test/...
    blueprints.parquet                      one row per kept (deduplicated) blueprint
    rejects.parquet                         what was rejected or skipped, and why
    stats.json  card.md  samples.png        run figures, the dataset card, sample windows

Every file is written to a temporary name and ``os.replace``-d into place, and the whole ``--out``
folder is built in a staging folder beside it (``.<out>.staging-<pid>``) and swapped in at the end in
one atomic exchange (:func:`swap_in`), so readers never see a half-written dataset nor a mix of two
runs, and a failed run leaves the previous dataset as it was. Rows are buffered per split and
written as row groups of ``rows_per_group``, a new part file every
``rows_per_file`` rows: memory stays bounded whatever the corpus size. ``pandas.read_parquet
("data/out/examples")`` reads every split (column ``split``), ``pandas.read_parquet
("data/out/examples/train")`` one.

Grids: ``grid`` (the complete window) and ``start_grid`` (the window with the level's entities removed)
are the raw bytes of a C-ordered little-endian ``int16`` array of shape ``grid_shape`` = (C, H, W), the
channels of :mod:`factorion.core.world` (KIND, DIR, ITEM, RECIPE, IO, PART)::

    grid = np.frombuffer(row["grid"], "<i2").reshape(row["grid_shape"])

Split: by source blueprint, never by window. ``split_of(bp_id, seed)`` maps the sha256 of
``"{seed}:{bp_id}"`` to [0, 1) and cuts it at the cumulative fractions (default 0.8 / 0.1 / 0.1), so
every window and example of one blueprint (content hash) lands in one split, the same for a given seed
on any machine, and adding blueprints never moves the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from factorion.core.files import atomic_target, temp_path, write_bytes_atomic

__all__ = ["EXAMPLE_SCHEMA", "BLUEPRINT_SCHEMA", "REJECT_SCHEMA", "SPLITS", "split_of", "SplitWriter",
           "write_table_atomic", "write_bytes_atomic", "atomic_target", "schema_markdown", "swap_in",
           "staging_path", "prepare_out"]

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def _f(name: str, typ: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, typ, nullable=nullable, metadata={"doc": doc})


_ENTITY_FIELDS = [
    _f("name", pa.string(), "prototype name, or source / sink / obstacle"),
    _f("y", pa.int16(), "anchor (top-left) cell row in the window"),
    _f("x", pa.int16(), "anchor (top-left) cell column in the window"),
    _f("direction", pa.int8(), "cardinal direction 0 N, 1 E, 2 S, 3 W (world.DIR)"),
    _f("recipe", pa.string(), "assembler recipe, else null"),
    _f("io", pa.int8(), "undergrounds: 1 input, 2 output; else 0"),
    _f("item", pa.string(), "source / sink item, else null"),
]
ENTITY = pa.struct(_ENTITY_FIELDS)
ACTION = pa.struct([_f("op", pa.string(), "place | remove"), *_ENTITY_FIELDS])

EXAMPLE_SCHEMA = pa.schema([
    _f("example_id", pa.string(), "unique: {bp_id}-{size}-{top}-{left}-L{level}", False),
    _f("bp_id", pa.string(), "blueprint id = content hash of the normalised entity list (pipeline.decode)",
       False),
    _f("split", pa.string(), "train / val / test, by bp_id (write.split_of)", False),
    _f("source", pa.string(), "provenance: source name (data/sources.toml, or the --blueprints folder)"),
    _f("key", pa.string(), "provenance: key within the source (Firebase key, file path, URL)"),
    _f("bp_path", pa.string(), "index path of the blueprint inside nested books, '/'-joined ('' = top)"),
    _f("label", pa.string(), "the blueprint's own label"),
    _f("title", pa.string(), "provenance: title of the page / file"),
    _f("author", pa.string(), "provenance: author (display name, or repository owner)"),
    _f("url", pa.string(), "provenance: where the string came from"),
    _f("version", pa.string(), "game version of the source string (before normalising to 2.0)"),
    _f("bp_height", pa.int32(), "height of the whole rasterised blueprint (tiles)"),
    _f("bp_width", pa.int32(), "width of the whole rasterised blueprint (tiles)"),
    _f("window_top", pa.int32(), "window origin row in the blueprint grid (negative: padded)"),
    _f("window_left", pa.int32(), "window origin column in the blueprint grid"),
    _f("window_size", pa.int16(), "window side (square), tiles"),
    _f("grid_shape", pa.list_(pa.int32(), 3), "(C, H, W) of grid and start_grid"),
    _f("grid", pa.binary(), "the complete window: int16 little-endian (C, H, W) bytes, edge fix-ups done"),
    _f("start_grid", pa.binary(), "the window with this example's entities removed (same encoding)"),
    _f("level", pa.int8(), "curriculum level: 1 complete, 3 one entity removed, 4 N removed, "
       "5 all modelled entities removed (the whole build)"),
    _f("n_removed", pa.int16(), "number of removed entities (= len(targets))"),
    _f("targets", pa.list_(ENTITY), "the removed entities (what restores the window)"),
    _f("actions", pa.list_(ACTION), "expert action sequence from start_grid to grid (empty: nothing to do)"),
    _f("reference_throughput", pa.float32(), "items/s of the complete window (factorion.sim); NaN: no sim"),
    _f("start_throughput", pa.float32(), "items/s of start_grid; NaN: no simulator"),
    _f("n_entities", pa.int16(), "modelled entities in the complete window (no sources, sinks, obstacles)"),
    _f("n_sources", pa.int16(), "source cells in the window (edge belts entering it, the blueprint's own)"),
    _f("n_sinks", pa.int16(), "sink cells in the window (edge belts leaving it, and the blueprint's own)"),
    _f("n_edge_placeholder", pa.int16(), "edge cells whose item could not be inferred (placeholder item)"),
    _f("items", pa.list_(pa.string()), "items of the window's sources and sinks, sorted"),
    _f("recipes", pa.list_(pa.string()), "recipes of the window's assemblers, sorted"),
])

BLUEPRINT_SCHEMA = pa.schema([
    _f("bp_id", pa.string(), "content hash (pipeline.decode.content_hash)", False),
    _f("split", pa.string(), "train / val / test", False),
    _f("source", pa.string(), "provenance: source name"),
    _f("key", pa.string(), "provenance: key within the source"),
    _f("bp_path", pa.string(), "index path inside nested books"),
    _f("label", pa.string(), "the blueprint's label"),
    _f("book_labels", pa.list_(pa.string()), "labels of the enclosing books, outermost first"),
    _f("title", pa.string(), "provenance: title"),
    _f("author", pa.string(), "provenance: author"),
    _f("url", pa.string(), "provenance: URL"),
    _f("version", pa.string(), "game version of the source string"),
    _f("n_entities", pa.int32(), "entities in the blueprint"),
    _f("height", pa.int32(), "rasterised height"),
    _f("width", pa.int32(), "rasterised width"),
    _f("n_windows", pa.int32(), "windows kept (all sizes)"),
    _f("n_examples", pa.int32(), "example rows written"),
])

REJECT_SCHEMA = pa.schema([
    _f("source", pa.string(), "source name"),
    _f("key", pa.string(), "key within the source"),
    _f("path", pa.string(), "book index path ('' = the whole string)"),
    _f("stage", pa.string(), "download | decode | dedup | chunk"),
    _f("reason", pa.string(), "category (pipeline.decode.REASONS)"),
    _f("detail", pa.string(), "the full message"),
    _f("bp_id", pa.string(), "content hash when known"),
])


def split_of(bp_id: str, seed: int = 0, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """Deterministic, hash-based split of one blueprint id."""
    h = hashlib.sha256(f"{seed}:{bp_id}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2.0 ** 64
    total = float(sum(fractions))
    acc = 0.0
    for name, frac in zip(SPLITS, fractions, strict=True):
        acc += frac / total
        if u < acc:
            return name
    return SPLITS[len(fractions) - 1]


def schema_markdown(schema: pa.Schema) -> str:
    """A Markdown table of a schema's fields (name, type, doc)."""
    lines = ["| column | type | meaning |", "| --- | --- | --- |"]
    for f in schema:
        doc = (f.metadata or {}).get(b"doc", b"").decode()
        lines.append(f"| `{f.name}` | `{f.type}` | {doc} |")
    return "\n".join(lines)


def write_table_atomic(table: pa.Table, path: str | os.PathLike, compression: str = "zstd") -> Path:
    with atomic_target(path) as tmp:
        pq.write_table(table, tmp, compression=compression)
    return Path(path)


class _PartWriter:
    """Part files of one split: row groups of ``rows_per_group``, a new file every ``rows_per_file``."""

    def __init__(self, folder: Path, schema: pa.Schema, rows_per_group: int, rows_per_file: int,
                 compression: str):
        self.folder, self.schema = folder, schema
        self.rows_per_group, self.rows_per_file, self.compression = rows_per_group, rows_per_file, compression
        self.buffer: list[dict] = []
        self.writer: pq.ParquetWriter | None = None
        self.tmp: Path | None = None
        self.final: Path | None = None
        self.in_file = 0
        self.parts = 0
        self.rows = 0

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.rows_per_group:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.final = self.folder / f"part-{self.parts:05d}.parquet"
            self.tmp = temp_path(self.final)
            self.writer = pq.ParquetWriter(self.tmp, self.schema, compression=self.compression)
            self.parts += 1
        table = pa.Table.from_pylist(self.buffer, schema=self.schema)
        self.writer.write_table(table, row_group_size=len(self.buffer))
        self.rows += len(self.buffer)
        self.in_file += len(self.buffer)
        self.buffer = []
        if self.in_file >= self.rows_per_file:
            self._close_file()

    def _close_file(self) -> None:
        if self.writer is not None:
            self.writer.close()
            os.replace(self.tmp, self.final)
            self.writer = None
            self.in_file = 0

    def close(self) -> None:
        self.flush()
        self._close_file()

    def abort(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.writer = None


class SplitWriter:
    """Example rows -> ``<root>/<split>/part-NNNNN.parquet`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, schema: pa.Schema = EXAMPLE_SCHEMA,
                 rows_per_group: int = 2048, rows_per_file: int = 100_000, compression: str = "zstd"):
        self.root = Path(root)
        self.parts = {s: _PartWriter(self.root / s, schema, rows_per_group, rows_per_file, compression)
                      for s in SPLITS}

    def add(self, row: dict) -> None:
        self.parts[row["split"]].add(row)

    def close(self) -> dict[str, int]:
        for p in self.parts.values():
            p.close()
        return {s: p.rows for s, p in self.parts.items()}

    def abort(self) -> None:
        for p in self.parts.values():
            p.abort()

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


DATASET_NAMES = frozenset({"examples", "blueprints.parquet", "rejects.parquet", "stats.json", "card.md",
                           "samples.png"})


def staging_path(out: Path) -> Path:
    """Where a run builds the next ``out``: a hidden sibling named after this process."""
    out = Path(out)
    return out.with_name(f".{out.name}.staging-{os.getpid()}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is no longer running
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def prepare_out(out: Path) -> None:
    """Before a run: refuse an ``out`` that exists and is no dataset (it would be replaced whole);
    put back a dataset a killed swap left aside; remove the staging folders of dead runs."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if out.is_dir():
        strange = sorted(p.name for p in out.iterdir() if p.name not in DATASET_NAMES
                         and not p.name.startswith("."))
        if strange:
            raise ValueError(f"--out {out} holds {strange[:3]}, not a dataset: it is replaced whole, "
                             "so name an empty or dataset folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    for p in sorted(out.parent.glob(f".{out.name}.*-*")):
        kind, _, pid = p.name[len(out.name) + 2:].rpartition("-")
        if kind not in ("staging", "old") or not pid.isdigit() or pid_alive(int(pid)):
            continue
        if kind == "old" and not out.exists():
            os.replace(p, out)  # killed between the two renames of the fallback swap
        else:
            shutil.rmtree(p, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def swap_in(staged: Path, final: Path) -> None:
    """Replace folder ``final`` by the complete folder ``staged`` in one step: a rename when there is
    no ``final``, else an atomic exchange of the two (Linux), then the old tree is deleted. Where the
    exchange is unsupported: the old one is renamed aside, the new one in, the old one deleted
    (:func:`prepare_out` puts the old one back if a kill falls between the two renames)."""
    staged, final = Path(staged), Path(final)
    if not final.exists():
        os.replace(staged, final)
        return
    if _exchange(staged, final):
        shutil.rmtree(staged, ignore_errors=True)  # it now holds the old tree
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)
