"""Property test body, run in its own process by tests/test_reliability.py (so its peak memory is its own).

Mutates real blueprint JSON (a value anywhere in the tree replaced by a wrong type, NaN, Infinity, a
huge number, deep nesting...) and runs every CLI command on the result in-process. Every run must end
with exit status 0, or 1 and exactly one ``factorion: error:`` line on stderr; nothing may escape
``main``. Prints one JSON line: examples run, exit codes seen, this process's peak RSS in KiB
(:func:`peak_rss_kib`).

    python tests/hostile_fuzz.py N_EXAMPLES [BLUEPRINT_FILE ...]
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worlds import hand_world  # noqa: E402

from factorion.cli import main  # noqa: E402
from factorion.core import blueprint_world as BW
from factorion.core.blueprint import load_blueprints  # noqa: E402

MARK = "\u0000hostile\u0000"
RAW = ["NaN", "Infinity", "-Infinity", "1e999", "-1e308", "123456789012345678901234567890", "1e9", "-2e8",
       "1.5", "-1", "0", "true", "null", '""', '"north"', '"fast"', "[]", "{}", '["x"]', "[1, 2]",
       '{"x": 1}', "5", "[" * 3000 + "]" * 3000, '{"a":' * 3000 + "1" + "}" * 3000, '"' + "x" * 10000 + '"']


def peak_rss_kib() -> int:
    """This process's own peak RSS: ``VmHWM`` on Linux. (``ru_maxrss`` is not: after fork + exec it
    starts from the parent's peak, so a child of a 1.3 GB pytest reads 1.3 GB.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _hand_world() -> dict:
    return BW.to_blueprint(hand_world(obstacle=False, source_rate=7.5), label="hand")


def bases(files: list[str]) -> list[dict]:
    out = [_hand_world()]
    for f in files:
        out += [{"blueprint": bp.raw} for bp in load_blueprints(Path(f).read_text())[:1]]
    old = json.loads(json.dumps(out[0]))  # the hand world as a 1.1 string holds it (8-way directions)
    old["blueprint"]["version"] = (1 << 48) | (1 << 32) | (110 << 16)
    for e in old["blueprint"]["entities"]:
        if e.get("direction"):
            e["direction"] //= 2
    out.append(old)
    book = {"blueprint_book": {"label": "book", "blueprints": [{"index": i, **b} for i, b in enumerate(out)]}}
    return [*out, book]


def _paths(node, prefix=()) -> list[tuple]:
    """Every path into the JSON tree (dict keys and list indices), the root excluded."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        found.append((*prefix, k))
        if len(found) < 4000:
            found += _paths(v, (*prefix, k))
    return found


def mutate(doc: dict, data) -> str:
    doc = json.loads(json.dumps(doc))
    paths = _paths(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(paths), label="path")
        parent = doc
        try:
            for k in path[:-1]:
                parent = parent[k]
            action = data.draw(st.sampled_from(["replace", "replace", "delete"]), label="action")
            if action == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = MARK + str(data.draw(st.integers(0, len(RAW) - 1), label="raw")) + MARK
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed this path
            continue
    text = json.dumps(doc)
    for i, raw in enumerate(RAW):
        text = text.replace(json.dumps(MARK + str(i) + MARK), raw)
    return text


COMMANDS = (["inspect"], ["render", "--text"], ["throughput"], ["throughput", "--window", "0,0,5,5"],
            ["build", "--budget", "0.2"])


def run_all(n: int, files: list[str]) -> dict:
    docs = bases(files)
    codes: Counter = Counter()
    tmp = tempfile.mkdtemp(prefix="hostile-fuzz-")

    @settings(max_examples=n, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def prop(data):
        doc = docs[data.draw(st.integers(0, len(docs) - 1), label="base")]
        text = mutate(doc, data)
        cmd = data.draw(st.sampled_from(COMMANDS), label="command")
        argv = [cmd[0], text, *cmd[1:]] + (["-o", f"{tmp}/b.png"] if cmd[0] == "build" else [])
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
        e = err.getvalue()
        codes[code] += 1
        assert code in (0, 1), (code, e, argv[0], text[:300])
        if code:
            assert e.startswith("factorion: error: ") and e.count("\n") == 1, (e, text[:300])
        assert "Traceback" not in e

    prop()
    return {"examples": sum(codes.values()), "codes": dict(codes),
            "maxrss_kib": peak_rss_kib()}


if __name__ == "__main__":
    print(json.dumps(run_all(int(sys.argv[1]), sys.argv[2:])))
