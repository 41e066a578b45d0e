"""The compiled mask pass (env_masks.mask_arrays) gives exactly the numpy reference's masks."""

from __future__ import annotations

import numpy as np
import pytest

from factorion.env import masks as M
from factorion.sim.fuzz import random_factory


def _numpy_reference(layout, grids, fp_any):
    fit = M.fit_maps(grids, layout.footprints)
    removable = M.removable_cells(grids)
    place = np.zeros(removable.shape, dtype=bool)
    for f in range(len(layout.footprints)):
        place |= fit[:, f] & fp_any[:, f, None]
    cell = np.stack([place, removable, M.onehot0(len(grids), layout.n_cells)], 1)
    op = np.stack([place.any(1), removable.any(1), np.ones(len(grids), bool)], 1)
    return fit, cell, op


@pytest.mark.parametrize("shape", [(11, 11), (7, 9), (2, 2), (1, 5), (4, 64)])
def test_compiled_masks_equal_numpy_reference(shape):
    if M.kernel() is None:
        pytest.skip("no compiler (FACTORION_NOJIT or numba missing)")
    H, W = shape
    layout = M.ActionLayout(H, W)
    rng = np.random.default_rng(H * 100 + W)
    grids = np.stack([random_factory(int(s), H, W).grid for s in rng.integers(1 << 30, size=24)])
    grids[0] = 0                                    # an empty world
    fp_any = rng.random((len(grids), len(layout.footprints))) < 0.7
    fp_any[1] = False                               # a task where nothing can be placed
    got = M.mask_arrays(layout, grids, fp_any)
    want = _numpy_reference(layout, grids, fp_any)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("B", [5, 64])
def test_compiled_step_matches_numpy_path(B):
    """The vector env's compiled edit pass and its numpy reference path: same grids, rewards,
    validity, skips and masks along random trajectories (valid and arbitrary actions)."""
    from factorion.env.baselines import RandomAgent
    from factorion.env.kernels import compiled
    from factorion.env.vector import FactorioVectorEnv
    if compiled("edit_pass") is None:
        pytest.skip("no compiler (FACTORION_NOJIT or numba missing)")
    envs = [FactorioVectorEnv(B, 9, task_pool=8, task_pool_refresh=0.0, max_steps=30) for _ in range(2)]
    envs[1].use_kernels = False
    for v in envs:
        v.reset(seed=3)
    agent = RandomAgent(1, op_weights=(0.7, 0.25, 0.05))
    raw = np.random.default_rng(2)
    for t in range(40):
        a = agent.act(envs[0].action_masks())
        if t % 3 == 0:
            a[::2] = raw.integers(-1, envs[0].layout.nvec + 1, size=a[::2].shape)
        out = [v.step(a.copy()) for v in envs]
        for x, y in zip(out[0][:4], out[1][:4], strict=True):
            if isinstance(x, dict):
                for k in x:
                    np.testing.assert_array_equal(x[k], y[k])
            else:
                np.testing.assert_array_equal(x, y)
        for k in ("invalid", "throughput", "entities", "autoreset"):
            np.testing.assert_array_equal(out[0][4][k], out[1][4][k])
        for k, m in envs[0].action_masks().compact().items():
            np.testing.assert_array_equal(m, envs[1].action_masks().compact()[k])
    np.testing.assert_array_equal(envs[0].n_skipped, envs[1].n_skipped)
    assert envs[0].n_skipped.sum() > 0
