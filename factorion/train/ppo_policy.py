"""The policies a PPO run trains: building the trained policy and its frozen KL reference
(:func:`build_policies`), the exact per-stage KL to the BC reference (:func:`stage_kl`), the
frozen trunk (:func:`freeze_trunk`: its output is cached at rollout and replayed in the update
through the policy's own ``trunk_cache``) and the critic warm-up (:func:`set_actor_frozen`).
The temperature is the policy's own ``forward(..., temperature=...)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from factorion.policy.model import Policy, PolicyConfig


# ---------------------------------------------------------------------------------- KL to BC
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
def n_frozen_blocks(policy: Policy, train_blocks: int) -> int:
    """How many lower blocks a run freezes (0 = train everything)."""
    n = len(policy.blocks)
    return 0 if train_blocks < 0 or train_blocks >= n else n - train_blocks


def freeze_trunk(policy: Policy, k: int, obs, masks) -> list[str]:
    """Freeze ``blocks[:k]`` and everything that feeds only them (found by a probe backward
    through the replayed trunk: whatever gets no gradient), and set ``policy.trunk_blocks = k``
    (its forward then returns the trunk's output, to be cached and replayed). Returns the frozen
    names."""
    if k <= 0:
        return []
    policy.trunk_blocks = k
    for blk in policy.blocks[:k]:
        blk.requires_grad_(False)
    with torch.no_grad():
        feats = policy(obs, masks)["trunk"]
    policy.zero_grad(set_to_none=True)
    out = policy(obs, masks, trunk_cache=feats)
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


def build_policies(init: str, scratch: bool, preset: str, smoke: bool, bc_kl_coef: float,
                   ckpt: Mapping | None) -> tuple[Policy, Policy | None, str, str]:
    """(policy to train, frozen KL reference or None, description of the start, the checkpoint
    started from or ""). ``init``: a BC checkpoint (unless ``scratch``: a fresh ``preset``
    policy; ``smoke`` falls back to one when ``init`` is missing); ``ckpt``: a PPO checkpoint
    to resume."""
    init = None if scratch else (init or None)
    if init and not Path(init).exists():
        if smoke:
            print(f"ppo: {init} not found; --smoke falls back to a fresh '{preset}' policy", flush=True)
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
        # trained in the env alone, under one episode limit: the step fraction means the same throughout,
        # and a value under truncation needs the time left (a scratch 5x5 belt run: ratio 0 -> 0.17
        # without it, above 0.2 with it; tests/test_ppo.py)
        policy = Policy(PolicyConfig.preset(preset, see_step=True))
        desc = f"from scratch ({preset})"
    ref = None
    if init and bc_kl_coef > 0 and Path(init).exists():
        ref = Policy.load_from_checkpoint(init)
        ref.requires_grad_(False)
        ref.eval()
    policy.train()
    return policy, ref, desc, init or ""


def value_params(policy: Policy) -> list[torch.nn.Parameter]:
    return list(policy.value_head.parameters())


def set_actor_frozen(policy: Policy, frozen: bool, trainable: Sequence[torch.nn.Parameter]) -> None:
    """Critic warm-up: only the value head trains (encoder + action heads frozen); ``trainable``:
    the parameters the run trains at all."""
    keep = {id(p) for p in value_params(policy)}
    for p in trainable:
        if id(p) not in keep:
            p.requires_grad_(not frozen)
