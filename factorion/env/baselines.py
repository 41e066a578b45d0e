"""Baseline agents: a uniformly random *valid* agent and an episode runner.

:class:`RandomAgent` samples stage by stage (op -> cell -> entity -> dir -> variant), each
uniformly among the choices the masks allow given the earlier ones, so it never takes an
invalid action. It works on the single env (unbatched masks -> one action ``(5,)``) and on the
vector env (masks with a leading ``B`` axis -> actions ``(B, 5)``), with the env's
:class:`~factorion.env.ActionMasks` (fast conditional masks) or a plain dict of dense masks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from factorion.env.masks import OP_PLACE, STAGES


def _stage_mask(masks: Mapping, stage: str, prefix: Sequence[np.ndarray], B: int) -> np.ndarray:
    """``(B, n)`` mask of ``stage`` given ``prefix`` from a dense-mask dict with a batch axis."""
    b = np.arange(B)
    if stage == "op":
        return masks["op"]
    if stage == "cell":
        return masks["cell"][b, prefix[0]]
    op, cell = prefix[0], prefix[1]
    if stage == "entity":
        m = masks["entity"][b, cell]
    elif stage == "dir":
        m = masks["dir"][b, cell, prefix[2]]
    else:
        m = masks["variant"][b, prefix[2]]
    ignored = op != OP_PLACE
    if ignored.any():  # heads after op/cell that do not matter: the canonical 0
        m = m.copy()
        m[ignored] = False
        m[ignored, 0] = True
    return m


def sample_uniform(rng: np.random.Generator, mask: np.ndarray,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """``(B,)``: one index per row, uniformly (or by ``weights``) among the True entries
    (rows with none give 0)."""
    u = rng.random(mask.shape)
    if weights is not None:
        u = u ** (1.0 / np.asarray(weights, dtype=np.float64))  # weighted reservoir keys
    u[~mask] = -1.0
    return u.argmax(axis=-1)


class RandomAgent:
    """Uniformly random among valid actions, stage by stage.

    ``op_weights`` (3,) optionally re-weights place / remove / finish among the valid ops
    (default uniform; weights must be positive).
    """

    def __init__(self, seed: int | None = None, op_weights: Sequence[float] | None = None):
        self.rng = np.random.default_rng(seed)
        self.op_weights = None if op_weights is None else np.asarray(op_weights, dtype=np.float64)

    def act(self, masks: Mapping) -> np.ndarray:
        batched = np.ndim(masks["op"]) == 2
        fast = hasattr(masks, "mask_for")
        if not fast and not batched:
            masks = {k: np.asarray(masks[k])[None] for k in STAGES}
        B = np.shape(masks["op"])[0] if batched or not fast else 1
        prefix: list[np.ndarray] = []
        for stage in STAGES:
            if fast:
                m = masks.mask_for(stage, prefix) if batched else \
                    masks.mask_for(stage, [p[0] for p in prefix])[None]
            else:
                m = _stage_mask(masks, stage, prefix, B)
            prefix.append(sample_uniform(self.rng, np.asarray(m, dtype=bool),
                                         self.op_weights if stage == "op" else None))
        a = np.stack(prefix, axis=-1).astype(np.int64)
        return a if batched else a[0]


def run_episode(env, agent, *, seed: int | None = None, options: dict | None = None) -> dict:
    """Play one episode of a single env with ``agent.act(env.action_masks())``."""
    t0 = time.perf_counter()
    _, info = env.reset(seed=seed, options=options)
    ratio0, total, sim_time = info["ratio"], 0.0, info["sim_time_s"]
    terminated = truncated = False
    while not (terminated or truncated):
        _, r, terminated, truncated, info = env.step(agent.act(env.action_masks()))
        total += r
        sim_time += info["sim_time_s"]
    return {"return": total, "steps": info["steps"], "initial_ratio": ratio0, "ratio": info["ratio"],
            "throughput": info["throughput"], "entities": info["entities"], "n_placed": info["n_placed"],
            "n_removed": info["n_removed"], "n_invalid": info["n_invalid"],
            "success": info.get("success", False), "terminated": terminated, "truncated": truncated,
            "family": info["family"], "level": info["level"], "sim_time_s": sim_time,
            "wall_s": time.perf_counter() - t0}
