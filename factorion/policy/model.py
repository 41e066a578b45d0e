"""The policy: a transformer over grid cells with an autoregressive, masked action head.

One class serves behaviour cloning (:mod:`factorion.train.bc`) and PPO.

Tokens
------
* one **cell token** per grid cell: the sum of embeddings of its channels (kind, dir, item,
  recipe, io, part clipped to ``max_part``; see :mod:`factorion.core.world`) plus a fixed 2-D
  sinusoidal position code. The code has four equal parts: ``y``, ``x``, ``H-1-y`` and
  ``W-1-x``, so a cell knows where it is and how far the edges are on any grid size;
* **task tokens**: one per task item (``obs["task"]``) and one per task recipe
  (``obs["recipes"]``, plus a slot embedding: variant ``v`` means recipe slot ``v``); padding
  (id 0) is masked out of attention. Items and recipes share their embedding tables with the
  grid's ITEM and RECIPE channels, so a task item and the source holding it look alike;
* a **CLS** token carrying ``ratio`` (and ``step`` when ``config.see_step``: off by default, since
  the step fraction depends on the episode limit, which differs between BC, roll-outs and PPO).

The cell tokens first pass ``conv_stem`` residual 3x3 convolutions (zero padding, so the grid's
edge shows; any grid size): local shape -- which neighbour points where, where a line breaks --
comes at once instead of through many attention steps (on procedural level-3/4 tasks one conv
layer took a 0.3 M-parameter model's validation loss after 600 steps from 5.1 to 2.2 nats, cell
accuracy from 2 % to 62 %; two layers: 2.0 nats, 67 %). Then a pre-LayerNorm transformer
encoder runs over ``[CLS, task tokens, cells]``: self-attention over the whole grid.

Action head (autoregressive, the env's ``MultiDiscrete([3, H*W, n_entity, 4, n_variant])``)
-------------------------------------------------------------------------------------------
``op`` from CLS; ``cell`` a pointer over the cell tokens (query from CLS + op); ``entity``
from the chosen cell's token (+ CLS, op); ``dir`` from (cell, entity); ``variant`` from (cell,
entity, dir) plus a pointer over the recipe-slot tokens. Every stage is masked by the env's
conditional mask given the earlier choices (:class:`factorion.env.ActionMasks`; masked logits
are filled with ``finfo.min``). On stages an op ignores, the env's masks allow only 0, so the
policy puts all its mass there: zero log-prob and zero entropy. The value head reads CLS and
the mean of the cell tokens (no dependence on grid size).

Masks
-----
``forward`` takes masks as a dict of tensors with a leading batch axis, compact or dense (see
:mod:`factorion.policy.adapters`, which also turns env observations and masks into tensors).
``None`` means unmasked.

API
---
``Policy(PolicyConfig(...))``; ``policy.forward(obs, masks, actions=None, greedy=False, *,
temperature=1.0, trunk_cache=None, return_stage_logits=False, distinct=None)`` ->
``{"action", "logprob", "entropy", "value", "stage_logprob", "stage_entropy", "argmax"}``
(``actions`` given: evaluate them; else sample, or take the argmax with ``greedy=True``; the
keyword arguments: a tempered policy, a cached frozen trunk, the stage logits -- see
:meth:`Policy.forward`);
``policy.act(obs, masks, greedy=False)`` (numpy in, numpy out); ``Policy.load_from_checkpoint``
(a Lightning checkpoint of :class:`factorion.train.bc_module.BCModule` or a file from ``policy.save``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from factorion.core import gamedata as gd
from factorion.core.world import DIR, IO, ITEM, KIND, KINDS, PART, RECIPE
from factorion.env.masks import (
    DEFAULT_ENTITIES,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_RECIPES,
    N_OPS,
    STAGES,
    ActionLayout,
)
from factorion.policy.adapters import as_tensor, masks_to_tensors, obs_to_tensors, stage_mask

__all__ = ["PolicyConfig", "Policy", "PRESETS"]

@dataclass
class PolicyConfig:
    """Sizes of the policy. Vocabulary sizes default to the world's; ``entities`` is the env's
    placeable entity list (it fixes the meaning of the entity index)."""

    d_model: int = 160
    n_layers: int = 6
    n_heads: int = 5
    ff_mult: int = 4
    dropout: float = 0.0
    head_hidden: int = 0  # 0 = d_model
    conv_stem: int = 2  # residual 3x3 conv layers over the cell tokens before attention (local shape)
    max_part: int = 16  # PART channel clipped to this
    max_items: int = DEFAULT_MAX_ITEMS
    max_recipes: int = DEFAULT_MAX_RECIPES
    n_variant: int = max(2, DEFAULT_MAX_RECIPES)  # env ActionLayout.n_variant = max(2, max_recipes)
    entities: tuple[str, ...] = DEFAULT_ENTITIES
    n_kinds: int = len(KINDS)
    n_items: int = 0  # 0 = len(gamedata.item_names())
    n_recipes: int = 0  # 0 = len(gamedata.recipe_names())
    ratio_clip: float = 16.0  # the env's RATIO_CLIP; the CLS sees log1p(ratio)
    # whether the CLS sees ``step`` (steps taken / the env's max_steps). Off: the same state looks the
    # same under every episode limit (BC replays at 2*H*W, roll-outs truncate at 48, PPO at 24)
    see_step: bool = False

    def __post_init__(self):
        self.entities = tuple(self.entities)
        if not self.n_items:
            self.n_items = len(gd.item_names())
        if not self.n_recipes:
            self.n_recipes = len(gd.recipe_names())
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} not divisible by n_heads {self.n_heads}")
        if self.d_model % 8:
            raise ValueError("d_model must be a multiple of 8 (2-D sinusoidal code)")

    @property
    def n_entity(self) -> int:
        return len(self.entities)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["entities"] = list(self.entities)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> PolicyConfig:
        names = {f.name for f in fields(cls)}
        d = {**_ABSENT_MEANS, **d}  # configs saved before a field existed keep their old model
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def preset(cls, name: str, **overrides) -> PolicyConfig:
        return replace(PRESETS[name], **overrides)


#: Values of fields added after checkpoints existed, for configs saved without them.
_ABSENT_MEANS = {"conv_stem": 0, "see_step": True}

PRESETS: dict[str, PolicyConfig] = {
    "tiny": PolicyConfig(d_model=32, n_layers=1, n_heads=2, ff_mult=2, conv_stem=1),  # tests, smoke runs
    "small": PolicyConfig(d_model=96, n_layers=4, n_heads=4),  # CPU experiments
    # sized for 2 CPU cores: 9.2 MFLOP per 11x11 sample forward (small: 161.4; torch's FlopCounterMode,
    # `python -m benchmarks model`), ~76 k parameters: two 3x3 convs + two attention layers at d=32
    "cpu": PolicyConfig(d_model=32, n_layers=2, n_heads=2, ff_mult=2, conv_stem=2),
    "default": PolicyConfig(),  # ~2.9 M parameters
}


# ---------------------------------------------------------------------------------- modules
def sincos_2d(H: int, W: int, d: int, device=None) -> torch.Tensor:
    """``(H*W, d)`` fixed position code: four sinusoidal parts for y, x, H-1-y, W-1-x."""
    q = d // 4
    freqs = torch.exp(-math.log(100.0) * torch.arange(q // 2, device=device, dtype=torch.float32) / (q // 2))
    ys = torch.arange(H, device=device, dtype=torch.float32)
    xs = torch.arange(W, device=device, dtype=torch.float32)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    parts = []
    for c in (yy, xx, (H - 1) - yy, (W - 1) - xx):
        a = c.reshape(-1, 1) * freqs[None]
        parts += [a.sin(), a.cos()]
    pe = torch.cat(parts, -1)
    if pe.shape[1] < d:
        pe = F.pad(pe, (0, d - pe.shape[1]))
    return pe


class Block(nn.Module):
    """Pre-LayerNorm transformer block (scaled_dot_product_attention)."""

    def __init__(self, d: int, n_heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff_mult * d), nn.GELU(), nn.Linear(ff_mult * d, d))
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, L, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, L, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.p if self.training else 0.0
        )
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, L, d)))
        return x + self.drop(self.ff(self.ln2(x)))


class ConvBlock(nn.Module):
    """Residual 3x3 convolution over the cell tokens (zero padding: the grid's edge is visible)."""

    def __init__(self, d: int):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.conv = nn.Conv2d(d, d, 3, padding=1)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, d = x.shape
        y = F.gelu(self.norm(x)).transpose(1, 2).reshape(B, d, H, W)
        return x + self.conv(y).flatten(2).transpose(1, 2)


class ResMLP(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x):
        return x + self.net(x)


def _masked(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    logits = logits.float()
    if mask is None:
        return logits
    return logits.masked_fill(~mask, torch.finfo(logits.dtype).min)


def _choose(logits: torch.Tensor, greedy: bool) -> torch.Tensor:
    if greedy:
        return logits.argmax(-1)
    return torch.multinomial(F.softmax(logits, -1), 1).squeeze(-1)


def distinct_choice(logits: torch.Tensor, chosen: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Sampling without replacement within groups (the Gumbel-top-k trick): the rows that share an
    id ``>= 0`` in ``groups`` (rows whose ``logits`` are the same) take distinct entries, the
    first an exact sample of their first row's distribution, each next one a sample of what is
    left; as many rows as the distribution has allowed entries (``logits`` above ``finfo.min``),
    the others keep ``chosen``. Returns the new choices (``chosen`` is not changed)."""
    out = chosen.clone()
    allowed = logits > torch.finfo(logits.dtype).min / 2
    for gid in torch.unique(groups[groups >= 0]).tolist():
        rows = torch.nonzero(groups == gid).squeeze(1)
        first, ok = logits[rows[0]], allowed[rows[0]]
        k = min(len(rows), int(ok.sum()))
        if k < 2:
            continue
        gumbel = -torch.empty_like(first).exponential_().log()
        out[rows[:k]] = torch.topk(first.masked_fill(~ok, -math.inf) + gumbel, k).indices
    return out


# ---------------------------------------------------------------------------------- policy
class Policy(nn.Module):
    """See the module docstring."""

    def __init__(self, config: PolicyConfig | None = None):
        super().__init__()
        c = self.config = config or PolicyConfig()
        d = c.d_model
        hh = c.head_hidden or d
        self.kind_emb = nn.Embedding(c.n_kinds, d)
        self.dir_emb = nn.Embedding(4, d)
        self.item_emb = nn.Embedding(c.n_items + 1, d)
        self.recipe_emb = nn.Embedding(c.n_recipes + 1, d)
        self.io_emb = nn.Embedding(3, d)
        self.part_emb = nn.Embedding(c.max_part + 1, d)
        self.type_emb = nn.Embedding(3, d)  # 0 cell, 1 task item, 2 task recipe
        self.slot_emb = nn.Embedding(c.max_recipes, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.scalar_proj = nn.Linear(2, d)
        self.stem = nn.ModuleList(ConvBlock(d) for _ in range(c.conv_stem))
        self.blocks = nn.ModuleList(Block(d, c.n_heads, c.ff_mult, c.dropout) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(d)
        # action head
        self.op_head = nn.Sequential(ResMLP(d, hh), nn.LayerNorm(d), nn.Linear(d, N_OPS))
        self.op_act = nn.Embedding(N_OPS, d)
        self.cell_q = nn.Sequential(ResMLP(d, hh), nn.LayerNorm(d), nn.Linear(d, d))
        self.cell_k = nn.Linear(d, d)
        self.cell_bias = nn.Linear(d, N_OPS)
        self.ctx = nn.Linear(d, d)
        self.ent_mlp = ResMLP(d, hh)
        self.ent_out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, c.n_entity))
        self.ent_act = nn.Embedding(c.n_entity, d)
        self.dir_mlp = ResMLP(d, hh)
        self.dir_out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4))
        self.dir_act = nn.Embedding(4, d)
        self.var_mlp = ResMLP(d, hh)
        self.var_out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, c.n_variant))
        self.var_q = nn.Linear(d, d)
        self.var_k = nn.Linear(d, d)
        self.value_head = nn.Sequential(
            nn.LayerNorm(2 * d), nn.Linear(2 * d, hh), nn.GELU(), nn.Linear(hh, 1)
        )
        layout = ActionLayout(1, 1, c.entities, c.max_recipes)
        if layout.n_variant != c.n_variant:
            raise ValueError(f"n_variant {c.n_variant} != the env's {layout.n_variant}")
        self.register_buffer("fp_index", torch.as_tensor(layout.fp_index, dtype=torch.long), persistent=False)
        self._pe_cache: dict = {}
        #: lower blocks whose output ``forward`` returns as ``trunk`` and takes back as ``trunk_cache``
        #: (PPO's frozen trunk; 0: none)
        self.trunk_blocks = 0
        self.apply(self._init)
        nn.init.normal_(self.cls, std=0.02)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    # ------------------------------------------------------------------ helpers
    def num_params(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def device(self) -> torch.device:
        return self.cls.device

    def _pos(self, H: int, W: int, device) -> torch.Tensor:
        key = (H, W, str(device))
        if key not in self._pe_cache:
            self._pe_cache[key] = sincos_2d(H, W, self.config.d_model, device)
        return self._pe_cache[key]

    # ------------------------------------------------------------------ encoder
    def tokens(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(B, 1 + T + R + N, d)``: the CLS, task-item, task-recipe and cell tokens (after the
        conv stem) that enter the transformer blocks."""
        c = self.config
        g = obs["grid"].long()
        B, _, H, W = g.shape
        g = g.flatten(2)  # (B, C, N)

        def emb(table, idx):
            return table(idx.clamp(0, table.num_embeddings - 1))

        cells = (
            emb(self.kind_emb, g[:, KIND])
            + emb(self.dir_emb, g[:, DIR])
            + emb(self.item_emb, g[:, ITEM])
            + emb(self.recipe_emb, g[:, RECIPE])
            + emb(self.io_emb, g[:, IO])
            + emb(self.part_emb, g[:, PART])
            + self._pos(H, W, g.device)
            + self.type_emb.weight[0]
        )
        for conv in self.stem:
            cells = conv(cells, H, W)
        items = obs["task"].long()
        recs = obs["recipes"].long()
        R = recs.shape[1]
        item_tok = emb(self.item_emb, items) + self.type_emb.weight[1]
        rec_tok = emb(self.recipe_emb, recs) + self.type_emb.weight[2] + self.slot_emb.weight[:R]
        scal = torch.cat(
            [
                obs["step"].reshape(B, 1).float() * float(c.see_step),
                obs["ratio"].reshape(B, 1).float().clamp(0, c.ratio_clip).log1p(),
            ],
            -1,
        )
        cls = self.cls + self.scalar_proj(scal)[:, None]  # (B, 1, d)
        return torch.cat([cls, item_tok, rec_tok, cells], 1)

    def encode(
        self, obs: Mapping[str, torch.Tensor], trunk_cache: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Token states: ``cls (B,d)``, ``cells (B,N,d)``, ``recipes (B,R,d)``, ``recipe_valid``;
        with ``trunk_blocks = k > 0`` also ``trunk``: the output of ``blocks[:k]``, which a later
        call takes back as ``trunk_cache`` instead of running the embedding and those blocks."""
        g, items, recs = obs["grid"], obs["task"].long(), obs["recipes"].long()
        B, _, H, W = g.shape
        T, R = items.shape[1], recs.shape[1]
        keep = torch.cat(
            [
                torch.ones(B, 1, dtype=torch.bool, device=g.device),
                items != 0,
                recs != 0,
                torch.ones(B, H * W, dtype=torch.bool, device=g.device),
            ],
            1,
        )
        attn_mask = None if bool(keep.all()) else keep[:, None, None, :]
        k = self.trunk_blocks
        replay = k > 0 and trunk_cache is not None
        x = trunk_cache if replay else self.tokens(obs)
        trunk = trunk_cache if replay else None
        for i, blk in enumerate(self.blocks):
            if replay and i < k:
                continue
            x = blk(x, attn_mask)
            if i == k - 1:
                trunk = x
        x = self.ln_f(x)
        enc = {
            "cls": x[:, 0],
            "cells": x[:, 1 + T + R :],
            "recipes": x[:, 1 + T : 1 + T + R],
            "recipe_valid": recs != 0,
        }
        if trunk is not None:
            enc["trunk"] = trunk
        return enc

    def value_from(self, enc: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.value_head(torch.cat([enc["cls"], enc["cells"].mean(1)], -1)).squeeze(-1)

    # ------------------------------------------------------------------ head
    def head(
        self,
        enc: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor] | None,
        actions: torch.Tensor | None = None,
        greedy: bool = False,
        temperature: float = 1.0,
        distinct: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run the five stages. ``actions`` given: teacher-forced evaluation; else choose (sample
        or argmax). Every stage's logits are divided by ``temperature`` before masking.
        ``distinct`` (sampling only): ``(B,)`` group ids; rows of one group (``>= 0``) that sample
        the same op take distinct cells (:func:`distinct_choice`). Returns
        ``action``, ``stage_logprob``, ``stage_entropy``, ``argmax`` (the argmax of each stage
        given the prefix actually used) and ``stage_logits`` (each stage's tempered, masked
        logits, a list in stage order)."""
        cls, cells = enc["cls"], enc["cells"]
        B, N, d = cells.shape
        b = torch.arange(B, device=cls.device)
        chosen: list[torch.Tensor] = []
        lps, ents, amax, stage_logits = [], [], [], []
        scale = 1.0 / math.sqrt(d)

        def stage(s: int, logits: torch.Tensor) -> torch.Tensor:
            m = stage_mask(masks, STAGES[s], chosen, self.fp_index) if masks is not None else None
            if temperature != 1.0:
                logits = logits.float() / temperature
            logits = _masked(logits, m)
            stage_logits.append(logits)
            logp = F.log_softmax(logits, -1)
            p = logp.exp()
            plogp = p * logp
            if m is not None:
                plogp = plogp.masked_fill(~m, 0.0)
            ents.append(-plogp.sum(-1))
            amax.append(logits.argmax(-1))
            a = actions[:, s].long() if actions is not None else _choose(logits, greedy)
            if s == 1 and distinct is not None and actions is None and not greedy:
                n_op = stage_logits[0].shape[1]  # a group's rows split by the op each sampled
                a = distinct_choice(logits, a, torch.where(distinct >= 0, distinct * n_op + chosen[0], -1))
            lps.append(logp.gather(1, a[:, None]).squeeze(1))
            chosen.append(a)
            return a

        op = stage(0, self.op_head(cls))
        h = cls + self.op_act(op)
        q = self.cell_q(h)
        cell_logits = torch.einsum("bd,bnd->bn", q, self.cell_k(cells)) * scale + self.cell_bias(
            cells
        ).gather(2, op[:, None, None].expand(B, N, 1)).squeeze(2)
        cell = stage(1, cell_logits)
        h = self.ent_mlp(cells[b, cell] + self.ctx(cls) + self.op_act(op))
        ent = stage(2, self.ent_out(h))
        h = self.dir_mlp(h + self.ent_act(ent))
        dr = stage(3, self.dir_out(h))
        h = self.var_mlp(h + self.dir_act(dr))
        var_logits = self.var_out(h)
        rq = torch.einsum("bd,brd->br", self.var_q(h), self.var_k(enc["recipes"])) * scale
        rq = rq.masked_fill(~enc["recipe_valid"], 0.0)
        V, R = var_logits.shape[1], rq.shape[1]
        var_logits = var_logits + F.pad(rq, (0, max(0, V - R)))[:, :V]
        stage(4, var_logits)
        return {
            "action": torch.stack(chosen, 1),
            "stage_logprob": torch.stack(lps, 1),
            "stage_entropy": torch.stack(ents, 1),
            "argmax": torch.stack(amax, 1),
            "stage_logits": stage_logits,
        }

    def forward(
        self,
        obs: Mapping,
        masks=None,
        actions: torch.Tensor | None = None,
        greedy: bool = False,
        *,
        temperature: float = 1.0,
        trunk_cache: torch.Tensor | None = None,
        return_stage_logits: bool = False,
        distinct: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``obs``: dict of batched tensors (or arrays; see :func:`obs_to_tensors`); ``masks``:
        see :func:`masks_to_tensors` (``None`` = unmasked). Returns ``action (B,5)``,
        ``logprob (B,)`` (sum over stages), ``entropy (B,)`` (sum of the stage entropies given
        the prefix), ``value (B,)``, ``stage_logprob``/``stage_entropy`` ``(B,5)`` and
        ``argmax (B,5)``.

        ``temperature``: the policy is ``softmax(logits / temperature)`` at every stage
        (sampling, log-probs, entropies; PPO trains the tempered policy). ``trunk_cache``: the
        output of the lower ``trunk_blocks`` blocks from an earlier call (its ``trunk``, returned
        whenever ``trunk_blocks > 0``), run instead of them. ``return_stage_logits``: also
        ``stage_logits``, each stage's tempered, masked logits (a list in stage order).
        ``distinct``: ``(B,)`` group ids whose rows sample distinct cells (see :meth:`head`)."""
        dev = self.device
        obs = obs_to_tensors(obs, dev)
        masks = masks_to_tensors(masks, dev)
        if actions is not None:
            actions = as_tensor(actions, dev, torch.long).reshape(-1, len(STAGES))
        enc = self.encode(obs, trunk_cache)
        out = self.head(enc, masks, actions, greedy, temperature,
                        None if distinct is None else as_tensor(distinct, dev, torch.long))
        if not return_stage_logits:
            del out["stage_logits"]
        out["logprob"] = out["stage_logprob"].sum(1)
        out["entropy"] = out["stage_entropy"].sum(1)
        out["value"] = self.value_from(enc)
        if "trunk" in enc:
            out["trunk"] = enc["trunk"]
        return out

    def get_value(self, obs: Mapping) -> torch.Tensor:
        """``(B,)`` value estimates only (no action head; PPO bootstrapping)."""
        return self.value_from(self.encode(obs_to_tensors(obs, self.device)))

    @torch.no_grad()
    def act(self, obs: Mapping, masks=None, greedy: bool = False) -> np.ndarray:
        """One action per observation as numpy (``(5,)`` for a single observation, else
        ``(B, 5)``); masks as the env gives them (``env.action_masks()``)."""
        was = self.training
        if was:  # (toggling walks every module: ~20 % of a small policy's roll-out time)
            self.eval()
        try:
            single = np.ndim(obs["grid"]) == 3
            a = self.forward(obs, masks, greedy=greedy)["action"].cpu().numpy()
        finally:
            if was:
                self.train(True)
        return a[0] if single else a

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path) -> None:
        """A plain checkpoint: ``{"config": dict, "state_dict": ...}``."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"config": self.config.to_dict(), "state_dict": self.state_dict()}, path)

    @classmethod
    def load_from_checkpoint(cls, path: str | Path, map_location: Any = "cpu") -> Policy:
        """A policy from a Lightning checkpoint of :class:`factorion.train.bc_module.BCModule` (or any
        module holding the policy as ``self.policy`` with ``policy_config`` in its hparams)
        or from :meth:`save`. Loads with ``weights_only=True``; ``policy.source`` is ``path``."""
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        if "config" in ckpt:
            cfg, state = ckpt["config"], ckpt["state_dict"]
        else:
            hp = ckpt.get("hyper_parameters", {})
            if "policy_config" not in hp:
                raise ValueError(f"{path}: no policy_config in the checkpoint's hyper_parameters")
            cfg = hp["policy_config"]
            state = {k[len("policy.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("policy.")}
        policy = cls(PolicyConfig.from_dict(cfg))
        policy.load_state_dict(state)
        policy.eval()
        policy.source = str(path)  # where it came from (a build names the model that ran by it)
        return policy.to(map_location) if isinstance(map_location, str | torch.device) else policy
