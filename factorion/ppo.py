"""PPO fine-tuning of the policy on the batched env (one readable loop in the spirit of CleanRL's
``ppo.py``). Entry point: :mod:`factorion.train_ppo`; everything is configured by :class:`Args`.

Algorithm
---------
* **Rollout**: ``num_envs`` factories in one :class:`~factorion.env_vector.FactorioVectorEnv`
  (``autoreset_mode="same_step"``: no junk transitions), ``num_steps`` steps per iteration. Each
  step stores the observation, the action, its log-prob, the value and the **path masks**: the
  conditional mask of every stage along the taken action (``op (3,)``, the ``cell`` row of the
  taken op ``(N,)``, the ``entity`` row of the taken cell ``(E,)``, the ``dir`` row of (cell,
  entity) ``(4,)``, the ``variant`` row of the entity ``(V,)``), computed with
  :func:`factorion.model.stage_mask` -- the very function the policy applied. In the update
  they are re-applied as a dense mask built with ``expand`` (no copy; see :func:`path_masks`),
  which under teacher forcing gives the model exactly the stage masks of the rollout, so the
  log-prob of the taken action is the same function of the parameters (tested).
* **Returns**: GAE (:func:`compute_gae`). An episode that ends by truncation (``max_steps``)
  is bootstrapped with ``V(final obs)``, never treated as terminal; ``finish`` is terminal.
* **Loss**: clipped surrogate + clipped value loss - annealed entropy bonus + a KL penalty to the
  frozen initial (BC) policy whose weight decays linearly from ``bc_kl_coef`` to
  ``bc_kl_coef_end`` over the run: the exact ``KL(pi_bc || pi)`` of every stage's conditional
  distribution along the taken path (:func:`stage_kl`; the reference's per-stage log-softmax is
  stored at rollout). A sampled estimate on the taken action (``k3``, logged as
  ``losses/kl_to_bc_sampled``) did not hold the policy: once ``pi(finish)`` nears 1 its gradient
  vanishes, and runs collapsed onto ``finish`` at KL 3-4 nats.
* **Temperature**: the trained and sampled policy is ``softmax(logits / temperature)``
  (default 0.5; evaluation is greedy, which no temperature changes). A weak BC policy sampled at
  temperature 1 mostly damages factories, which teaches "finish at once".
* **Critic warm-up**: the first ``critic_warmup`` iterations train the value head only (the
  encoder and every action head are frozen: the actor does not move).
* **Early stop**: per minibatch, once the approximate KL to the rollout policy passes
  ``target_kl`` the update of this iteration stops.
* **Curriculum**: a :class:`factorion.tasks.Curriculum` is handed to the env, which draws
  (family, level) from it at every reset and reports each episode's success to it.
* **Devices**: Lightning Fabric (``accelerator`` / ``devices`` / ``strategy`` / ``precision``);
  every rank runs its own envs and curriculum, gradients are averaged by the strategy (DDP),
  the KL early-stop decision is all-reduced so ranks stay in step. Rank 0 logs and saves.

Speed on a CPU: the update trains the top ``train_blocks`` transformer blocks and the heads
only; the frozen lower blocks' output is captured during the rollout forward, stored, and
replayed in every update minibatch (and for the BC reference, whose lower blocks are the same),
so the update and the reference cost a fraction of a full forward. ``train_blocks=-1`` trains
everything (and a policy from scratch always does).

Defaults (for ``make finetune``: 30 minutes on 2 CPU cores, ~15-20 SPS with the default model)
start the curriculum at level 3 with a quarter of rehearsal on levels 1-2: a run that sat on
level 2 (working but throttled factories, where the sampled BC policy mostly breaks things)
learnt to ``finish`` at once everywhere (episode length 1.1, KL to BC 3 nats), which also
throws away the level-3 repairs BC had. Hence also a strong, slowly decaying KL to BC and almost
no entropy bonus.

Outputs (``<out>/<run>/``): ``metrics.csv`` (one row per iteration), ``last.ckpt`` (the
policy's ``config`` + ``state_dict`` -- loadable by ``Policy.load_from_checkpoint`` -- plus
optimizer, iteration, step count and curriculum state, for ``--resume``), ``policy.pt``
(:meth:`Policy.save` at the end), ``eval.json`` (:func:`evaluate_policy` of the initial and the
final policy, greedy, fixed held-out seeds) and ``wandb/`` (offline unless configured).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .env import OP_FINISH, STAGES
from .model import Policy, PolicyConfig, masks_to_tensors, obs_to_tensors, stage_mask

OBS_KEYS = ("grid", "task", "recipes", "step", "ratio")
MASK_STAGES = STAGES  # op, cell, entity, dir, variant
EVAL_SEED0 = 10_000


# ---------------------------------------------------------------------------------- arguments
@dataclass
class Args:
    """Every knob of a PPO run (``train_ppo`` exposes each as ``--kebab-case``)."""

    # run
    run: str = ""  # run name: <out>/<run>; "" = smoke / finetune / scratch
    out: str = "models/ppo"
    init: str = "models/bc/last.ckpt"  # BC checkpoint to start from (and the KL reference)
    scratch: bool = False  # a fresh policy of `preset` instead (no KL reference)
    preset: str = "small"  # model preset for --scratch
    resume: bool = False  # continue <out>/<run>/last.ckpt
    seed: int = 0
    minutes: float = 30.0  # wall-clock budget of the whole command (training + evaluation); 0 = none
    total_steps: int = 0  # env steps (all ranks); 0 = until `minutes`
    threads: int = 1  # torch CPU threads (0 = all cores); 1 is fastest on a shared 2-core machine
    # env
    size: int = 11
    num_envs: int = 32
    num_steps: int = 16  # steps per env per iteration
    max_steps: int = 24  # episode truncation (bootstrapped)
    families: tuple[str, ...] = ()  # () = every family that fits the grid
    task_pool: int = 128  # tasks kept per (family, level), see env TaskSource
    task_pool_refresh: float = 0.1
    entity_cost: float = -1.0  # reward per entity on the map (< 0: the env's default)
    # curriculum
    level: int = 0  # > 0: a fixed level, no curriculum
    start_level: int = 3  # the repair levels BC learnt; 1-2 are rehearsed (working factories: keep them)
    max_level: int = 5
    promote_at: float = 0.8
    window: int = 32
    rehearse: float = 0.25
    # PPO
    lr: float = 5e-5
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 2
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    vf_coef: float = 0.5
    ent_coef: float = 0.001  # annealed linearly to ent_coef_end
    ent_coef_end: float = 0.0
    bc_kl_coef: float = 0.5  # KL(pi || pi_bc) weight, decays linearly to bc_kl_coef_end
    bc_kl_coef_end: float = 0.1
    max_grad_norm: float = 0.5
    target_kl: float = 0.05  # per-minibatch early stop (<= 0: off)
    critic_warmup: int = 3  # iterations training the value head only
    temperature: float = 0.5  # the trained (and sampled) policy is softmax(logits / temperature)
    train_blocks: int = 2  # top transformer blocks trained (+ heads); the rest frozen and cached; -1: all
    # devices (Lightning Fabric)
    accelerator: str = "auto"
    devices: str = "1"
    strategy: str = "auto"
    precision: str = "32-true"
    # logging, checkpoints, evaluation
    wandb: bool = True
    wandb_project: str = "factorion"
    log_every: int = 1  # console line every N iterations
    save_minutes: float = 5.0
    eval: bool = True
    eval_init: bool = True  # also evaluate the starting policy (the baseline)
    eval_seeds: int = 3
    eval_levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    eval_max_steps: int = 0  # 0 = max_steps
    smoke: bool = False

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return max(1, self.batch_size // self.num_minibatches)


SMOKE = {"preset": "tiny", "num_envs": 8, "num_steps": 8, "max_steps": 16, "total_steps": 256, "minutes": 3.0,
         "task_pool": 8, "num_minibatches": 2, "update_epochs": 2, "critic_warmup": 1, "eval_seeds": 1,
         "eval_levels": (1, 3), "save_minutes": 0.0}


def apply_smoke(args: Args) -> Args:
    """Tiny everything, a run of about a minute (tests, the demo): the :data:`SMOKE` values
    replace the fields still at their defaults (explicit settings win)."""
    args.smoke = True
    default = Args()
    for k, v in SMOKE.items():
        if getattr(args, k) == getattr(default, k):
            setattr(args, k, v)
    return args


# ---------------------------------------------------------------------------------- GAE
def compute_gae(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor,
                truncated: torch.Tensor, final_values: torch.Tensor, next_value: torch.Tensor,
                gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns ``(T, B)`` of a rollout.

    ``values[t]`` = V(s_t); ``terminated[t]`` / ``truncated[t]``: the episode ended at step t
    (by ``finish`` / by the step limit); ``final_values[t]`` = V(final observation of step t),
    read where ``truncated[t]``; ``next_value`` ``(B,)`` = V of the observation after the last
    step. The value after step t is 0 if terminated, ``final_values[t]`` if truncated (the
    episode goes on in principle: bootstrap), else ``values[t+1]``; GAE does not run across an
    episode boundary either way.
    """
    T = rewards.shape[0]
    term, trunc = terminated.bool(), truncated.bool()
    adv = torch.zeros_like(values)
    last = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        v_next = next_value if t == T - 1 else values[t + 1]
        v_next = torch.where(trunc[t], final_values[t], v_next)
        v_next = torch.where(term[t], torch.zeros_like(v_next), v_next)
        delta = rewards[t] + gamma * v_next - values[t]
        cont = (~(term[t] | trunc[t])).to(values.dtype)
        last = delta + gamma * lam * cont * last
        adv[t] = last
    return adv, adv + values


