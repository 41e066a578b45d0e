"""The policies a PPO run trains: building the trained policy and its frozen KL reference
(:func:`build_policies`), the sampling temperature (:func:`policy_temperature`), the exact
per-stage KL to the BC reference (:func:`stage_kl`), the frozen-trunk cache (capture at rollout,
replay in the update: :func:`freeze_trunk`, :func:`capture_trunk`, :func:`replay_trunk`) and the
critic warm-up (:func:`set_actor_frozen`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from factorion.policy.model import Policy, PolicyConfig

if TYPE_CHECKING:
    from factorion.train.ppo import Args


# ---------------------------------------------------------------------------------- temperature
@contextmanager
def policy_temperature(tau: float, record: list | None = None) -> Iterator[None]:
    """Within: every stage's logits are divided by ``tau`` (sampling, log-probs, entropies), for
    every policy -- PPO then trains the tempered policy (still exact: the same function in the
    rollout and the update); ``record``: each stage's masked logits are appended to it (five per
    forward, in stage order). A stop-gap that wraps :func:`factorion.policy.model._masked` until the
    model takes a temperature and returns its stage logits itself."""
    if tau == 1.0 and record is None:
        yield
        return
    from factorion.policy import model as M

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


def value_params(policy: Policy) -> list[torch.nn.Parameter]:
    return list(policy.value_head.parameters())


def set_actor_frozen(policy: Policy, frozen: bool, trainable: Sequence[torch.nn.Parameter]) -> None:
    """Critic warm-up: only the value head trains (encoder + action heads frozen); ``trainable``:
    the parameters the run trains at all."""
    keep = {id(p) for p in value_params(policy)}
    for p in trainable:
        if id(p) not in keep:
            p.requires_grad_(not frozen)
