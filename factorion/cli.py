"""The ``factorion`` command: look at blueprints, draw them, measure their throughput.

::

    factorion inspect    INPUT [--all]
    factorion render     INPUT (-o OUT.png | --text) [--index N] [--window TOP,LEFT,H,W] [--cell PX]
    factorion throughput INPUT [--json] [--index N] [--window TOP,LEFT,H,W]
    factorion build      TASK [--budget S] [--checkpoint CKPT] [-o OUT.png] [--out STRING.txt]
    factorion serve      [--host 127.0.0.1] [--port 8000] [--checkpoint CKPT]   (the web page)

Every command takes ``--max-cells N``: the largest world, height x width in tiles (default 1024 x
1024, or the environment variable ``FACTORION_MAX_CELLS``); a bigger one is refused before it is
allocated, with a one-line error naming its extent.

INPUT is a blueprint exchange string (it starts with ``0e``) or JSON text (``{...}``), a file
holding one, or ``-`` for standard input. Books are flattened; ``--index`` picks a blueprint in
that flat order (``inspect`` lists it). Errors print one line, ``factorion: error: ...``, and
exit 1 for bad input or 2 for bad usage (3: an internal error, one line too). The work is done by
the library modules: this one only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from factorion.core import blueprint_world as BW
from factorion.core.blueprint import Blueprint, BlueprintError, load_blueprints
from factorion.core.world import OBSTACLE, SINK, SOURCE, World, WorldError, set_max_cells

PROG = "factorion"
LIST_LIMIT = 20  # inspect lists every blueprint up to this many (more with --all)


class CliError(Exception):
    """A failure reported as one line; ``code`` is the exit status (1 bad input, 2 bad usage)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise CliError(f"{message} (see '{self.prog} -h')", 2)


def _package_version() -> str:
    try:
        from importlib.metadata import version
        return version("factorion")
    except Exception:  # not installed (running from a checkout)
        return "unknown"


