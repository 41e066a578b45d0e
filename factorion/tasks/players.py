"""Whole player-made factories as level-5 tasks: the reference is the player's own design.

A blueprint qualifies when it is small (its bounding box at most ``max_size - 2`` tiles a side),
holds at least one assembling machine or furnace, and its inputs and outputs can be read from
the blueprint itself:

* tagged or filtered infinity chests are sources and sinks already (``blueprint_world.from_blueprint``);
* the world is padded by one empty cell on every side; a belt, underground entrance or splitter
  whose back faces the blueprint's edge (a belt entering the factory) gets a **source** right
  behind it, in the padding, when inserters take an item from its belt system into a machine;
  a belt, underground exit or splitter pointing out of the edge (a belt leaving) gets a **sink**
  right in front of it when machines drop an item onto its belt system;
* the item is read off the belt system (belt-likes linked front to back, undergrounds to their
  partners): what inserters take from it into machines (the recipe's ingredients; a furnace:
  iron ore) for a source, what inserters drop onto it out of machines (the recipe's product; a
  furnace: iron plate) for a sink. Several sources on one belt system take its ingredients in
  turn (two items side-loaded onto one belt). No sink takes an item a source gives (a belt
  passing through would let a build skip the factory). Chests are not read (their items are
  unknown).

The player's design (padded, with those sources and sinks) must deliver something in the
simulator; its throughput is the task's reference, and the task's world keeps only the sources,
sinks and obstacles (level 5). Sources are unlimited, so a build may beat the player.

Split by blueprint like ``make data``: ``split_of`` of a hash of the blueprint's entities
(train / val / test = 0.8 / 0.1 / 0.1), so the held-out factories are never trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from factorion.core import blueprint_world as BW
from factorion.core import gamedata as gd
from factorion.core.world import IO_INPUT, IO_OUTPUT, SINK, SOURCE, Entity, World
from factorion.tasks.base import (
    BELT_NAMES,
    BELTLIKE,
    INSERTER_NAMES,
    SPLITTER_NAMES,
    UGS,
    Task,
    cells_of,
    fixed_only,
    fronts,
    in_bounds,
    inserter_cells,
    step,
    ug_partner,
    world_items,
)

SPLITS = ("train", "val", "test")
FRACTIONS = (0.8, 0.1, 0.1)
MACHINE_NAMES = frozenset(gd.ASSEMBLERS + gd.FURNACES)


def split_of(bp_id: str, seed: int = 0) -> str:
    """Deterministic hash split of one blueprint id (the formula of ``make data``'s split)."""
    u = int.from_bytes(hashlib.sha256(f"{seed}:{bp_id}".encode()).digest()[:8], "big") / 2.0 ** 64
    acc = 0.0
    for name, frac in zip(SPLITS, FRACTIONS, strict=True):
        acc += frac
        if u < acc:
            return name
    return SPLITS[-1]


def blueprint_id(entities: list[dict]) -> str:
    """sha256 of the entities' names, positions (from the top-left one), directions and recipes."""
    rows = [(e["name"], e["position"]["x"], e["position"]["y"], e.get("direction") or 0,
             e.get("recipe") or "") for e in entities]
    if rows:
        mx, my = min(r[1] for r in rows), min(r[2] for r in rows)
        rows = sorted((r[0], r[1] - mx, r[2] - my, *r[3:]) for r in rows)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def pad(world: World) -> World:
    """``world`` with one empty cell added on every side."""
    H, W = world.shape
    out = World(H + 2, W + 2)
    out.grid[:, 1:-1, 1:-1] = world.grid
    for raw in world.obstacles:
        p = raw["position"]
        out.obstacles.append({**raw, "position": {"x": p["x"] + 1, "y": p["y"] + 1}})
    out.rates = {(y + 1, x + 1): r for (y, x), r in world.rates.items()}
    return out


class _Systems:
    """Belt systems (union-find over belt-like entities linked front to back) and the items
    machines take from (``takes``) and drop onto (``gets``) each."""

    def __init__(self, world: World):
        self.world = world
        ents = world.entities(obstacles=False)
        self.parent = {e: e for e in ents if e.name in BELTLIKE}
        for e in self.parent:
            for c, _ in fronts(e):
                o = world.entity_at(*c) if in_bounds(world, c) else None
                if o in self.parent:
                    self._union(e, o)
            if e.name in UGS and e.io == IO_INPUT and (o := ug_partner(world, e)) is not None:
                self._union(e, o)
        self.takes: dict[Entity, Counter] = {}
        self.gets: dict[Entity, Counter] = {}
        for e in ents:
            if e.name in INSERTER_NAMES:
                self._vote(e)

    def find(self, e: Entity) -> Entity:
        while self.parent[e] != e:
            self.parent[e] = self.parent[self.parent[e]]
            e = self.parent[e]
        return e

    def _union(self, a: Entity, b: Entity) -> None:
        self.parent[self.find(a)] = self.find(b)

    def _vote(self, ins: Entity) -> None:
        p, q = inserter_cells(ins)
        w = self.world
        ep = w.entity_at(*p) if in_bounds(w, p) else None
        eq = w.entity_at(*q) if in_bounds(w, q) else None
        if ep in self.parent and eq is not None and eq.name in MACHINE_NAMES:
            items = [i for i, _ in gd.recipe(eq.recipe).ingredients] if eq.recipe else ["iron-ore"]
            self.takes.setdefault(self.find(ep), Counter()).update({i: 1 / len(items) for i in items})
        if eq in self.parent and ep is not None and ep.name in MACHINE_NAMES:
            res = gd.recipe(ep.recipe).results if ep.recipe else (("iron-plate", 1),)
            if res:
                self.gets.setdefault(self.find(eq), Counter()).update({res[0][0]: 1})


def _edge(world: World, c: tuple[int, int]) -> bool:
    """Whether cell ``c`` of a padded world is padding."""
    H, W = world.shape
    return c[0] in (0, H - 1) or c[1] in (0, W - 1)


def read_ports(world: World) -> tuple[int, int]:
    """Add the sources and sinks a padded player world's edge belts imply (module docstring);
    returns (sources, sinks) added."""
    sys = _Systems(world)
    heads: dict[Entity, list[tuple[int, int]]] = {}
    ends: list[tuple[tuple[int, int], str]] = []
    for e in list(sys.parent):
        root = sys.find(e)
        if e.name in BELT_NAMES or e.name in SPLITTER_NAMES or (e.name in UGS and e.io == IO_INPUT):
            for c in cells_of(e):
                b = step(c, (e.direction + 2) % 4)
                if _edge(world, b) and world.entity_at(*b) is None and root in sys.takes:
                    heads.setdefault(root, []).append(b)
        if e.name in BELT_NAMES or e.name in SPLITTER_NAMES or (e.name in UGS and e.io == IO_OUTPUT):
            for c, _ in fronts(e):
                if _edge(world, c) and world.entity_at(*c) is None and root in sys.gets:
                    ends.append((c, sys.gets[root].most_common(1)[0][0]))
    n_src = 0
    for root, cells in heads.items():
        items = [i for i, _ in sys.takes[root].most_common()]
        for j, c in enumerate(sorted(set(cells))):
            world.place(Entity(SOURCE, *c, item=items[j % len(items)]))
            n_src += 1
    done = set()
    sourced = {e.item for e in world.entities(obstacles=False) if e.name == SOURCE}
    for c, item in ends:
        if c not in done and item not in sourced:  # a pass-through belt would let a build skip the factory
            world.place(Entity(SINK, *c, item=item))
            done.add(c)
    return n_src, len(done)


@dataclass
class PlayerFactory:
    id: str            # blueprint id (hash)
    name: str          # where it came from (file and index)
    split: str
    task: Task         # level 5: sources, sinks and obstacles; solution = the player's design
    machines: int


def player_task(bp_raw: dict, max_size: int = 32) -> tuple[Task, int] | None:
    """(level-5 task, machines) of one blueprint dict, or None when it does not qualify."""
    from factorion.sim import throughput
    ents = bp_raw.get("entities") or []
    if not ents or len(ents) > max_size * max_size:
        return None
    xs = [e["position"]["x"] for e in ents]
    ys = [e["position"]["y"] for e in ents]
    if max(xs) - min(xs) > max_size - 2 or max(ys) - min(ys) > max_size - 2:
        return None  # quick bound before rasterising (positions are entity centres)
    if not any(e.get("name") in MACHINE_NAMES for e in ents):
        return None
    world = BW.from_blueprint(bp_raw)
    if max(world.shape) > max_size - 2:
        return None
    world = pad(world)
    read_ports(world)
    kinds = Counter(e.name for e in world.entities(obstacles=False))
    machines = sum(kinds[m] for m in MACHINE_NAMES)
    if not kinds[SOURCE] or not kinds[SINK] or not machines:
        return None
    ref = float(throughput(world))
    if ref <= 1e-6:
        return None
    recipes = tuple(sorted({e.recipe for e in world.entities(obstacles=False) if e.recipe}))
    task = Task("player", 5, 0, fixed_only(world), world, ref, [], recipes, world_items(world))
    return task, machines


def corpus_files(root: str | Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*.txt") if p.name != "MANIFEST.txt")


def player_factories(roots: list[str | Path], split: str | None = "test", limit: int | None = None,
                     max_size: int = 32, seed: int = 0) -> Iterator[PlayerFactory]:
    """The qualifying factories of the blueprint files under ``roots`` (each blueprint once, in
    file order), those of ``split`` only (None: all), at most ``limit``."""
    from factorion.core.blueprint import BlueprintError, iter_blueprints
    from factorion.core.blueprint import decode as decode_string
    seen: set[str] = set()
    n = 0
    for root in roots:
        for path in corpus_files(root):
            try:
                obj = decode_string(path.read_text(errors="replace").strip())
                bps = list(iter_blueprints(obj))
            except (BlueprintError, ValueError, KeyError, TypeError):
                continue
            for i, bp in enumerate(bps):
                bid = blueprint_id(bp.entities)
                if bid in seen:
                    continue
                seen.add(bid)
                sp = split_of(bid, seed)
                if split is not None and sp != split:
                    continue
                try:
                    got = player_task(bp.raw, max_size)
                except (ValueError, KeyError, TypeError):
                    continue
                if got is None:
                    continue
                yield PlayerFactory(bid, f"{path.name}#{i}", sp, got[0], got[1])
                n += 1
                if limit is not None and n >= limit:
                    return
