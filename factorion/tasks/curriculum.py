"""The curriculum scheduler: per-family levels promoted on the recent success rate, with
rehearsal of earlier levels."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from factorion.tasks.base import ALL_FAMILIES, FAMILIES, LEVELS


class Curriculum:
    """Per-family levels that go up when the success rate over the last ``window`` episodes at
    the current level reaches ``promote_at``. ``sample`` picks the family least far along
    (ties at random) half the time and a uniformly random family otherwise; it plays the
    family's current level, or, one time in ten, a random earlier level (rehearsal; those
    results do not count towards promotion)."""

    def __init__(self, families: Sequence[str] = FAMILIES, start_level: int = 1, promote_at: float = 0.8,
                 window: int = 100, max_level: int = 5, rehearse: float = 0.1):
        for f in families:
            if f not in ALL_FAMILIES:
                raise ValueError(f"unknown family {f!r}")
        if not (LEVELS[0] <= start_level <= max_level <= LEVELS[-1]):
            raise ValueError(f"need {LEVELS[0]} <= start_level <= max_level <= {LEVELS[-1]}")
        self.families = tuple(families)
        self.promote_at = promote_at
        self.window = window
        self.max_level = max_level
        self.rehearse = rehearse
        self.level = {f: start_level for f in self.families}
        self.results = {f: deque(maxlen=window) for f in self.families}
        self.episodes = {f: 0 for f in self.families}

    def sample(self, rng: np.random.Generator) -> tuple[str, int]:
        if rng.random() < 0.5:
            low = min(self.level.values())
            pool = [f for f in self.families if self.level[f] == low]
        else:
            pool = list(self.families)
        fam = pool[int(rng.integers(len(pool)))]
        lvl = self.level[fam]
        if lvl > LEVELS[0] and rng.random() < self.rehearse:
            lvl = int(rng.integers(LEVELS[0], lvl))
        return fam, lvl

    def update(self, family: str, level: int, success: bool) -> None:
        self.episodes[family] += 1
        if level != self.level[family]:
            return
        res = self.results[family]
        res.append(bool(success))
        if (len(res) >= self.window and sum(res) / len(res) >= self.promote_at
                and self.level[family] < self.max_level):
            self.level[family] += 1
            res.clear()

    def state(self) -> dict:
        return {f: {"level": self.level[f],
                    "success_rate": (sum(self.results[f]) / len(self.results[f])) if self.results[f] else 0.0,
                    "window_episodes": len(self.results[f]),
                    "episodes": self.episodes[f]}
                for f in self.families}
