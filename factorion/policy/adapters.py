"""The policy's adapters to the env: an env observation or a batch of them as tensors
(:func:`obs_to_tensors`), the env's action masks as tensors in their compact or dense form
(:func:`masks_to_tensors`), the conditional mask of one action stage given the earlier choices
(:func:`stage_mask`, the torch twin of :meth:`factorion.env.masks.ActionMasks.mask_for`) and
whether whole actions are allowed (:func:`valid_actions`).

Masks are a dict of bool tensors with a leading batch axis, **compact** ``op (B,3)``,
``cell (B,3,N)``, ``fit (B,F,N)``, ``ed_ok (B,E,4)``, ``variant (B,E,V)`` (the env's internal
tables: the dense ``dir`` mask is ``fit[fp_index[e, d], cell] & ed_ok[e, d]``), or **dense**
``op``, ``cell``, ``entity (B,N,E)``, ``dir (B,N,E,4)``, ``variant``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from factorion.env.masks import OP_PLACE, STAGES

__all__ = ["MASK_KEYS_COMPACT", "MASK_KEYS_DENSE", "as_tensor", "index_rows", "masks_to_tensors",
           "obs_to_tensors", "stage_mask", "valid_actions"]

MASK_KEYS_COMPACT = ("op", "cell", "fit", "ed_ok", "variant")
MASK_KEYS_DENSE = ("op", "cell", "entity", "dir", "variant")


def as_tensor(x, device, dtype=None) -> torch.Tensor:
    """``x`` (tensor or array-like) as a tensor on ``device`` (and of ``dtype``)."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype) if dtype is not None else x.to(device)
    a = np.asarray(x)
    if not a.flags.writeable:  # e.g. np.broadcast_to views: torch wants writable memory
        a = a.copy()
    return torch.as_tensor(a, device=device, dtype=dtype)


def obs_to_tensors(obs: Mapping, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """An env observation (one, or a batch with a leading B axis) as batched tensors."""
    grid = as_tensor(obs["grid"], device, torch.long)
    single = grid.dim() == 3
    out = {"grid": grid}
    for k in ("task", "recipes"):
        out[k] = as_tensor(obs[k], device, torch.long)
    for k in ("step", "ratio"):
        out[k] = as_tensor(obs[k], device, torch.float32) if k in obs else None
    if single:
        out = {k: (v[None] if v is not None else None) for k, v in out.items()}
    B = out["grid"].shape[0]
    for k in ("step", "ratio"):
        out[k] = torch.zeros(B, 1, device=out["grid"].device) if out[k] is None else out[k].reshape(B, 1)
    return out


def masks_to_tensors(masks, device: torch.device | str | None = None) -> dict[str, torch.Tensor] | None:
    """Masks as a dict of bool tensors with a batch axis (compact form where possible).

    Accepts an :class:`factorion.env.masks.ActionMasks` (single or batched; its compact internals
    are used, the dense ``dir`` is never built), or a mapping of arrays/tensors in the compact
    or the dense form, with or without the batch axis.
    """
    if masks is None:
        return None
    if hasattr(masks, "fit") and hasattr(masks, "ed_ok") and hasattr(masks, "layout"):
        src = {
            "op": masks.op,
            "cell": masks.cell,
            "fit": masks.fit,
            "ed_ok": masks.ed_ok,
            "variant": masks.variant,
        }  # the internal tables are batched even when batched=False
    else:
        src = dict(masks.items())
    keys = MASK_KEYS_COMPACT if "fit" in src else MASK_KEYS_DENSE
    out = {k: as_tensor(src[k], device, torch.bool) for k in keys}
    if out["op"].dim() == 1:
        out = {k: v[None] for k, v in out.items()}
    return out


def _onehot0(B: int, n: int, device) -> torch.Tensor:
    m = torch.zeros(B, n, dtype=torch.bool, device=device)
    m[:, 0] = True
    return m


def stage_mask(
    masks: Mapping[str, torch.Tensor],
    stage: str,
    prefix: Sequence[torch.Tensor],
    fp_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(B, n)`` mask of ``stage`` given the earlier choices (the torch twin of
    :meth:`factorion.env.masks.ActionMasks.mask_for`). ``fp_index`` ``(E, 4)`` is needed for compact
    masks."""
    B = masks["op"].shape[0]
    b = torch.arange(B, device=masks["op"].device)
    if stage == "op":
        return masks["op"]
    op = prefix[0]
    if stage == "cell":
        return masks["cell"][b, op]
    cell = prefix[1]
    compact = "fit" in masks
    if stage == "entity":
        if compact:
            f = masks["fit"][b, :, cell]  # (B, F)
            out = (f[:, fp_index] & masks["ed_ok"]).any(-1)  # (B, E)
        else:
            out = masks["entity"][b, cell]
    elif stage == "dir":
        e = prefix[2]
        if compact:
            f = masks["fit"][b, :, cell]
            out = f.gather(1, fp_index[e]) & masks["ed_ok"][b, e]  # (B, 4)
        else:
            out = masks["dir"][b, cell, e]
    elif stage == "variant":
        out = masks["variant"][b, prefix[2]]
    else:
        raise KeyError(stage)
    ignored = op != OP_PLACE
    return torch.where(ignored[:, None], _onehot0(B, out.shape[1], out.device), out)


def valid_actions(
    masks: Mapping[str, torch.Tensor], actions: torch.Tensor, fp_index: torch.Tensor | None = None
) -> torch.Tensor:
    """``(B,)`` whether each action is allowed by every stage's conditional mask (ignored
    fields must be 0, as the policy emits them)."""
    ok = torch.ones(actions.shape[0], dtype=torch.bool, device=actions.device)
    b = torch.arange(actions.shape[0], device=actions.device)
    for s, stage in enumerate(STAGES):
        m = stage_mask(masks, stage, [actions[:, i] for i in range(s)], fp_index)
        a = actions[:, s]
        inside = (a >= 0) & (a < m.shape[1])
        ok &= inside & m[b, a.clamp(0, m.shape[1] - 1)]
    return ok


def index_rows(batch: Mapping, idx: torch.Tensor) -> dict:
    """The rows ``idx`` of every tensor in a (nested) dict of batched tensors."""
    return {k: (index_rows(v, idx) if isinstance(v, Mapping) else v[idx]) for k, v in batch.items()}
