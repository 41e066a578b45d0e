"""The embedded sample: each family's reference factory written as blueprint exchange strings
(``factorion/samples``, what ``make data`` uses without network)."""

from __future__ import annotations

import csv
from pathlib import Path

from factorion.core import blueprint_world as BW
from factorion.tasks.base import FAMILIES
from factorion.tasks.levels import make_task


def write_samples(out_dir: str | Path = "factorion/samples", per_family: int = 3, size: int = 11,
                  seed: int = 0) -> list[Path]:
    """Write each family's reference factory for seeds ``seed .. seed+per_family-1`` as blueprint
    exchange strings ``<family>-<i>.txt`` plus ``MANIFEST.tsv`` (file, family, size, seed,
    reference items/s)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, files = [], []
    for fam in FAMILIES:
        for i in range(per_family):
            t = make_task(fam, 1, size=size, seed=seed + i)
            name = f"{fam}-{i}.txt"
            text = BW.to_string(t.solution, label=f"factorion {fam} size {size} seed {seed + i}")
            (out / name).write_text(text + "\n")
            rows.append((name, fam, size, seed + i, f"{t.reference:.6g}"))
            files.append(out / name)
    with open(out / "MANIFEST.tsv", "w", newline="") as f:
        wr = csv.writer(f, delimiter="\t", lineterminator="\n")
        wr.writerow(("file", "family", "size", "seed", "reference"))
        wr.writerows(rows)
    return files
