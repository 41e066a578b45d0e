"""Decode + rasterise speed over the shared blueprint corpus (../shared/blueprints)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from factorion.core import blueprint as B
from factorion.core import blueprint_world as BW
from factorion.core.world import K_OBSTACLE, KIND, PART, WorldError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "blueprints"


def run(repeats: int = 1) -> dict:
    files = sorted(SHARED.glob("**/*.txt")) if SHARED.is_dir() else []
    if not files:
        print("../shared/blueprints not found: skipped")
        return {"skipped": True}
    texts = [f.read_text() for f in files]
    mb = sum(len(t) for t in texts) / 1e6
    dec, ras = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        bps = [bp for t in texts for bp in B.load_blueprints(t)]
        t1 = time.perf_counter()
        modelled = obstacle = rejected = 0
        for bp in bps:
            try:
                w = BW.from_blueprint(bp.raw)
            except WorldError:
                rejected += 1
                continue
            a = w.grid[PART] == 1
            modelled += int(((w.grid[KIND] != K_OBSTACLE) & a).sum())
            obstacle += len(bp.entities)
        t2 = time.perf_counter()
        obstacle -= modelled  # entities that became obstacles
        dec.append(t1 - t0)
        ras.append(t2 - t1)
    d, r = statistics.median(dec), statistics.median(ras)
    out = {"files": len(files), "MB": round(mb, 1), "blueprints": len(bps), "decode_s": round(d, 2),
           "rasterise_s": round(r, 2), "MB_per_s": round(mb / (d + r), 2),
           "blueprints_per_s": round(len(bps) / (d + r), 1), "modelled_entities": modelled,
           "obstacle_entities": obstacle,
           "rejected_blueprints": rejected,
           "modelled_share": round(modelled / max(1, modelled + obstacle), 3)}
    for k, v in out.items():
        print(f"  {k:>18}: {v}")
    return out


if __name__ == "__main__":
    run()