def explained_variance(y_pred: torch.Tensor, y_true: torch.Tensor) -> float:
    var = torch.var(y_true)
    return float("nan") if var.item() == 0 else float(1 - torch.var(y_true - y_pred) / var)


# ---------------------------------------------------------------------------------- masks
def taken_path_masks(masks: Mapping[str, torch.Tensor], actions: torch.Tensor,
                     fp_index: torch.Tensor) -> dict[str, torch.Tensor]:
    """The conditional mask of each stage along the taken ``actions`` ``(B, 5)``:
    ``op (B,3)``, ``cell (B,N)``, ``entity (B,E)``, ``dir (B,4)``, ``variant (B,V)`` -- with
    :func:`factorion.model.stage_mask`, the function the policy applies."""
    pre = [actions[:, i] for i in range(len(MASK_STAGES))]
    return {s: stage_mask(masks, s, pre[:i], fp_index) for i, s in enumerate(MASK_STAGES)}


def path_masks(pm: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Path masks as the model's *dense* mask form, every row broadcast with ``expand`` (no
    copy). Teacher-forced on the taken action, :func:`~factorion.model.stage_mask` then picks
    exactly the stored rows (the ignored-stage override is idempotent)."""
    op, cell, ent, dr, var = (pm[s] for s in MASK_STAGES)
    B, N, E = cell.shape[0], cell.shape[1], ent.shape[1]
    return {"op": op, "cell": cell[:, None].expand(B, op.shape[1], N),
            "entity": ent[:, None].expand(B, N, E), "dir": dr[:, None, None].expand(B, N, E, dr.shape[1]),
            "variant": var[:, None].expand(B, E, var.shape[1])}


# ---------------------------------------------------------------------------------- rollout buffer
class Rollout:
    """``(T, B, ...)`` tensors of one iteration, on ``device``."""

    def __init__(self, T: int, B: int, obs_space, n_cells: int, n_entity: int, n_variant: int, device):
        def z(*shape, dtype=torch.float32):
            return torch.zeros((T, B, *shape), dtype=dtype, device=device)

        sp = obs_space.spaces
        self.obs = {"grid": z(*sp["grid"].shape[1:], dtype=torch.int16),
                    "task": z(*sp["task"].shape[1:], dtype=torch.int16),
                    "recipes": z(*sp["recipes"].shape[1:], dtype=torch.int16),
                    "step": z(1), "ratio": z(1)}
        self.masks = {"op": z(3, dtype=torch.bool), "cell": z(n_cells, dtype=torch.bool),
                      "entity": z(n_entity, dtype=torch.bool), "dir": z(4, dtype=torch.bool),
                      "variant": z(n_variant, dtype=torch.bool)}
        self.actions = z(len(MASK_STAGES), dtype=torch.long)
        self.logprobs, self.bc_logprobs, self.values, self.rewards = z(), z(), z(), z()
        self.bc_stage = {"op": z(3), "cell": z(n_cells), "entity": z(n_entity), "dir": z(4),
                         "variant": z(n_variant)}  # the reference's log-softmax along the path
        self.terminated, self.truncated = z(dtype=torch.bool), z(dtype=torch.bool)
        self.final_values = z()
        self.feats: torch.Tensor | None = None  # (T, B, tokens, d): the frozen trunk's output
        self._z = z

    def store_feats(self, t: int, x: torch.Tensor | None) -> None:
        if x is None:
            return
        if self.feats is None:
            self.feats = self._z(*x.shape[1:], dtype=x.dtype)
        self.feats[t] = x

    def flat(self, adv: torch.Tensor, ret: torch.Tensor) -> dict[str, Any]:
        def f(x):
            return x.reshape(-1, *x.shape[2:])

        return {"obs": {k: f(v) for k, v in self.obs.items()},
                "masks": {k: f(v) for k, v in self.masks.items()}, "actions": f(self.actions),
                "logprobs": f(self.logprobs), "bc_logprobs": f(self.bc_logprobs),
                "bc_stage": {k: f(v) for k, v in self.bc_stage.items()},
                "values": f(self.values), "advantages": f(adv), "returns": f(ret),
                **({"feats": f(self.feats)} if self.feats is not None else {})}


def _index(batch: Mapping, idx: torch.Tensor) -> dict:
    return {k: (_index(v, idx) if isinstance(v, Mapping) else v[idx]) for k, v in batch.items()}


# ---------------------------------------------------------------------------------- temperature
@contextmanager
def policy_temperature(tau: float, record: list | None = None) -> Iterator[None]:
    """Within: every stage's logits are divided by ``tau`` (sampling, log-probs, entropies), for
    every policy -- PPO then trains the tempered policy (still exact: the same function in the
    rollout and the update); ``record``: each stage's masked logits are appended to it (five per
    forward, in stage order). A stop-gap that wraps :func:`factorion.model._masked` until the
    model takes a temperature and returns its stage logits itself."""
    if tau == 1.0 and record is None:
        yield
        return
    from . import model as M

    orig = M._masked

    def tempered(logits, mask):
        out = orig(logits.float() / tau if tau != 1.0 else logits, mask)
        if record is not None:
            record.append(out)
        return out

    M._masked = tempered
    try:
        yield
    finally:
        M._masked = orig


def stage_kl(ref_logp: Sequence[torch.Tensor], logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(B,)`` sum over the stages along the taken path of ``KL(pi_ref(.|prefix) || pi(.|prefix))``
    (forward KL: its gradient ``pi - pi_ref`` does not vanish when ``pi`` collapses onto one
    action, unlike a sampled-action estimate). ``ref_logp``: the reference's log-softmax per
    stage; ``logits``: the policy's masked stage logits (same masks)."""
    total = 0.0
    for lq, lg in zip(ref_logp, logits, strict=True):
        lp = torch.log_softmax(lg.float(), -1)
        q = lq.exp()
        total = total + torch.where(q > 0, q * (lq - lp), torch.zeros_like(q)).sum(-1)
    return total


