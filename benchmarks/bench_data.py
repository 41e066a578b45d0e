"""``make data`` on the whole shared corpus (``../shared/blueprints``): the pipeline's headline figures.

Runs ``python -m pipeline.run --blueprints ../shared/blueprints --no-network`` in a subprocess (so its
peak memory is its own) into a temporary folder, with the default settings (2 workers, windows 11 and
16, stride size // 2, at most 64 windows per blueprint and size), and reports from its ``stats.json``:

* ``wall_s``          the whole run, wall clock (target: 60 s on the 2-core machine);
* ``cpu_s``           CPU seconds of the main process + the workers (less sensitive to other load:
                      on an idle 2-core machine the wall time is about half of it);
* ``windows_per_s``   windows written per wall second of the decode+chunk+write stage;
* ``rows_per_level``, ``rejects_by_reason``, ``peak_rss_mb`` (main, worker) and the load average
  when the run started (other work on the box slows the wall clock, not the CPU figure).

Without the corpus it runs on the embedded samples (``factorion/samples``) only and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "blueprints"
TARGET_S = 60.0


def run(workers: int = 2) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        cmd = [sys.executable, "-m", "pipeline.run", "--out", tmp, "--no-network", "--no-progress",
               "--workers", str(workers)]
        corpus = "embedded samples only (../shared/blueprints not found)"
        if SHARED.is_dir():
            cmd += ["--blueprints", str(SHARED)]
            corpus = str(SHARED)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
            return {"error": f"pipeline.run exited {proc.returncode}"}
        stats = json.loads((Path(tmp) / "stats.json").read_text())
    cpu = stats["cpu_main_s"] + stats["cpu_workers_s"]
    out = {
        "corpus": corpus, "records": stats["records"], "blueprints": stats["blueprints_kept"],
        "windows": stats["windows"], "rows": stats["rows"], "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1), "cpu_main_s": stats["cpu_main_s"], "cpu_workers_s": stats["cpu_workers_s"],
        "windows_per_s": stats["windows_per_s"], "rows_per_level": stats["rows_per_level"],
        "rows_per_split": stats["rows_per_split"], "rejects_by_reason": stats["rejects_by_reason"],
        "peak_rss_mb": {"main": stats["peak_rss_main_mb"], "worker": stats["peak_rss_worker_mb"]},
        "cpu_per_stage_s": stats["cpu_s"], "load_avg_at_start": round(load, 2), "target_s": TARGET_S,
        "simulator": stats["simulator"],
    }
    print(f"corpus: {corpus}")
    print(f"{out['records']} strings -> {out['blueprints']} blueprints -> {out['windows']} windows -> "
          f"{out['rows']} rows")
    print(f"wall {out['wall_s']} s (target {TARGET_S:.0f} s; load average {out['load_avg_at_start']} at "
          "start), "
          f"CPU {out['cpu_s']} s (main {out['cpu_main_s']}, workers {out['cpu_workers_s']}), "
          f"{out['windows_per_s']} windows/s")
    print(f"rows per level {out['rows_per_level']}; peak RSS {out['peak_rss_mb']} MB")
    print(f"CPU per stage {out['cpu_per_stage_s']}")
    print(f"rejects {out['rejects_by_reason']}")
    return out


if __name__ == "__main__":
    run()
