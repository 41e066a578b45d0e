"""Rendering: PNG size and highlights, exact text rendering, the legend, sheets of worlds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from factorion.core import gamedata as gd
from factorion.core.render import (
    BELT_GLYPHS,
    INSERTER_GLYPHS,
    SINK_RGB,
    SOURCE_RGB,
    abbrev,
    glyph,
    legend,
    render_grid_png,
    render_png,
    render_text,
    title_band,
)
from factorion.core.world import IO_INPUT, IO_OUTPUT, OBSTACLE, Entity, World


def tiny_factory() -> World:
    """Every kind of cell render_text draws, in a 5x9 world."""
    w = World(5, 9)
    w.place("source", 1, 0, item="iron-plate")
    w.place("transport-belt", 1, 1, direction=1)
    w.place("underground-belt", 1, 2, direction=1, io=IO_INPUT)
    w.place("underground-belt", 1, 4, direction=1, io=IO_OUTPUT)
    w.place("fast-transport-belt", 1, 5, direction=2)
    w.place("express-transport-belt", 2, 5, direction=3)
    w.place("turbo-transport-belt", 2, 4, direction=0)
    w.place("splitter", 3, 3, direction=2)
    w.place("inserter", 0, 1, direction=2)                # picks from the south, drops north
    w.place("long-handed-inserter", 0, 2, direction=1)    # picks from the east, drops west
    w.place("fast-inserter", 2, 0, direction=0)           # picks from the north, drops south
    w.place("iron-chest", 0, 0)
    w.place("sink", 3, 0, item="iron-gear-wheel")
    w.place("assembling-machine-2", 0, 6, recipe="iron-gear-wheel")
    w.place("stone-furnace", 3, 7)
    w.place(Entity(OBSTACLE, 4, 0, obstacle_name="small-electric-pole"))
    w.rates[(1, 0)] = 7.5
    return w


TINY_TEXT = (
    "o↟↤...Bbb\n"
    "S>▶.▷↓bbb\n"
    "⇣...⇧⇐bbb\n"
    "K..⇊⇊..Ff\n"
    "#......ff"
)


def test_text_exact():
    assert render_text(tiny_factory()) == TINY_TEXT


def test_text_key_lists_sources_sinks_machines():
    assert render_text(tiny_factory(), key=True) == TINY_TEXT + (
        "\nB (0,6) iron-gear-wheel"
        "\nS (1,0) iron-plate rate 7.5"
        "\nK (3,0) iron-gear-wheel"
        "\nF (3,7) -"
    )


def test_text_empty_world():
    assert render_text(World(2, 3)) == "...\n..."


def test_text_is_rotation_consistent():
    # a belt line turned a quarter clockwise: east arrows become south arrows
    w = World(1, 3)
    for x in range(3):
        w.place("transport-belt", 0, x, direction=1)
    assert render_text(w) == ">>>"
    assert render_text(w.transformed(rotate=1)) == "v\nv\nv"


def _one(name: str, direction: int = 0, io: int = 0) -> World:
    w = World(4, 4)
    kw = {}
    if name in ("source", "sink"):
        kw["item"] = "iron-plate"
    if name in gd.UNDERGROUNDS:
        kw["io"] = io
    w.place(name, 0, 0, direction=direction, **kw)
    return w


@pytest.mark.parametrize("name", [*gd.MODELLED, "source", "sink"])
def test_legend_round_trip(name):
    """Every entity renders to the glyph glyph() names, and the legend lists that glyph."""
    text = legend()
    dirs = range(4) if name in gd.BELTS + gd.UNDERGROUNDS + gd.SPLITTERS + gd.INSERTERS else [0]
    ios = (IO_INPUT, IO_OUTPUT) if name in gd.UNDERGROUNDS else (0,)
    for d in dirs:
        for io in ios:
            g = glyph(name, d, io)
            assert len(g) == 1
            assert render_text(_one(name, d, io))[0] == g
            assert g in text, (name, d, io, g)


def _meaning(name: str, d: int, io: int, anchor: bool) -> tuple:
    """What a glyph must tell apart: tiers of undergrounds, splitters and chests, and the
    inserter pairs burner/basic and fast/bulk, share glyphs (as the legend says)."""
    if name in gd.UNDERGROUNDS:
        return ("underground", d, io)
    if name in gd.SPLITTERS:
        return ("splitter", d)
    if name in gd.CHESTS:
        return ("chest",)
    if name in gd.INSERTERS:
        return (INSERTER_GLYPHS[name], d)
    if name in gd.BELTS:
        return (name, d)
    if name in gd.ASSEMBLERS or name in gd.FURNACES:
        return (name, anchor)
    return (name,)


def test_legend_glyphs_distinct():
    seen: dict[str, tuple] = {}
    for name in [*gd.MODELLED, "source", "sink", "obstacle", "empty"]:
        for d in range(4):
            for io in (IO_INPUT, IO_OUTPUT):
                for anchor in (True, False):
                    g, m = glyph(name, d, io, anchor), _meaning(name, d, io, anchor)
                    assert seen.setdefault(g, m) == m, (g, m, seen[g])
    assert len(set("".join(BELT_GLYPHS))) == 16


def test_abbrev():
    assert abbrev("iron-plate") == "FeP"
    assert abbrev("copper-cable") == "CuC"
    assert abbrev("electronic-circuit") == "EC"
    assert abbrev("automation-science-pack") == "ASP"
    assert abbrev("coal") == "Coa"
    assert abbrev(None) == "?"


def test_png_size_and_file(tmp_path):
    w = tiny_factory()
    out = tmp_path / "w.png"
    arr = render_png(w, out, cell=24)
    assert arr.shape == (5 * 24, 9 * 24, 3) and arr.dtype == np.uint8
    with Image.open(out) as im:
        assert im.size == (9 * 24, 5 * 24) and im.mode == "RGB"
        assert np.array_equal(np.asarray(im), arr)
    assert render_png(w, cell=7).shape == (35, 63, 3)
    assert render_png(w, cell=1).shape == (5, 9, 3)
    with pytest.raises(ValueError):
        render_png(w, cell=0)


def test_png_title_band(tmp_path):
    arr = render_png(tiny_factory(), cell=16, title="tiny")
    assert arr.shape == (5 * 16 + title_band(16), 9 * 16, 3)


def _cell(arr: np.ndarray, y: int, x: int, cell: int) -> np.ndarray:
    return arr[y * cell:(y + 1) * cell, x * cell:(x + 1) * cell]


def test_sources_and_sinks_highlighted():
    c = 24
    arr = render_png(tiny_factory(), cell=c)
    empty, source, sink = _cell(arr, 4, 3, c), _cell(arr, 1, 0, c), _cell(arr, 3, 0, c)
    assert not np.array_equal(source, empty) and not np.array_equal(sink, empty)
    assert not np.array_equal(source, sink)
    # the borders carry the highlight colours
    assert (source.reshape(-1, 3) == SOURCE_RGB).all(axis=1).sum() > c
    assert (sink.reshape(-1, 3) == SINK_RGB).all(axis=1).sum() > c
    assert not (empty.reshape(-1, 3) == SOURCE_RGB).all(axis=1).any()
    # obstacles are dark
    assert _cell(arr, 4, 0, c).mean() < 100 < empty.mean()


def test_png_deterministic_and_entities_differ():
    w = tiny_factory()
    a, b = render_png(w, cell=12), render_png(w, cell=12)
    assert np.array_equal(a, b)
    blank = render_png(World(5, 9), cell=12)
    for y, x in [(1, 1), (1, 2), (3, 3), (0, 1), (0, 0), (0, 6), (3, 7)]:
        assert not np.array_equal(_cell(a, y, x, 12), _cell(blank, y, x, 12)), (y, x)


def test_belt_tiers_and_directions_differ():
    cells = []
    for name in gd.BELTS:
        for d in range(4):
            cells.append(render_png(_one(name, d), cell=16)[:16, :16])
    for i in range(len(cells)):
        for j in range(i):
            assert not np.array_equal(cells[i], cells[j])


def test_flows_overlay():
    w = tiny_factory()
    plain = render_png(w, cell=24)
    with_flows = render_png(w, cell=24, flows={(1, 1): 7.5, (40, 40): 1.0})
    assert plain.shape == with_flows.shape
    assert not np.array_equal(_cell(plain, 1, 1, 24), _cell(with_flows, 1, 1, 24))
    assert np.array_equal(_cell(plain, 2, 2, 24), _cell(with_flows, 2, 2, 24))


def test_grid_sheet(tmp_path):
    worlds = [tiny_factory(), World(3, 3), tiny_factory().transformed(rotate=1)]
    out = tmp_path / "sheet.png"
    arr = render_grid_png(worlds, out, cols=2, titles=["a", "b", "c"], cell=10)
    with Image.open(out) as im:
        assert im.size == (arr.shape[1], arr.shape[0])
    # 2 columns of slots as wide as the widest world (9 cells), 2 rows as tall as the tallest (9)
    assert arr.shape[1] == 2 * 90 + 3 * 8
    assert arr.shape[0] == 2 * (90 + title_band(10)) + 3 * 8
    auto = render_grid_png(worlds, None)
    assert auto.ndim == 3
    with pytest.raises(ValueError):
        render_grid_png([], None)
    with pytest.raises(ValueError):
        render_grid_png(worlds, None, titles=["only one"])