def _short(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[:n - 3] + "..."


# --------------------------------------------------------------------------- input


def read_input(arg: str) -> str:
    """The text behind an INPUT argument: ``-`` reads stdin; an argument starting with ``0e`` or
    ``{`` is the blueprint text itself; anything else is a file path."""
    if arg == "-":
        try:
            buf = getattr(sys.stdin, "buffer", None)
            text = buf.read().decode("utf-8", errors="replace") if buf is not None else sys.stdin.read()
        except (AttributeError, OSError, ValueError):  # no stdin (`<&-`), or a closed one
            raise CliError("cannot read standard input (is it closed?)") from None
    elif not arg.strip():
        raise BlueprintError("empty input")
    elif arg.lstrip().startswith(("0e", "{")):
        text = arg
    else:
        try:
            text = Path(arg).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise CliError(f"no such file {_short(arg)!r} "
                           "(a blueprint string starts with '0e', JSON with '{')") from None
        except OSError as e:
            raise CliError(f"cannot read {_short(arg)!r}: {e.strerror or e}") from None
    return text.lstrip("\ufeff")


def load(arg: str) -> list[Blueprint]:
    """Every blueprint of INPUT (books flattened, normalised to 2.0); CliError when none."""
    bps = load_blueprints(read_input(arg))
    if not bps:
        raise CliError("the input holds no blueprints (only planners or empty books)")
    return bps


def pick(bps: list[Blueprint], index: int) -> Blueprint:
    if not -len(bps) <= index < len(bps):
        raise CliError(f"--index {index} is out of range: the input has {len(bps)} blueprint"
                       f"{'s' if len(bps) != 1 else ''} (0..{len(bps) - 1})")
    return bps[index]


COORD_LIMIT = 1 << 31  # |TOP|, |LEFT| of a window


def _window(text: str) -> tuple[int, int, int, int]:
    try:
        top, left, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TOP,LEFT,H,W (four integers), got {_short(text)!r}") \
            from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"window height and width must be positive, got {h}x{w}")
    if abs(top) > COORD_LIMIT or abs(left) > COORD_LIMIT:
        raise argparse.ArgumentTypeError(f"window corner ({top}, {left}) is beyond +-2^31")
    return top, left, h, w  # the size limit is checked where the window is rasterised


def _number(text: str, cast, ok, expected: str):
    """``cast(text)`` when ``ok`` of it, else argparse's error: "expected EXPECTED, got TEXT"."""
    try:
        v = cast(text)
    except ValueError:
        v = None
    if v is None or not ok(v):  # NaN fails every comparison
        raise argparse.ArgumentTypeError(f"expected {expected}, got {_short(text)!r}")
    return v


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def _samples(text: str) -> int:
    return _number(text, int, lambda v: 1 <= v <= 1024, "1..1024 roll-outs per round")


def _seed(text: str) -> int:
    return _number(text, int, lambda v: 0 <= v < 1 << 32, "a seed 0..2^32-1")


def _budget(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < 1e6, "seconds > 0")


def _cell(text: str) -> int:
    return _number(text, int, lambda v: 1 <= v <= 256, "pixels per tile 1..256")


def _world(args) -> tuple[Blueprint, World]:
    bp = pick(load(args.input), args.index)
    return bp, BW.from_blueprint(bp.raw, args.window)


def _name(bp: Blueprint) -> str:
    parts = [*(b for b in bp.book_labels if b), bp.label or ""]
    label = " / ".join(p for p in parts if p)
    path = ".".join(map(str, bp.path)) or "-"
    return f"path {path}" + (f"  {label!r}" if label else "")


def _version(v: tuple[int, ...] | None) -> str:
    return ".".join(map(str, v)) if v else "unknown"


# --------------------------------------------------------------------------- commands


def cmd_inspect(args) -> int:
    bps = load(args.input)
    versions = Counter(_version(bp.version) for bp in bps)
    major1 = any(bp.version and bp.version[0] < 2 for bp in bps)
    print("game version: " + ", ".join(f"{v} ({n})" if len(versions) > 1 else v
                                        for v, n in versions.most_common())
          + ("  (read as 2.0)" if major1 else ""))
    print(f"blueprints: {len(bps)}")
    names: Counter = Counter()
    kinds: Counter = Counter()
    kept_obstacles = 0
    failed: list[tuple[int, str]] = []
    sizes: list[tuple[int, int] | None] = []
    for i, bp in enumerate(bps):
        names.update(e["name"] for e in bp.entities)
        try:
            w = BW.from_blueprint(bp.raw)
        except WorldError as e:
            failed.append((i, str(e)))
            sizes.append(None)
            continue
        kinds.update(w.counts())
        kept_obstacles += len(w.obstacles)
        sizes.append(w.shape)
    shown = len(bps) if args.all or len(bps) <= LIST_LIMIT else LIST_LIMIT // 2
    for i, bp in enumerate(bps[:shown]):
        size = f"{sizes[i][0]}x{sizes[i][1]}" if sizes[i] else "not rasterised"
        print(f"  [{i}] {_name(bp)}: {len(bp.entities)} entities, world {size}")
    if shown < len(bps):
        print(f"  ... and {len(bps) - shown} more (--all lists them)")
    print(f"entities by name ({sum(names.values())}):")
    width = max((len(n) for n in names), default=0)
    for n, c in sorted(names.items(), key=lambda t: (-t[1], t[0])):
        print(f"  {n.ljust(width)}  {c}")
    obstacle_cells = kinds.pop(OBSTACLE, 0)
    sources, sinks = kinds.get(SOURCE, 0), kinds.get(SINK, 0)
    modelled = sum(kinds.values())
    print(f"modelled entities: {modelled} (sources {sources}, sinks {sinks}); "
          f"obstacle cells: {obstacle_cells} (covering {kept_obstacles} whole unmodelled entities "
          "and any clipped ones)")
    by_kind = ", ".join(f"{k} {c}" for k, c in sorted(kinds.items(), key=lambda t: (-t[1], t[0])))
    if by_kind:
        print(textwrap.fill(f"by kind: {by_kind}", 100, initial_indent="  ", subsequent_indent="    "))
    ok = [s for s in sizes if s]
    if ok:
        h, w = max(ok, key=lambda s: s[0] * s[1])
        print(f"world size: {h}x{w}" + (f" (largest of {len(ok)})" if len(ok) > 1 else ""))
    for i, msg in failed:
        print(f"not rasterised: [{i}] {msg}")
    return 0


def cmd_render(args) -> int:
    if not args.output and not args.text:
        raise CliError("render needs -o OUT.png or --text (see 'factorion render -h')", 2)
    from factorion.core.render import render_png, render_text
    bp, world = _world(args)
    if args.text:
        print(render_text(world, key=True))
    if args.output:
        cell = args.cell or max(2, min(24, 4096 // max(world.shape)))
        img = render_png(world, args.output, cell=cell, title=args.title)
        print(f"wrote {args.output}: {img.shape[1]}x{img.shape[0]} px, world {world.height}x{world.width}, "
              f"{cell} px per cell", file=sys.stderr if args.text else sys.stdout)
    return 0


def cmd_throughput(args) -> int:
    _, world = _world(args)  # bad input is reported before a missing simulator
    from factorion.report import throughput_text
    try:
        text = throughput_text(world, as_json=args.json)
    except ImportError as e:
        raise CliError(f"the simulator is not available: {e}") from None
    print(text)
    return 0


def _policy(checkpoint):
    """The policy of a user's checkpoint file (None stays None); a bad file is one line."""
    if not checkpoint:
        return None
    from factorion.build import load_policy
    try:
        return load_policy(checkpoint)
    except Exception as e:  # noqa: BLE001 - a user's file: truncated, text, another kind of checkpoint
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CliError(f"cannot load checkpoint {_short(checkpoint)!r}: {type(e).__name__}"
                       + (f": {_short(msg, 120)}" if msg else "")) from None


def cmd_build(args) -> int:
    from factorion.build import DEFAULT_CHECKPOINT
    from factorion.report import build_report, task_world
    world = task_world(read_input(args.input), args.index)
    ckpt = args.checkpoint  # none given: the shipped policy when the package has one, else the planner
    if ckpt is None:
        ckpt = "default" if DEFAULT_CHECKPOINT.exists() else "none"
    if args.no_planner and ckpt == "none":
        raise CliError("--no-planner needs a policy: give --checkpoint CKPT (or keep the shipped default)")
    rep = build_report(world, checkpoint=_policy(ckpt), budget_s=args.budget, seed=args.seed,
                       samples=args.samples, planner=not args.no_planner,
                       scale_out=not args.no_scale_out)
    print(rep.summary())
    planner = "off (--no-planner)" if args.no_planner else "on"
    scale = "off" if args.no_planner or args.no_scale_out else "on"
    print(f"model: {rep.result.model}; planner: {planner}; scale-out: {scale}")
    print("blueprint string (paste into the game):")
    print(rep.result.blueprint, flush=True)  # first: whatever happens to the picture, the result is out
    if args.out:
        from factorion.core.files import write_text_atomic
        write_text_atomic(rep.result.blueprint + "\n", args.out)
        print(f"string: {args.out}")
    print(rep.draftsman_line())
    rep.save_png(args.output)
    print(f"picture: {args.output}")
    return 0


def cmd_serve(args) -> int:
    if not (0 <= args.port <= 65535 and args.max_jobs >= 1 and args.time_limit > 0):
        raise CliError("--port must be 0..65535, --max-jobs at least 1 and --time-limit above 0 "
                       f"(got {args.port}, {args.max_jobs}, {args.time_limit:g})", 2)
    from factorion.serve.app import serve
    return serve(host=args.host, port=args.port, checkpoint=args.checkpoint, max_jobs=args.max_jobs,
                 time_limit_s=args.time_limit)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Look at Factorio blueprints, draw them, measure their throughput.")
    p.add_argument("--version", action="version", version=f"{PROG} {_package_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    inp = dict(metavar="INPUT", help="blueprint string (0e... or {...}), a file holding one, or - for stdin")

    s = sub.add_parser("inspect", help="versions, blueprints, entity counts, modelled vs obstacle cells")
    s.add_argument("input", **inp)
    s.add_argument("--all", action="store_true", help="list every blueprint of a large book")
    s.set_defaults(func=cmd_inspect)

    def add_pick(s):
        s.add_argument("--index", type=int, default=0, metavar="N",
                       help="which blueprint (books flattened, in inspect's order; default 0)")
        s.add_argument("--window", type=_window, metavar="TOP,LEFT,H,W",
                       help="rasterise only this window, in tiles from the blueprint's top-left corner")

    s = sub.add_parser("render", help="draw a blueprint as a PNG (or as text)")
    s.add_argument("input", **inp)
    s.add_argument("-o", "--output", metavar="OUT.png", help="PNG to write")
    s.add_argument("--text", action="store_true",
                   help="print the text rendering (legend: factorion.core.render.legend())")
    s.add_argument("--cell", type=_cell, metavar="PX",
                   help="pixels per tile (default: 24, less for worlds over 170 tiles)")
    s.add_argument("--title", help="title drawn above the picture")
    add_pick(s)
    s.set_defaults(func=cmd_render)

    s = sub.add_parser("throughput", help="simulate a blueprint's steady-state throughput")
    s.add_argument("input", **inp)
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    add_pick(s)
    s.set_defaults(func=cmd_throughput)

    s = sub.add_parser("build", help="build the best factory for a task (sources/sinks) in a time budget")
    s.add_argument("input", metavar="TASK", help="a blueprint with sources/sinks (string, file, -) or a "
                   "text spec file ('size H W', 'source Y X ITEM', 'sink Y X ITEM', 'obstacle Y X')")
    s.add_argument("--checkpoint", metavar="CKPT", help="a policy checkpoint to sample from, every sample "
                   "checked in the simulator (default: the policy shipped in the package; 'none': the "
                   "scripted planner only)")
    s.add_argument("--no-planner", action="store_true",
                   help="the policy alone: greedy, then sampled roll-outs, no scripted planner or scale-out")
    s.add_argument("--no-scale-out", action="store_true",
                   help="without the scale-out search (parallel machine blocks): the planner and the policy")
    s.add_argument("--budget", type=_budget, default=10.0, metavar="S",
                   help="seconds to search (> 0, default 10)")
    s.add_argument("-o", "--output", default="build.png", metavar="OUT.png",
                   help="picture (default build.png)")
    s.add_argument("--out", metavar="STRING.txt", help="also write the blueprint string to this file")
    s.add_argument("--index", type=int, default=0, metavar="N", help="which blueprint of a book")
    s.add_argument("--samples", type=_samples, default=8, metavar="N",
                   help="policy roll-outs per sampling round (default 8)")
    s.add_argument("--seed", type=_seed, default=0)
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("serve", help="a local web page: place sources and sinks, build, copy the blueprint")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--checkpoint", metavar="CKPT", help="a policy checkpoint builds may sample from "
                   "(default: the scripted planner only)")
    s.add_argument("--max-jobs", type=int, default=2, metavar="N", help="builds running at once (default 2)")
    s.add_argument("--time-limit", type=float, default=180.0, metavar="S",
                   help="wall-clock seconds a build job may take in all before it is stopped (default 180)")
    s.set_defaults(func=cmd_serve)
    for s in sub.choices.values():
        s.add_argument("--max-cells", type=_positive_int, metavar="N",
                       help="largest world in cells, height x width (default 1048576 = 1024x1024, "
                       "or $FACTORION_MAX_CELLS)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (never raises for bad input or usage)."""
    limit = None
    try:
        args = build_parser().parse_args(argv)
        if args.max_cells:
            limit = set_max_cells(args.max_cells)
        return args.func(args)
    except CliError as e:
        err, code = str(e), e.code
    except (BlueprintError, WorldError) as e:
        err, code = str(e), 1
    except BrokenPipeError:  # `factorion inspect ... | head`
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except OSError as e:  # writing the PNG, say
        err, code = f"{e.strerror or e}" + (f": {e.filename!r}" if e.filename else ""), 1
    except KeyboardInterrupt:
        return 130
    except SystemExit as e:  # -h / --version
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except MemoryError:
        err, code = "out of memory", 1
    except RecursionError:
        err, code = "input nested too deeply", 1
    except Exception as e:  # noqa: BLE001 - a bug: still one line (exit 3), never a traceback
        err, code = f"internal error: {type(e).__name__}: {e}", 3
    finally:
        if limit is not None:
            set_max_cells(limit)
    print(f"{PROG}: error: {_short(' '.join(err.split()), 400)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
