"""Run every benchmark (`make bench`), or the ones named: `python -m benchmarks sim env`.

Each benchmark prints its own figures (medians, ratios to targets); this runner adds a summary
and writes it to `reports/bench.json`.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    found = pkgutil.iter_modules([str(Path(__file__).parent)])
    names = sorted(m.name[len("bench_"):] for m in found if m.name.startswith("bench_"))
    chosen = argv or names
    unknown = set(chosen) - set(names)
    if unknown:
        print(f"benchmarks: unknown {sorted(unknown)}; have {names}", file=sys.stderr)
        return 2
    results = {}
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        t = time.perf_counter()
        mod = importlib.import_module(f"benchmarks.bench_{name}")
        results[name] = mod.run()
        print(f"({name}: {time.perf_counter() - t:.1f} s)")
    out = Path("reports") / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
