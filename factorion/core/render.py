"""Pictures of a :class:`~factorion.core.world.World`: PNG images, sheets of several worlds, and text.

Three views, all deterministic and drawn from the grid alone (numpy + Pillow, no plotting stack):

* :func:`render_png` -- one world as an RGB image, ``cell`` pixels per tile, optionally with a
  title band and a ``flows`` overlay (a number per cell, e.g. simulated items/s).
* :func:`render_grid_png` -- a sheet of several small worlds (data cards, env task pictures).
* :func:`render_text` -- one character per cell for terminals and tests; :func:`legend` lists the
  characters and :func:`glyph` gives the character of one entity cell.

PNG conventions: belts, undergrounds and splitters are coloured by tier (yellow, red, blue,
green for turbo) with a dark arrow along the travel direction; an underground has a dark bar on
the side where the belt dives (input) or surfaces (output). Inserters are small squares, coloured
by type, with an arrow from the pickup side to the drop side. Assemblers and furnaces are blocks
over their footprint, labelled with the recipe's abbreviation (see :func:`abbrev`) or ``F``.
Chests are small brown boxes. Sources have a bright green border, sinks a magenta one, both
labelled with their item's abbreviation. Obstacles are dark grey; grid lines are faint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from factorion.core import gamedata as gd
from factorion.core.world import (
    DIR,
    IO,
    IO_OUTPUT,
    ITEM,
    K_OBSTACLE,
    K_SINK,
    K_SOURCE,
    KIND,
    KINDS,
    PART,
    RECIPE,
    SINK,
    SOURCE,
    World,
    item_name,
    recipe_name,
)

__all__ = ["abbrev", "glyph", "legend", "render_text", "render_png", "render_grid_png"]

# --------------------------------------------------------------------------- text

EMPTY_GLYPH, OBSTACLE_GLYPH, SOURCE_GLYPH, SINK_GLYPH, CHEST_GLYPH = ".", "#", "S", "K", "o"
# Direction-indexed glyph strings: N E S W.
BELT_GLYPHS = ("^>v<", "↑→↓←", "⇑⇒⇓⇐", "⇧⇨⇩⇦")  # by tier: yellow, red (fast), blue (express), turbo
UNDERGROUND_IN_GLYPHS = "▲▶▼◀"    # any tier; arrow = travel direction
UNDERGROUND_OUT_GLYPHS = "△▷▽◁"
SPLITTER_GLYPHS = "⇈⇉⇊⇇"          # any tier; both cells
# Inserter arrows point the way items move (pickup -> drop), not the prototype's direction.
INSERTER_GLYPHS = {
    "burner-inserter": "↟↠↡↞", "inserter": "↟↠↡↞",
    "fast-inserter": "⇡⇢⇣⇠", "bulk-inserter": "⇡⇢⇣⇠",
    "long-handed-inserter": "↥↦↧↤",
}
# Machines: the anchor (top-left) cell is upper case, the other cells lower case.
MACHINE_LETTERS = {
    "assembling-machine-1": "A", "assembling-machine-2": "B", "assembling-machine-3": "C",
    "stone-furnace": "F", "steel-furnace": "G", "electric-furnace": "E",
}


def _move_dir(name: str, direction: int) -> int:
    """Cardinal direction items move through an inserter (pickup -> drop), from the game data."""
    (py, px), (dy, dx) = gd.inserter_offsets(name, direction)
    step = (int(np.sign(dy - py)), int(np.sign(dx - px)))
    return gd.DIR_OFFSETS.index(step)


def glyph(name: str, direction: int = 0, io: int = 0, anchor: bool = True) -> str:
    """The :func:`render_text` character of one cell of entity ``name`` (a prototype name or
    "empty" / "source" / "sink" / "obstacle"), facing ``direction``; ``io`` 1/2 for underground
    input/output; ``anchor`` False for the non-anchor cells of a machine."""
    d = direction % 4
    if name == "empty":
        return EMPTY_GLYPH
    if name == SOURCE:
        return SOURCE_GLYPH
    if name == SINK:
        return SINK_GLYPH
    if name in gd.BELTS:
        return BELT_GLYPHS[gd.tier(name)][d]
    if name in gd.UNDERGROUNDS:
        return (UNDERGROUND_OUT_GLYPHS if io == IO_OUTPUT else UNDERGROUND_IN_GLYPHS)[d]
    if name in gd.SPLITTERS:
        return SPLITTER_GLYPHS[d]
    if name in INSERTER_GLYPHS:
        return INSERTER_GLYPHS[name][_move_dir(name, d)]
    if name in MACHINE_LETTERS:
        letter = MACHINE_LETTERS[name]
        return letter if anchor else letter.lower()
    if name in gd.CHESTS:
        return CHEST_GLYPH
    return OBSTACLE_GLYPH  # "obstacle" and anything not modelled


_LEGEND = (
    (EMPTY_GLYPH, "empty"),
    (OBSTACLE_GLYPH, "obstacle (anything not modelled: poles, pipes, rails, clipped entities...)"),
    (SOURCE_GLYPH, "source (infinity chest that provides its item)"),
    (SINK_GLYPH, "sink (infinity chest that deletes its item)"),
    (BELT_GLYPHS[0], "transport-belt (yellow), travel direction N E S W"),
    (BELT_GLYPHS[1], "fast-transport-belt (red), N E S W"),
    (BELT_GLYPHS[2], "express-transport-belt (blue), N E S W"),
    (BELT_GLYPHS[3], "turbo-transport-belt (green), N E S W"),
    (UNDERGROUND_IN_GLYPHS, "underground belt input (the belt dives), any tier, N E S W"),
    (UNDERGROUND_OUT_GLYPHS, "underground belt output (the belt surfaces), any tier, N E S W"),
    (SPLITTER_GLYPHS, "splitter (both cells), any tier, N E S W"),
    (INSERTER_GLYPHS["inserter"], "inserter or burner inserter; arrow = the way items move"),
    (INSERTER_GLYPHS["fast-inserter"], "fast or bulk inserter; arrow = the way items move"),
    (INSERTER_GLYPHS["long-handed-inserter"], "long-handed inserter; arrow = the way items move"),
    ("Aa Bb Cc", "assembling machine 1 / 2 / 3 (upper case = anchor, top-left cell)"),
    ("Ff Gg Ee", "stone / steel / electric furnace (upper case = anchor)"),
    (CHEST_GLYPH, "chest (wooden, iron or steel)"),
)


def legend() -> str:
    """The :func:`render_text` legend, one ``glyphs  meaning`` line per entry."""
    width = max(len(g) for g, _ in _LEGEND)
    return "\n".join(f"{g.ljust(width)}  {meaning}" for g, meaning in _LEGEND)


def render_text(world: World, key: bool = False) -> str:
    """One character per cell, rows joined by ``"\\n"`` (no trailing newline).

    Legend (also :func:`legend`)::

        .          empty                      #         obstacle
        S          source                     K         sink
        ^ > v <    transport-belt (yellow)    ↑ → ↓ ←   fast-transport-belt (red)
        ⇑ ⇒ ⇓ ⇐    express-transport-belt     ⇧ ⇨ ⇩ ⇦   turbo-transport-belt
        ▲ ▶ ▼ ◀    underground input          △ ▷ ▽ ◁   underground output (any tier)
        ⇈ ⇉ ⇊ ⇇    splitter (both cells, any tier)
        ↟ ↠ ↡ ↞    inserter / burner inserter ⇡ ⇢ ⇣ ⇠   fast / bulk inserter
        ↥ ↦ ↧ ↤    long-handed inserter       (inserter arrows: the way items move)
        A/a B/b C/c  assembling machine 1/2/3  F/f G/g E/e  stone/steel/electric furnace
        o          chest (any tier)

    Belt-like arrows point in the travel direction N E S W. Machines show an upper-case letter on
    their anchor (top-left) cell and lower case on the others. With ``key`` the grid is followed
    by one line per source, sink and machine with its cell, item or recipe, e.g.
    ``S (2,0) iron-plate rate 7.5`` / ``A (3,5) iron-gear-wheel``.
    """
    g = world.grid
    kinds, dirs, ios, parts = g[KIND], g[DIR], g[IO], g[PART]
    memo: dict[tuple[int, int, int, bool], str] = {}
    rows = []
    for y in range(world.height):
        row = []
        for x in range(world.width):
            k = (int(kinds[y, x]), int(dirs[y, x]), int(ios[y, x]), int(parts[y, x]) <= 1)
            ch = memo.get(k)
            if ch is None:
                ch = memo[k] = glyph(KINDS[k[0]], k[1], k[2], k[3])
            row.append(ch)
        rows.append("".join(row))
    if key:
        for y, x in zip(*np.nonzero(parts == 1), strict=True):
            y, x = int(y), int(x)
            k = int(kinds[y, x])
            if k in (K_SOURCE, K_SINK):
                line = f"{glyph(KINDS[k])} ({y},{x}) {item_name(int(g[ITEM, y, x]))}"
                if (y, x) in world.rates:
                    line += f" rate {world.rates[(y, x)]:g}"
                rows.append(line)
            elif KINDS[k] in MACHINE_LETTERS:
                rows.append(f"{glyph(KINDS[k])} ({y},{x}) {recipe_name(int(g[RECIPE, y, x])) or '-'}")
    return "\n".join(rows)


# --------------------------------------------------------------------------- names

_WORD_ABBREV = {"iron": "Fe", "copper": "Cu", "uranium": "U"}


def abbrev(name: str | None) -> str:
    """Short label of an item or recipe name: initials, with iron/copper/uranium as Fe/Cu/U.

    ``iron-plate`` -> ``FeP``, ``electronic-circuit`` -> ``EC``, ``automation-science-pack`` ->
    ``ASP``; a one-word name gives its first three letters (``coal`` -> ``Coa``, ``iron`` -> ``Fe``).
    """
    parts = [p for p in (name or "").split("-") if p]
    if not parts:
        return "?"
    if len(parts) == 1:
        return _WORD_ABBREV.get(parts[0]) or parts[0][:3].capitalize()
    return "".join(_WORD_ABBREV.get(p, p[0].upper()) for p in parts)


# --------------------------------------------------------------------------- PNG

BG = (246, 246, 242)
GRID = (224, 224, 218)
OBSTACLE_RGB = (84, 84, 84)
INK = (24, 24, 24)
TIER_RGB = ((232, 190, 40), (214, 66, 54), (58, 128, 222), (92, 196, 122))  # yellow red blue turbo
INSERTER_RGB = {
    "burner-inserter": (128, 88, 56), "inserter": (236, 200, 70), "long-handed-inserter": (214, 66, 54),
    "fast-inserter": (58, 128, 222), "bulk-inserter": (92, 196, 122),
}
MACHINE_RGB = {
    "assembling-machine-1": (176, 182, 192), "assembling-machine-2": (160, 172, 196),
    "assembling-machine-3": (150, 168, 206),
    "stone-furnace": (196, 160, 122), "steel-furnace": (182, 170, 166), "electric-furnace": (170, 176, 184),
}
CHEST_RGB = (176, 124, 64)
SOURCE_RGB, SOURCE_FILL = (0, 204, 0), (212, 250, 212)
SINK_RGB, SINK_FILL = (228, 0, 228), (250, 214, 250)
FLOW_RGB = (16, 32, 160)


@cache
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ValueError, OSError, ImportError):  # Pillow without FreeType: bitmap font
        return ImageFont.load_default()


def _text_box(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int, int, int]:
    return tuple(int(v) for v in draw.textbbox((0, 0), text, font=font))


def _text_fit(draw, text: str, max_w: float, max_h: float, size: int, min_size: int = 6):
    """The largest default font (size .. min_size) that fits ``text`` in max_w x max_h, or None."""
    for s in range(int(size), min_size - 1, -1):
        f = _font(s)
        x0, y0, x1, y1 = _text_box(draw, text, f)
        if x1 - x0 <= max_w and y1 - y0 <= max_h:
            return f
    return None


def _text_centered(draw, text: str, cx: float, cy: float, font, fill) -> None:
    x0, y0, x1, y1 = _text_box(draw, text, font)
    draw.text((cx - (x0 + x1) / 2, cy - (y0 + y1) / 2), text, font=font, fill=fill)


def _label(draw, text: str, box: tuple[float, float, float, float], size: int, fill=INK) -> None:
    x0, y0, x1, y1 = box
    f = _text_fit(draw, text, x1 - x0 - 2, y1 - y0 - 2, size)
    if f is not None:
        _text_centered(draw, text, (x0 + x1) / 2, (y0 + y1) / 2, f, fill)


def _arrow(draw, cx: float, cy: float, d: int, s: float, fill=INK) -> None:
    """A filled triangle of half-size ``s`` centred at (cx, cy) pointing in direction ``d``."""
    uy, ux = gd.DIR_OFFSETS[d % 4]
    py, px = ux, -uy  # perpendicular
    tip = (cx + ux * s, cy + uy * s)
    b = (cx - ux * s * 0.6, cy - uy * s * 0.6)
    draw.polygon([tip, (b[0] + px * s * 0.8, b[1] + py * s * 0.8),
                  (b[0] - px * s * 0.8, b[1] - py * s * 0.8)], fill=fill)


def _shade(rgb, f: float) -> tuple[int, int, int]:
    return tuple(int(round(c * f)) for c in rgb)


def _draw_entity(draw, name: str, y: int, x: int, d: int, io: int, item: int, recipe: int,
                 cell: int, detail: bool) -> None:
    X, Y = x * cell, y * cell
    c = cell
    cx, cy = X + c / 2, Y + c / 2
    inset = 1 if c >= 6 else 0
    if name in gd.BELTS:
        draw.rectangle([X + inset, Y + inset, X + c - 1, Y + c - 1], fill=TIER_RGB[gd.tier(name)])
        if detail:
            _arrow(draw, cx, cy, d, c * 0.32)
    elif name in gd.UNDERGROUNDS:
        draw.rectangle([X + inset, Y + inset, X + c - 1, Y + c - 1],
                       fill=_shade(TIER_RGB[gd.tier(name)], 0.82))
        side = d if io != IO_OUTPUT else (d + 2) % 4  # input: dives ahead; output: surfaces behind
        t = max(2, c // 5)
        uy, ux = gd.DIR_OFFSETS[side]
        x0, y0, x1, y1 = X + inset, Y + inset, X + c - 1, Y + c - 1
        bar = {(-1, 0): (x0, y0, x1, y0 + t - 1), (1, 0): (x0, y1 - t + 1, x1, y1),
               (0, -1): (x0, y0, x0 + t - 1, y1), (0, 1): (x1 - t + 1, y0, x1, y1)}[(uy, ux)]
        draw.rectangle(list(bar), fill=INK)
        if detail:
            _arrow(draw, cx - ux * t / 2, cy - uy * t / 2, d, c * 0.26)
    elif name in gd.SPLITTERS:
        w, h = gd.footprint(name, d)
        draw.rectangle([X + inset, Y + inset, X + w * c - 1, Y + h * c - 1],
                       fill=TIER_RGB[gd.tier(name)], outline=INK if c >= 8 else None)
        if detail:
            for j in range(h):
                for i in range(w):
                    _arrow(draw, cx + i * c, cy + j * c, d, c * 0.28)
    elif name in gd.INSERTERS:
        m = _move_dir(name, d)
        uy, ux = gd.DIR_OFFSETS[m]
        r = max(1.0, c * 0.2)
        sx, sy = cx - ux * c * 0.12, cy - uy * c * 0.12  # the body sits towards the pickup side
        draw.rectangle([sx - r, sy - r, sx + r, sy + r], fill=INSERTER_RGB[name],
                       outline=INK if c >= 8 else None)
        if detail:  # arm from the pickup edge, arrow head at the drop edge
            draw.line([(cx - ux * c * 0.45, cy - uy * c * 0.45), (cx + ux * c * 0.2, cy + uy * c * 0.2)],
                      fill=INK, width=max(1, c // 12))
            _arrow(draw, cx + ux * c * 0.26, cy + uy * c * 0.26, m, c * 0.22)
    elif name in gd.ASSEMBLERS or name in gd.FURNACES:
        w, h = gd.footprint(name, d)
        pad = 2 if c >= 8 else 0
        box = (X + pad, Y + pad, X + w * c - 1 - pad, Y + h * c - 1 - pad)
        draw.rectangle(list(box), fill=MACHINE_RGB[name], outline=_shade(MACHINE_RGB[name], 0.45),
                       width=max(1, c // 12))
        if detail:
            if name in gd.FURNACES:
                text = "F"
            else:
                text = abbrev(recipe_name(recipe)) if recipe else "A" + name[-1]
            _label(draw, text, box, int(min(min(w, h) * c * 0.4, c * 0.6)))
    elif name in gd.CHESTS:
        r = c * 0.32
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=CHEST_RGB,
                       outline=_shade(CHEST_RGB, 0.5) if c >= 8 else None)
        if c >= 12:
            draw.line([(cx - r, cy - r * 0.25), (cx + r, cy - r * 0.25)], fill=_shade(CHEST_RGB, 0.5))
    elif name in (SOURCE, SINK):
        border, fill = (SOURCE_RGB, SOURCE_FILL) if name == SOURCE else (SINK_RGB, SINK_FILL)
        t = max(1, c // 8)
        draw.rectangle([X, Y, X + c - 1, Y + c - 1], fill=fill, outline=border, width=t)
        if detail:
            _label(draw, abbrev(item_name(item)), (X + t, Y + t, X + c - t, Y + c - t), int(c * 0.45))


def _fmt_flow(v: float) -> str:
    s = f"{v:.3g}"
    if s.startswith("0.") and len(s) > 3:
        s = s[1:]
    return s


def render_png(world: World, path: str | Path | None = None, cell: int = 24, title: str | None = None,
               flows: Mapping[tuple[int, int], float] | None = None) -> np.ndarray:
    """Draw ``world`` at ``cell`` pixels per tile; return the ``uint8`` RGB array.

    The array is ``(H*cell, W*cell, 3)``; with a ``title`` a white band of ``title_band(cell)``
    pixels holding the title is added on top. ``path`` also writes it as a PNG. ``flows`` maps
    cells ``(y, x)`` to numbers (e.g. items/s) drawn small at the bottom of the cell. Below 8
    pixels per cell, arrows and labels are left out (colours only).

    Big worlds are downscaled so that neither side exceeds :data:`MAX_PX` pixels: ``cell`` shrinks
    (to 1 at least), and a world wider than ``MAX_PX`` tiles is drawn from every k-th cell (each
    cell's kind; flows left out) with "(1:k)" added to the title.
    """
    cell = int(cell)
    if cell < 1:
        raise ValueError(f"cell must be at least 1 pixel, got {cell}")
    cell = max(1, min(cell, MAX_PX // max(world.shape)))
    step = -(-max(world.shape) // MAX_PX)
    if step > 1:
        world, flows = _subsampled(world, step), None
        title = f"{title or ''} (1:{step})".strip()
    H, W = world.shape
    arr = np.empty((H * cell, W * cell, 3), dtype=np.uint8)
    arr[:] = BG
    if cell >= 6:
        arr[::cell, :] = GRID
        arr[:, ::cell] = GRID
    kinds = world.grid[KIND]
    obst = np.repeat(np.repeat(kinds == K_OBSTACLE, cell, axis=0), cell, axis=1)
    arr[obst] = OBSTACLE_RGB
    img = Image.fromarray(arr, "RGB")
    draw = ImageDraw.Draw(img)
    detail = cell >= 8
    g = world.grid
    anchors = (g[PART] == 1) & (kinds != 0) & (kinds != K_OBSTACLE)
    for y, x in zip(*np.nonzero(anchors), strict=True):
        y, x = int(y), int(x)
        _draw_entity(draw, KINDS[int(kinds[y, x])], y, x, int(g[DIR, y, x]), int(g[IO, y, x]),
                     int(g[ITEM, y, x]), int(g[RECIPE, y, x]), cell, detail)
    if flows and cell >= 10:
        f = _font(max(6, int(cell * 0.36)))
        for (y, x), v in sorted(flows.items()):
            if not (0 <= y < H and 0 <= x < W):
                continue
            s = _fmt_flow(float(v))
            x0, y0, x1, y1 = _text_box(draw, s, f)
            tw, th = x1 - x0, y1 - y0
            bx, by = x * cell + (cell - tw) / 2, (y + 1) * cell - th - 2
            draw.rectangle([bx - 1, by - 1, bx + tw, by + th], fill=(255, 255, 255))
            draw.text((bx - x0, by - y0), s, font=f, fill=FLOW_RGB)
    if title:
        img = _with_title(img, title, cell)
    if path is not None:
        img.save(str(path), format="PNG")
    return np.array(img)


MAX_PX = 4096  # the longest side of a picture of one world, in pixels (an RGB array of at most 48 MiB)


def _subsampled(world: World, step: int) -> World:
    """Every ``step``-th cell of ``world``, each one drawn as a 1x1 entity of its kind."""
    out = World.__new__(World)
    out.grid = world.grid[:, ::step, ::step].copy()
    out.grid[PART] = out.grid[KIND] != 0
    out.grid[IO] = 0
    out.obstacles, out.rates = [], {}
    return out


def title_band(cell: int) -> int:
    """Height in pixels of the title band :func:`render_png` adds for a ``title``."""
    return max(14, int(cell * 0.75))


def _with_title(img: Image.Image, title: str, cell: int) -> Image.Image:
    band = title_band(cell)
    out = Image.new("RGB", (img.width, img.height + band), (255, 255, 255))
    out.paste(img, (0, band))
    draw = ImageDraw.Draw(out)
    f = _font(max(8, band - 5))
    x0, y0, x1, y1 = _text_box(draw, title, f)
    draw.text((3 - x0, (band - (y1 - y0)) / 2 - y0), title, font=f, fill=INK)
    return out


def render_grid_png(worlds: Sequence[World], path: str | Path | None, cols: int = 4,
                    titles: Sequence[str] | None = None, cell: int | None = None) -> np.ndarray:
    """A sheet of ``worlds`` in rows of ``cols``, each with its title above; return the RGB array.

    ``cell`` defaults to what fits the largest world in about 256 pixels (4..24). Tiles are
    top-left aligned in equal slots separated by an 8-pixel gutter; ``path`` writes the PNG.
    """
    worlds = list(worlds)
    if not worlds:
        raise ValueError("render_grid_png needs at least one world")
    if titles is not None and len(titles) != len(worlds):
        raise ValueError(f"{len(titles)} titles for {len(worlds)} worlds")
    cols = max(1, min(int(cols), len(worlds)))
    if cell is None:
        side = max(max(w.shape) for w in worlds)
        cell = max(4, min(24, 256 // side))
    tiles = [render_png(w, cell=cell) for w in worlds]
    band = title_band(cell) if titles else 0
    gut = 8
    tw = max(t.shape[1] for t in tiles)
    th = max(t.shape[0] for t in tiles) + band
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * tw + (cols + 1) * gut, rows * th + (rows + 1) * gut), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    f = _font(max(8, band - 5)) if titles else None
    for i, t in enumerate(tiles):
        r, k = divmod(i, cols)
        x, y = gut + k * (tw + gut), gut + r * (th + gut)
        sheet.paste(Image.fromarray(t, "RGB"), (x, y + band))
        if titles and titles[i]:
            text = str(titles[i])
            while len(text) > 1 and _text_box(draw, text, f)[2] > tw:
                text = text[:-2] + "…"
            x0, y0, x1, y1 = _text_box(draw, text, f)
            draw.text((x - x0, y + (band - (y1 - y0)) / 2 - y0), text, font=f, fill=INK)
    if path is not None:
        sheet.save(str(path), format="PNG")
    return np.array(sheet)

