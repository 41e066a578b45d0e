"""What ``factorion throughput`` / ``factorion build`` report and ``factorion serve`` shows.

The command line and the web app call these same functions, so a factory reads the same in a
terminal and on the page:

- :func:`task_world`: a world from task text (a blueprint string or JSON, or a text spec);
- :func:`throughput_text`: the throughput report (text or JSON) of a world;
- :func:`picture`: the PNG of a world with its simulated flows, bottlenecks (red frame) and idle
  entities (grey frame) drawn on it;
- :func:`build_report`: :func:`factorion.build.build` plus the simulation of the winner, the
  draftsman check of its string, the picture and the summary lines the CLI prints.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

from factorion.core import blueprint_world as BW
from factorion.core.world import World, WorldError

BOTTLENECK_RGB = (220, 30, 30)
IDLE_RGB = (150, 150, 150)


def task_world(text: str, index: int = 0, max_side: int | None = None) -> World:
    """The world behind task text: a blueprint string (``0e...``) or JSON (``{...}``; books
    flattened, ``index`` picks one) or else a text spec (:func:`factorion.build.parse_spec`).
    ``max_side``: refuse a world over that many tiles a side (the world-size limit of
    :mod:`factorion.core.world` bounds what is allocated before that). Bad text raises
    BlueprintError or WorldError with a one-line reason."""
    from factorion.build import parse_spec
    from factorion.core.blueprint import load_blueprints
    if not text.lstrip().startswith(("0", "{")):
        world = parse_spec(text)
    else:
        bps = load_blueprints(text)
        if not bps:
            raise WorldError("the input holds no blueprints (only planners or empty books)")
        if not -len(bps) <= index < len(bps):
            raise WorldError(f"index {index} is out of range: the input has {len(bps)} blueprint(s)")
        world = BW.from_blueprint(bps[index].raw)
    if max_side is not None and max(world.shape) > max_side:
        raise WorldError(f"the factory is {world.shape[0]}x{world.shape[1]} tiles; this takes at most "
                         f"{max_side} a side")
    return world


def throughput_text(world: World, as_json: bool = False, sim=None) -> str:
    """What ``factorion throughput`` prints: the simulator's report of ``world`` (or of ``sim``,
    its :class:`factorion.sim.SimResult` when already simulated); ImportError without the simulator."""
    if sim is None:
        from factorion.sim import simulate
        sim = simulate(world)
    return json.dumps(sim.to_dict(), indent=2) if as_json else sim.report()


def picture_cell(world: World, max_px: int = 1536, most: int = 24) -> int:
    """Pixels per tile: ``most``, less for worlds wider than ``max_px / most`` tiles (2 at least)."""
    return max(2, min(most, max_px // max(world.shape)))


def picture(world: World, sim=None, title: str | None = None, cell: int | None = None) -> bytes:
    """PNG bytes of ``world``; with ``sim`` (a :class:`factorion.sim.SimResult`) each entity's
    items/s is written in its cell, bottlenecks get a red frame and idle entities a grey one."""
    from PIL import Image, ImageDraw

    from factorion.core.render import render_png, title_band
    cell = cell or picture_cell(world)
    flows = {c: sum(f.values()) for c, f in sim.flow.items()} if sim is not None else None
    img = Image.fromarray(render_png(world, None, cell=cell, title=title, flows=flows), "RGB")
    if sim is not None and cell >= 4:
        draw = ImageDraw.Draw(img)
        top = title_band(cell) if title else 0
        width = max(1, cell // 8)
        for cells, rgb in ((sim.idle, IDLE_RGB), (sim.bottlenecks, BOTTLENECK_RGB)):
            for y, x in cells:
                e = world.entity_at(y, x)
                w, h = e.size if e is not None else (1, 1)
                draw.rectangle([x * cell, top + y * cell, (x + w) * cell - 1, top + (y + h) * cell - 1],
                               outline=rgb, width=width)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class BuildReport:
    """One build: the search's result, the winner's simulation and draftsman's warnings. The
    picture is drawn on demand, after the string is out (a failing picture loses nothing)."""
    result: object  # factorion.build.BuildResult
    sim: object     # factorion.sim.SimResult of result.world
    warnings: list[str]
    cell: int | None = None

    def summary(self) -> str:
        r = self.result
        line = (f"throughput: {r.throughput:.4g} items/s  (best of {r.candidates} candidates, by {r.method}, "
                f"{r.seconds:.1f} s, {r.cpu_seconds:.1f} s CPU)")
        return line + (f"\n{r.note}" if getattr(r, "note", "") else "")

    def draftsman_line(self) -> str:
        w = self.warnings
        return "draftsman: " + ("loads it cleanly" if not w else f"{len(w)} warning(s): {w[0][:120]}")

    def lines(self) -> list[str]:
        """The summary, draftsman's verdict and the blueprint string."""
        return [self.summary(), self.draftsman_line(), "blueprint string (paste into the game):",
                self.result.blueprint]

    @property
    def png(self) -> bytes:
        r = self.result
        return picture(r.world, self.sim, title=f"{r.throughput:.3g} items/s ({r.method})", cell=self.cell)

    def save_png(self, path: str | os.PathLike) -> None:
        """Write the picture to ``path`` atomically."""
        from factorion.core.files import write_bytes_atomic
        write_bytes_atomic(self.png, path)


def build_report(world: World, checkpoint=None, budget_s: float = 10.0, seed: int = 0,
                 samples: int = 8, cell: int | None = None, planner: bool = True,
                 scale_out: bool = True) -> BuildReport:
    """Run the build search on ``world`` and check and simulate its winner (its picture at
    ``cell`` pixels per tile; default :func:`picture_cell`)."""
    from factorion.build import build, validate_export
    from factorion.sim import simulate
    r = build(world, checkpoint=checkpoint, budget_s=budget_s, seed=seed, samples=samples, planner=planner,
              scale_out=scale_out)
    return BuildReport(r, simulate(r.world), validate_export(r.blueprint), cell)