# ---------------------------------------------------------------------------------- frozen trunk
class _Replay(torch.nn.Module):
    """Stands in for the frozen lower blocks: returns their cached output."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.x = x

    def forward(self, x, attn_mask=None):
        return self.x


class _Skip(torch.nn.Module):
    def forward(self, x, attn_mask=None):
        return x


def n_frozen_blocks(policy: Policy, train_blocks: int) -> int:
    """How many lower blocks a run freezes (0 = train everything)."""
    n = len(policy.blocks)
    return 0 if train_blocks < 0 or train_blocks >= n else n - train_blocks


@contextmanager
def capture_trunk(policy: Policy, k: int) -> Iterator[list]:
    """Within: ``box[0]`` holds the output of ``policy.blocks[k-1]`` of the latest forward."""
    box: list = [None]
    if k <= 0:
        yield box
        return
    h = policy.blocks[k - 1].register_forward_hook(lambda m, inp, out: box.__setitem__(0, out))
    try:
        yield box
    finally:
        h.remove()


@contextmanager
def replay_trunk(policy: Policy, k: int, feats: torch.Tensor | None) -> Iterator[None]:
    """Within: ``policy.blocks[:k]`` are replaced by their cached output ``feats`` (the token
    embedding still runs, it is cheap; the blocks do not)."""
    if k <= 0 or feats is None:
        yield
        return
    saved = [policy.blocks[i] for i in range(k)]
    policy.blocks[0] = _Replay(feats)
    for i in range(1, k):
        policy.blocks[i] = _Skip()
    try:
        yield
    finally:
        for i, blk in enumerate(saved):
            policy.blocks[i] = blk


def freeze_trunk(policy: Policy, k: int, obs, masks) -> list[str]:
    """Freeze ``blocks[:k]`` and everything that feeds only them (found by a probe backward
    through the replayed trunk: whatever gets no gradient). Returns the frozen names."""
    if k <= 0:
        return []
    for blk in policy.blocks[:k]:
        blk.requires_grad_(False)
    with torch.no_grad(), capture_trunk(policy, k) as box:
        policy(obs, masks)
    policy.zero_grad(set_to_none=True)
    with replay_trunk(policy, k, box[0]):
        out = policy(obs, masks)
        (out["logprob"].sum() + out["value"].sum() + out["entropy"].sum()).backward()
    frozen = []
    for name, p in policy.named_parameters():
        if p.grad is None:
            p.requires_grad_(False)
            frozen.append(name)
        p.grad = None
    return frozen


def same_trunk(a: Policy, b: Policy, k: int) -> bool:
    """Whether the two policies' first ``k`` blocks and token embedding are identical (then the
    reference can reuse the cached trunk output)."""
    sa, sb = a.state_dict(), b.state_dict()
    pre = [n for n in sa if not n.startswith("blocks.") or int(n.split(".")[1]) < k]
    head = ("op_", "cell_", "ctx", "ent_", "dir_", "var_", "value_head", "ln_f")
    pre = [n for n in pre if not n.startswith(head)]
    return all(n in sb and torch.equal(sa[n].cpu(), sb[n].cpu()) for n in pre)


# ---------------------------------------------------------------------------------- metrics
class CSVLog:
    """Append-only CSV whose header grows when new keys appear (the file is rewritten then)."""

    def __init__(self, path: Path, resume: bool = False):
        self.path = path
        self.rows: list[dict] = []
        self.keys: list[str] = []
        if resume and path.exists():
            with open(path, newline="") as f:
                r = csv.DictReader(f)
                self.keys = list(r.fieldnames or [])
                self.rows = list(r)

    def log(self, row: Mapping[str, Any]) -> None:
        row = {k: _fmt(v) for k, v in row.items()}
        self.rows.append(row)
        new = [k for k in row if k not in self.keys]
        if new or not self.path.exists():
            self.keys += new
            with open(self.path, "w", newline="") as f:
                w = csv.DictWriter(f, self.keys, restval="")
                w.writeheader()
                w.writerows(self.rows)
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.keys, restval="").writerow(row)


def _fmt(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


class EpisodeStats:
    """Episode ends of one iteration: return, throughput ratio (overall, per family, per level),
    success, steps, entities, finished vs truncated."""

    def __init__(self):
        self.rows: list[tuple] = []

    def add(self, family, level, ratio, success, steps, entities, ret, terminated):
        self.rows.append((family, int(level), float(ratio), bool(success), int(steps), int(entities),
                          float(ret), bool(terminated)))

    def summary(self) -> dict[str, float]:
        if not self.rows:
            return {"episode/count": 0}
        fam, lvl, ratio, succ, steps, ents, ret, term = zip(*self.rows, strict=True)
        ratio_a, term_a, steps_a = np.array(ratio), np.array(term), np.array(steps)
        out = {"episode/count": len(self.rows), "episode/return": float(np.mean(ret)),
               "episode/ratio": float(np.mean(ratio_a)), "episode/success": float(np.mean(succ)),
               "episode/length": float(np.mean(steps_a)), "episode/entities": float(np.mean(ents)),
               "episode/finished": float(np.mean(term_a)),
               "episode/steps_to_finish": float(np.mean(steps_a[term_a])) if term_a.any() else float("nan")}
        by_f, by_l = defaultdict(list), defaultdict(list)
        for f, lv, r in zip(fam, lvl, ratio, strict=True):
            by_f[f].append(r)
            by_l[lv].append(r)
        out.update({f"ratio/family/{f}": float(np.mean(v)) for f, v in sorted(by_f.items())})
        out.update({f"ratio/level/{lv}": float(np.mean(v)) for lv, v in sorted(by_l.items())})
        return out


# ---------------------------------------------------------------------------------- curriculum state
def curriculum_state(cur) -> dict:
    """Everything needed to restore a :class:`~factorion.tasks.Curriculum` (its ``state()`` plus
    the raw result windows)."""
    st = {"summary": cur.state()}
    st["level"] = dict(cur.level)
    st["results"] = {f: [bool(x) for x in r] for f, r in cur.results.items()}
    st["episodes"] = dict(cur.episodes)
    return st


def load_curriculum_state(cur, st: Mapping) -> None:
    if hasattr(cur, "load_state"):
        cur.load_state(st.get("summary", st))
        return
    for f in cur.families:
        if f in st.get("level", {}):
            cur.level[f] = int(st["level"][f])
        if f in st.get("results", {}):
            cur.results[f].clear()
            cur.results[f].extend(bool(x) for x in st["results"][f])
        if f in st.get("episodes", {}):
            cur.episodes[f] = int(st["episodes"][f])


# ---------------------------------------------------------------------------------- evaluation
def _families_for(size: int, families: Sequence[str] | None = None) -> list[str]:
    from . import tasks

    fams = list(families) if families else list(tasks.FAMILIES)
    return [f for f in fams if tasks.MIN_SIZE.get(f, 0) <= size]


@torch.no_grad()
def evaluate_policy(policy: Policy, families: Sequence[str] | None = None,
                    levels: Sequence[int] = (1, 2, 3, 4, 5), n_seeds: int = 3, size: int = 11,
                    seed0: int = EVAL_SEED0, max_steps: int | None = None, batch_size: int = 256,
                    device=None) -> dict:
    """Greedy roll-outs of ``policy`` on the fixed tasks ``make_task(family, level, size,
    seed0 + i)``, ``i < n_seeds``, every family (that fits ``size``) and level; all episodes
    run as one batched env (finished episodes drop out of the forward pass). Returns the
    throughput ratio (final throughput / reference; also ``ratio_start``) and success rate
    overall, ``by_family``, ``by_level`` and ``by_family_level`` (``"belt/3"``), the mean
    steps, return and share finished, and every ``episodes`` row."""
    from .env_vector import FactorioVectorEnv
    from .tasks import make_task

    t0 = time.perf_counter()
    fams = _families_for(size, families)
    tasks_, failed = [], []
    for f in fams:
        for lv in levels:
            for i in range(n_seeds):
                try:
                    tasks_.append(make_task(f, int(lv), size=size, seed=seed0 + i))
                except Exception as exc:  # a generator failure must not sink the evaluation
                    failed.append({"family": f, "level": int(lv), "seed": seed0 + i, "error": repr(exc)})
    if not tasks_:
        return {"n": 0, "failed": failed}
    cfg = policy.config
    env = FactorioVectorEnv(len(tasks_), size, autoreset_mode="disabled", max_steps=max_steps or None,
                            entities=cfg.entities, max_items=cfg.max_items, max_recipes=cfg.max_recipes)
    obs, info = env.reset(seed=seed0, options={"tasks": tasks_})
    dev = device if device is not None else next(policy.parameters()).device
    was = policy.training
    policy.eval()
    n = len(tasks_)
    active = np.ones(n, dtype=bool)
    ratio0 = info["ratio"].copy()
    ret = np.zeros(n)
    res = {k: np.zeros(n) for k in ("ratio", "steps", "success", "finished", "entities")}
    finish = np.zeros((n, len(STAGES)), dtype=np.int64)
    finish[:, 0] = OP_FINISH
    while active.any():
        idx = np.nonzero(active)[0]
        acts = finish.copy()
        mt = masks_to_tensors(info["action_mask"], dev)
        ot = obs_to_tensors(obs, dev)
        for s in range(0, len(idx), batch_size):
            j = torch.as_tensor(idx[s:s + batch_size], device=dev)
            out = policy(_index(ot, j), _index(mt, j), greedy=True)
            acts[idx[s:s + batch_size]] = out["action"].cpu().numpy()
        obs, r, term, trunc, info = env.step(acts)
        ret[active] += r[active]
        done = active & (term | trunc)
        for k, v in (("ratio", info["ratio"]), ("steps", info["steps"]), ("success", info["success"]),
                     ("finished", term), ("entities", info["entities"])):
            res[k][done] = v[done]
        active &= ~done
    policy.train(was)
    rows = [{"family": t.family, "level": int(t.level), "seed": int(t.seed), "ratio": float(res["ratio"][i]),
             "ratio_start": float(ratio0[i]), "success": bool(res["success"][i]),
             "finished": bool(res["finished"][i]), "steps": int(res["steps"][i]), "return": float(ret[i]),
             "entities": int(res["entities"][i])} for i, t in enumerate(tasks_)]

    def agg(sel: list[dict]) -> dict:
        return {"ratio": float(np.mean([r["ratio"] for r in sel])),
                "ratio_start": float(np.mean([r["ratio_start"] for r in sel])),
                "success": float(np.mean([r["success"] for r in sel])),
                "finished": float(np.mean([r["finished"] for r in sel])),
                "steps": float(np.mean([r["steps"] for r in sel])),
                "return": float(np.mean([r["return"] for r in sel])), "n": len(sel)}

    def group(key) -> dict:
        g = defaultdict(list)
        for r in rows:
            g[key(r)].append(r)
        return {str(k): agg(v) for k, v in g.items()}

    return {**agg(rows), "by_family": group(lambda r: r["family"]), "by_level": group(lambda r: r["level"]),
            "by_family_level": group(lambda r: f"{r['family']}/{r['level']}"), "size": size, "seed0": seed0,
            "n_seeds": n_seeds, "levels": [int(x) for x in levels], "families": fams,
            "max_steps": int(env.max_steps), "greedy": True, "seconds": time.perf_counter() - t0,
            "failed": failed, "episodes": rows}


# ---------------------------------------------------------------------------------- setup helpers
def run_dir(args: Args) -> Path:
    name = args.run or ("smoke" if args.smoke else "scratch" if args.scratch else "finetune")
    return Path(args.out) / name


def _devices(v):
    if isinstance(v, int) or v == "auto":
        return v
    try:
        return int(v)
    except ValueError:
        return v


def build_policies(args: Args, ckpt: Mapping | None) -> tuple[Policy, Policy | None, str]:
    """(policy to train, frozen KL reference or None, description of the start)."""
    init = None if args.scratch else (args.init or None)
    if init and not Path(init).exists():
        if args.smoke:
            print(f"ppo: {init} not found; --smoke falls back to a fresh '{args.preset}' policy", flush=True)
            init = None
        else:
            raise FileNotFoundError(f"{init} not found: train BC first (make pretrain) or pass --scratch")
    if ckpt is not None:  # resume: the trained weights, the same reference as the first run
        init = ckpt.get("init") or None
        policy = Policy(PolicyConfig.from_dict(ckpt["config"]))
        policy.load_state_dict(ckpt["state_dict"])
        desc = f"resumed at iteration {ckpt['iteration']}"
    elif init:
        policy = Policy.load_from_checkpoint(init)
        desc = f"from {init}"
    else:
        policy = Policy(PolicyConfig.preset(args.preset))
        desc = f"from scratch ({args.preset})"
    ref = None
    if init and args.bc_kl_coef > 0 and Path(init).exists():
        ref = Policy.load_from_checkpoint(init)
        ref.requires_grad_(False)
        ref.eval()
    args.init = init or ""
    policy.train()
    return policy, ref, desc


def _value_params(policy: Policy) -> list[torch.nn.Parameter]:
    return list(policy.value_head.parameters())


def set_actor_frozen(policy: Policy, frozen: bool, trainable: Sequence[torch.nn.Parameter]) -> None:
    """Critic warm-up: only the value head trains (encoder + action heads frozen); ``trainable``:
    the parameters the run trains at all."""
    keep = {id(p) for p in _value_params(policy)}
    for p in trainable:
        if id(p) not in keep:
            p.requires_grad_(not frozen)


def _wandb(args: Args, out: Path, config: dict):
    if not args.wandb:
        return None
    try:
        import wandb
    except ImportError:
        return None
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        return wandb.init(project=args.wandb_project, name=out.name, dir=str(out), config=config,
                          mode=os.environ["WANDB_MODE"], resume="allow" if args.resume else None)
    except Exception as exc:  # logging must never kill a run
        print(f"ppo: wandb disabled ({exc!r})", flush=True)
        return None


# ---------------------------------------------------------------------------------- training
def train(args: Args) -> dict:
    """Run PPO as configured; returns a summary (paths, steps, SPS, time split, evaluations)."""
    from lightning.fabric import Fabric

    from .env_vector import FactorioVectorEnv
    from .tasks import Curriculum

    t_start = time.perf_counter()
    if args.smoke:
        apply_smoke(args)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    fabric = Fabric(accelerator=args.accelerator, devices=_devices(args.devices), strategy=args.strategy,
                    precision=args.precision)
    fabric.launch()
    rank, world = fabric.global_rank, fabric.world_size
    main_rank = fabric.is_global_zero
    out = run_dir(args)
    ckpt_path = out / "last.ckpt"
    ckpt = None
    if args.resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"--resume: {ckpt_path} not found")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
    fabric.seed_everything(args.seed + rank + (ckpt["iteration"] if ckpt else 0))
    policy, ref, desc = build_policies(args, ckpt)
    cfg = policy.config

    # ---- env + curriculum
    families = tuple(_families_for(args.size, args.families or None))
    curriculum = None
    if args.level <= 0:
        curriculum = Curriculum(families, start_level=args.start_level, promote_at=args.promote_at,
                                window=args.window, max_level=args.max_level, rehearse=args.rehearse)
        if ckpt is not None and ckpt.get("curriculum"):
            load_curriculum_state(curriculum, ckpt["curriculum"])
    fixed_family = families[0] if (args.level > 0 and len(families) == 1) else None
    task_sampler = None
    if args.level > 0 and len(families) > 1:
        from .tasks import make_task

        def task_sampler(rng):  # a fixed level over the chosen families
            f = families[int(rng.integers(len(families)))]
            return make_task(f, args.level, size=args.size, seed=int(rng.integers(2**31 - 1)))
    env_kw = {"entity_cost": args.entity_cost} if args.entity_cost >= 0 else {}
    envs = FactorioVectorEnv(args.num_envs, args.size, family=fixed_family,
                             level=args.level if args.level > 0 else None, curriculum=curriculum,
                             task_sampler=task_sampler, task_pool=args.task_pool,
                             task_pool_refresh=args.task_pool_refresh, entities=cfg.entities,
                             max_items=cfg.max_items, max_recipes=cfg.max_recipes, max_steps=args.max_steps,
                             autoreset_mode="same_step", **env_kw)
    L = envs.layout

    # ---- frozen trunk (its output is cached at rollout and replayed in the update), optimiser, Fabric
    obs, info = envs.reset(seed=args.seed + 7919 * rank + (int(ckpt["iteration"]) if ckpt else 0))
    k_frozen = n_frozen_blocks(policy, args.train_blocks) if args.init else 0  # (a fresh policy trains all)
    probe_masks = {k: v[:2] for k, v in masks_to_tensors(info["action_mask"]).items()}
    frozen_names = freeze_trunk(policy, k_frozen, {k: v[:2] for k, v in obs.items()}, probe_masks)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    ref_replay = k_frozen if (ref is not None and same_trunk(policy, ref, k_frozen)) else 0
    optimizer = torch.optim.Adam(trainable, lr=args.lr, eps=1e-5)
    if ckpt is not None and ckpt.get("optimizer"):
        optimizer.load_state_dict(ckpt["optimizer"])
    model, optimizer = fabric.setup(policy, optimizer)
    dev = fabric.device
    if ref is not None:
        ref = ref.to(dev)
    fp_index = policy.fp_index

    # ---- evaluation of the start (the baseline), timed: it sizes the reserve for the final one
    eval_kw = {"families": families, "levels": args.eval_levels, "n_seeds": args.eval_seeds,
               "size": args.size, "max_steps": args.eval_max_steps or args.max_steps, "device": dev}
    eval_init, eval_reserve = None, 0.0
    if args.eval and main_rank:
        if ckpt is not None and (out / "eval_init.json").exists():
            eval_init = json.loads((out / "eval_init.json").read_text())
            eval_reserve = float(eval_init.get("seconds", 0.0))
        elif args.eval_init:
            eval_init = evaluate_policy(policy, **eval_kw)
            eval_reserve = eval_init["seconds"]
            (out / "eval_init.json").write_text(json.dumps(eval_init, indent=1))
            print(f"ppo: initial policy ({desc}): ratio {eval_init['ratio']:.3f}, success "
                  f"{eval_init['success']:.3f} on {eval_init['n']} held-out tasks ({eval_reserve:.0f} s)",
                  flush=True)
        else:
            eval_reserve = 60.0
    budget = args.minutes * 60.0 if args.minutes > 0 else math.inf
    # training stops so that the final evaluation (about as long as the first) still fits
    train_deadline = t_start + budget - 1.2 * eval_reserve - 10.0
    train_seconds = max(float(fabric.broadcast(train_deadline - time.perf_counter())), 1.0)
    t_loop = time.perf_counter()

    # ---- logging
    metrics_csv = CSVLog(out / "metrics.csv", resume=ckpt is not None) if main_rank else None
    run_cfg = {**asdict(args), "n_params": policy.num_params(False),
               "n_trainable": sum(p.numel() for p in trainable), "frozen_blocks": k_frozen,
               "frozen_params": frozen_names, "start": desc, "world_size": world,
               "batch_size": args.batch_size * world}
    wb = _wandb(args, out, run_cfg) if main_rank else None
    if main_rank:
        (out / "args.json").write_text(json.dumps(run_cfg, indent=1, default=str))
        print(f"ppo: {policy.num_params(False):,} parameters ({run_cfg['n_trainable']:,} trained, "
              f"{k_frozen} of {len(policy.blocks)} blocks frozen), {desc}; {world} x {args.num_envs} envs x "
              f"{args.num_steps} steps per iteration on {dev}; out {out}; training budget "
              f"{'none' if math.isinf(train_seconds) else f'{train_seconds / 60:.1f} min'}"
              + (f", {args.total_steps} steps" if args.total_steps else ""), flush=True)

    # ---- state
    iteration = int(ckpt["iteration"]) if ckpt else 0
    global_step = int(ckpt["global_step"]) if ckpt else 0
    progress0 = float(ckpt.get("progress", 0.0)) if ckpt else 0.0
    step0 = global_step
    buf = Rollout(args.num_steps, args.num_envs, envs.observation_space, L.n_cells, L.n_entity, L.n_variant,
                  dev)
    ep_ret = np.zeros(args.num_envs)
    timers = defaultdict(float)  # cumulative seconds: env, forward, update
    last_save = time.perf_counter()
    stop_reason = ""

    def progress() -> float:
        p_steps = global_step / args.total_steps if args.total_steps else 0.0
        p_time = progress0 + (1 - progress0) * (time.perf_counter() - t_loop) / train_seconds
        return min(1.0, max(p_steps, p_time if not math.isinf(train_seconds) else 0.0))

    def save(final: bool = False) -> None:
        if not main_rank:
            return
        state = {"config": cfg.to_dict(), "state_dict": policy.state_dict(),
                 "optimizer": optimizer.state_dict(), "iteration": iteration, "global_step": global_step,
                 "progress": progress(),
                 "curriculum": curriculum_state(curriculum) if curriculum is not None else {},
                 "init": args.init, "args": json.loads(json.dumps(asdict(args), default=str))}
        tmp = out / "last.ckpt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)
        if final:
            policy.save(out / "policy.pt")

    while True:
        p = progress()
        if args.total_steps and global_step >= args.total_steps:
            stop_reason = "total_steps"
        elif p >= 1.0 and not args.total_steps:
            stop_reason = "time"
        elif time.perf_counter() > t_loop + train_seconds:
            stop_reason = "time"
        if fabric.broadcast(bool(stop_reason)):
            stop_reason = stop_reason or "rank 0"
            break
        it_t0 = time.perf_counter()
        t_it = defaultdict(float)
        lr = args.lr * (1.0 - p) if args.anneal_lr else args.lr
        for g in optimizer.param_groups:
            g["lr"] = lr
        ent_coef = args.ent_coef + (args.ent_coef_end - args.ent_coef) * p
        kl_coef = (args.bc_kl_coef + (args.bc_kl_coef_end - args.bc_kl_coef) * p) if ref is not None else 0.0
        warmup = iteration < args.critic_warmup
        stats = EpisodeStats()
        invalid_n = 0

        # ------------------------------------------------------------ rollout
        policy.eval()
        for t in range(args.num_steps):
            t0 = time.perf_counter()
            with torch.no_grad():
                ot = obs_to_tensors(obs, dev)
                mt = masks_to_tensors(info["action_mask"], dev)
                with capture_trunk(policy, k_frozen) as box, policy_temperature(args.temperature):
                    fwd = model(ot, mt)
                feats = box[0]
                buf.store_feats(t, feats)
                action = fwd["action"]
                pm = taken_path_masks(mt, action, fp_index)
                if kl_coef > 0:
                    rec: list = []
                    with fabric.autocast(), replay_trunk(ref, ref_replay, feats), \
                            policy_temperature(args.temperature, rec):
                        buf.bc_logprobs[t] = ref(ot, mt, actions=action)["logprob"].float()
                    for k, lg in zip(MASK_STAGES, rec, strict=True):
                        buf.bc_stage[k][t] = torch.log_softmax(lg.float(), -1)
            for k in OBS_KEYS:
                buf.obs[k][t] = ot[k].to(buf.obs[k].dtype)
            for k in MASK_STAGES:
                buf.masks[k][t] = pm[k]
            buf.actions[t] = action
            buf.logprobs[t] = fwd["logprob"].float()
            buf.values[t] = fwd["value"].float()
            a_np = action.cpu().numpy()
            t1 = time.perf_counter()
            obs, reward, term, trunc, info = envs.step(a_np)
            t2 = time.perf_counter()
            t_it["forward"] += t1 - t0
            t_it["env"] += t2 - t1
            ep_ret += reward
            invalid_n += int(np.sum(info["invalid"]))
            buf.rewards[t] = torch.as_tensor(reward, dtype=torch.float32, device=dev)
            buf.terminated[t] = torch.as_tensor(term, device=dev)
            buf.truncated[t] = torch.as_tensor(trunc, device=dev)
            buf.final_values[t] = 0.0
            done = np.logical_or(term, trunc)
            if done.any():
                fi = info["final_info"]
                for i in np.nonzero(done)[0]:
                    stats.add(fi["family"][i], fi["level"][i], fi["ratio"][i], fi["success"][i],
                              fi["steps"][i], fi["entities"][i], ep_ret[i], term[i])
                ep_ret[done] = 0.0
                if trunc.any():  # bootstrap: V(final obs), the episode did not end by itself
                    t3 = time.perf_counter()
                    ti = np.nonzero(trunc)[0]
                    fo = {k: np.stack([info["final_obs"][i][k] for i in ti]) for k in OBS_KEYS}
                    with torch.no_grad(), fabric.autocast():
                        v = policy.value_from(policy.encode(obs_to_tensors(fo, dev))).float()
                    buf.final_values[t, torch.as_tensor(ti, device=dev)] = v
                    t_it["forward"] += time.perf_counter() - t3
            global_step += args.num_envs * world
        t0 = time.perf_counter()
        with torch.no_grad(), fabric.autocast():
            next_value = policy.value_from(policy.encode(obs_to_tensors(obs, dev))).float()
        adv, ret = compute_gae(buf.rewards, buf.values, buf.terminated, buf.truncated, buf.final_values,
                               next_value, args.gamma, args.gae_lambda)
        t_it["forward"] += time.perf_counter() - t0

        # ------------------------------------------------------------ update
        t0 = time.perf_counter()
        policy.train()
        single = world == 1
        if warmup and single:
            set_actor_frozen(policy, True, trainable)
        b = buf.flat(adv, ret)
        n = args.batch_size
        clipfracs, approx_kls, kl_bcs, kl_rev, ents, pg_ls, v_ls = [], [], [], [], [], [], []
        n_updates, stopped = 0, False
        for _epoch in range(args.update_epochs):
            perm = torch.randperm(n, device=dev)
            for s in range(0, n, args.minibatch_size):
                mb = _index(b, perm[s:s + args.minibatch_size])
                rec: list = []  # the policy's stage logits (for the KL to BC)
                with replay_trunk(policy, k_frozen, mb.get("feats")), \
                        policy_temperature(args.temperature, rec):
                    outm = model(mb["obs"], path_masks(mb["masks"]), actions=mb["actions"])
                newlp, entropy, newv = outm["logprob"].float(), outm["entropy"].float(), outm["value"].float()
                logratio = newlp - mb["logprobs"]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    if world > 1:
                        approx_kl = fabric.all_reduce(approx_kl, reduce_op="mean")
                    clipfracs.append(float(((ratio - 1.0).abs() > args.clip_coef).float().mean()))
                    approx_kls.append(float(approx_kl))
                if not warmup and args.target_kl > 0 and float(approx_kl) > args.target_kl:
                    stopped = True
                    break
                a = mb["advantages"]
                if args.norm_adv and a.numel() > 1:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                clipped = ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(-a * ratio, -a * clipped).mean()
                if args.clip_vloss:
                    v_clip = mb["values"] + (newv - mb["values"]).clamp(-args.clip_coef, args.clip_coef)
                    v_loss = 0.5 * torch.max((newv - mb["returns"]) ** 2,
                                             (v_clip - mb["returns"]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((newv - mb["returns"]) ** 2).mean()
                ent = entropy.mean()
                if kl_coef > 0:
                    kl_bc = stage_kl([mb["bc_stage"][k] for k in MASK_STAGES], rec).mean()
                    with torch.no_grad():  # the sampled k3 estimate of KL(pi || pi_bc), for the log
                        lr_bc = (mb["bc_logprobs"] - newlp).clamp(-20.0, 20.0)
                        kl_rev.append(float((lr_bc.exp() - 1.0 - lr_bc).mean()))
                else:
                    kl_bc = torch.zeros((), device=dev)
                if warmup:  # (DDP needs every trained parameter in the graph; those gradients are dropped)
                    loss = args.vf_coef * v_loss + (0.0 * (pg_loss + ent + kl_bc) if not single else 0.0)
                else:
                    loss = pg_loss - ent_coef * ent + args.vf_coef * v_loss + kl_coef * kl_bc
                optimizer.zero_grad(set_to_none=True)
                fabric.backward(loss)
                if warmup and not single:  # DDP: the graph is whole; drop the actor's gradients
                    keep = {id(q) for q in _value_params(policy)}
                    for q in trainable:
                        if id(q) not in keep:
                            q.grad = None
                if args.max_grad_norm > 0:
                    fabric.clip_gradients(model, optimizer, max_norm=args.max_grad_norm,
                                          error_if_nonfinite=False)
                optimizer.step()
                n_updates += 1
                kl_bcs.append(kl_bc.item())
                ents.append(ent.item())
                pg_ls.append(pg_loss.item())
                v_ls.append(v_loss.item())
            if stopped:
                break
        if warmup and single:
            set_actor_frozen(policy, False, trainable)
        t_it["update"] += time.perf_counter() - t0
        iteration += 1

        # ------------------------------------------------------------ diagnostics
        it_time = time.perf_counter() - it_t0
        t_it["other"] = max(0.0, it_time - t_it["env"] - t_it["forward"] - t_it["update"])
        for k, v in t_it.items():
            timers[k] += v
        elapsed = time.perf_counter() - t_loop
        row = {"iteration": iteration, "global_step": global_step, "progress": progress(),
               "charts/SPS": (global_step - step0) / max(elapsed, 1e-9),
               "charts/SPS_iteration": args.batch_size * world / max(it_time, 1e-9),
               "charts/learning_rate": lr, "charts/ent_coef": ent_coef, "charts/bc_kl_coef": kl_coef,
               "charts/critic_warmup": int(warmup), "charts/elapsed_s": elapsed}
        for k in ("env", "forward", "update", "other"):
            row[f"time/{k}_s"] = t_it[k]
            row[f"time/{k}_frac"] = t_it[k] / max(it_time, 1e-9)
        row["env/invalid_rate"] = invalid_n / (args.num_envs * args.num_steps)
        row["env/valid_rate"] = 1.0 - row["env/invalid_rate"]
        row["env/entities"] = float(np.mean(info["entities"]))
        row["env/reward_mean"] = float(buf.rewards.mean())
        row.update({"losses/policy": _mean(pg_ls), "losses/value": _mean(v_ls), "losses/entropy": _mean(ents),
                    "losses/approx_kl": _mean(approx_kls), "losses/kl_bc": _mean(kl_bcs),
                    "losses/kl_to_bc_sampled": _mean(kl_rev),
                    "losses/clipfrac": _mean(clipfracs), "losses/explained_variance":
                    explained_variance(buf.values.flatten(), ret.flatten()),
                    "losses/updates": n_updates, "losses/early_stop": int(stopped)})
        row.update(stats.summary())
        if curriculum is not None:
            row.update({f"curriculum/{f}": lv for f, lv in curriculum.level.items()})
            row["curriculum/mean_level"] = float(np.mean(list(curriculum.level.values())))
        if main_rank:
            metrics_csv.log(row)
            if wb is not None:
                wb.log({k: v for k, v in row.items() if isinstance(v, int | float)}, step=global_step)
            if iteration % max(1, args.log_every) == 0 or iteration == 1:
                print(_console(row), flush=True)
        due = args.save_minutes <= 0 or time.perf_counter() - last_save >= 60 * args.save_minutes
        if main_rank and due:
            save()
            last_save = time.perf_counter()

    # ---- end: checkpoint, final evaluation
    save(final=True)
    total_loop = time.perf_counter() - t_loop
    sps = (global_step - step0) / max(total_loop, 1e-9)
    timers["other"] = max(0.0, total_loop - timers["env"] - timers["forward"] - timers["update"])  # + saves
    split = {k: timers[k] / max(total_loop, 1e-9) for k in ("env", "forward", "update", "other")}
    summary = {"run_dir": str(out), "checkpoint": str(ckpt_path), "policy": str(out / "policy.pt"),
               "iterations": iteration, "global_step": global_step, "steps_this_run": global_step - step0,
               "seconds": total_loop, "SPS": sps, "time_split": split, "stop": stop_reason,
               "curriculum": curriculum.state() if curriculum is not None else None}
    if args.eval and main_rank:
        ev = evaluate_policy(policy, **eval_kw)
        (out / "eval_final.json").write_text(json.dumps(ev, indent=1))
        summary["eval_final"] = {k: ev[k] for k in ("ratio", "success", "finished", "steps", "n")}
        if eval_init is not None:
            summary["eval_init"] = {k: eval_init[k] for k in ("ratio", "success", "finished", "steps", "n")}
        (out / "eval.json").write_text(json.dumps({"init": eval_init, "final": ev,
                                                   "summary": {k: v for k, v in summary.items()}}, indent=1))
        print(f"ppo: final policy: ratio {ev['ratio']:.3f}, success {ev['success']:.3f}"
              + (f" (start: ratio {eval_init['ratio']:.3f}, success {eval_init['success']:.3f})"
                 if eval_init is not None else "") + f"; {out / 'eval.json'}", flush=True)
    if main_rank:
        print(f"ppo: {global_step - step0} steps in {total_loop:.0f} s = {sps:.1f} SPS; time split "
              + ", ".join(f"{k} {v:.0%}" for k, v in split.items()) + f"; checkpoint {ckpt_path}", flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    if wb is not None:
        wb.summary.update({k: v for k, v in summary.items() if isinstance(v, int | float)})
        wb.finish()
    envs.close()
    return summary


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def _console(row: Mapping[str, Any]) -> str:
    def g(k, fmt="{:.3f}"):
        v = row.get(k)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)

    cur = " ".join(f"{k.split('/')[1][:4]}{v}" for k, v in row.items()
                   if k.startswith("curriculum/") and k != "curriculum/mean_level")
    return (f"it {row['iteration']:4d} step {row['global_step']:7d} sps {g('charts/SPS', '{:.1f}')} | "
            f"env {g('time/env_frac', '{:.0%}')} fwd {g('time/forward_frac', '{:.0%}')} "
            f"upd {g('time/update_frac', '{:.0%}')} | ep {row.get('episode/count', 0)} ret "
            f"{g('episode/return')} ratio {g('episode/ratio')} succ {g('episode/success', '{:.2f}')} "
            f"len {g('episode/length', '{:.1f}')} | kl {g('losses/approx_kl', '{:.4f}')} "
            f"klbc {g('losses/kl_bc', '{:.3f}')} clip {g('losses/clipfrac', '{:.2f}')} ent "
            f"{g('losses/entropy', '{:.2f}')} ev {g('losses/explained_variance', '{:.2f}')}"
            + (" [warm-up]" if row.get("charts/critic_warmup") else "") + (f" | {cur}" if cur else ""))


__all__ = ["Args", "apply_smoke", "compute_gae", "evaluate_policy", "path_masks", "taken_path_masks", "train",
           "Rollout", "CSVLog", "curriculum_state", "load_curriculum_state"]
