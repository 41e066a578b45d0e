"""Which tasks each stage of the project sees: the families that fit a grid size
(:func:`families_for`) and the disjoint seed ranges of ``make_task(family, level, size, seed)``.

=====================  ==============================================================
seeds                  used by
=====================  ==============================================================
``TRAIN_SEED0`` ..     behaviour cloning's procedural training tasks (below ``VAL_SEED0``)
``PPO_EVAL_SEED0`` ..  PPO's greedy held-out evaluation (``eval_seeds`` per family/level)
``BENCH_SEED0`` ..     ``make evaluate``'s procedural benchmark (``n_seeds`` per family/level)
``DEMO_TRAIN_SEED0``   ``make demos``' training demonstrations (10,000 per family/level/size cell)
``VAL_SEED0`` ..       behaviour cloning's validation tasks
``DEMO_VAL_SEED0`` ..  ``make demos``' validation demonstrations
``DAGGER_SEED0`` ..    ``make pretrain``'s DAgger roll-out tasks
``ROLLOUT_SEED0`` ..   behaviour cloning's validation roll-outs in the env
``TEST_SEED0`` ..      held-out test tasks (never trained or validated on)
=====================  ==============================================================

PPO trains on tasks its env draws from its own generator (curriculum pools), not from these
ranges; its evaluation and the benchmark use a few fixed small seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

from factorion.tasks.base import FAMILIES, MIN_SIZE

TRAIN_SEED0 = 0
PPO_EVAL_SEED0 = 10_000
BENCH_SEED0 = 20_000
DEMO_TRAIN_SEED0 = 5_000_000
VAL_SEED0 = 1_000_000_000
DEMO_VAL_SEED0 = 1_100_000_000
DAGGER_SEED0 = 1_300_000_000
ROLLOUT_SEED0 = 1_500_000_000
TEST_SEED0 = 2_000_000_000


def families_for(size: int, families: Sequence[str] | None = None) -> list[str]:
    """``families`` (default: every family) that fit a ``size`` x ``size`` grid, in order."""
    fams = list(families) if families else list(FAMILIES)
    return [f for f in fams if MIN_SIZE.get(f, 0) <= size]
