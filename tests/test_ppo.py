"""PPO: GAE with truncation, masks re-applied in the update (exact log-probs), a tiny run that
writes a loadable checkpoint and resumes, and (slow) learning on a 5x5 belt task."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from factorion.env.vector import FactorioVectorEnv
from factorion.policy.adapters import index_rows, masks_to_tensors, obs_to_tensors
from factorion.policy.model import Policy, PolicyConfig
from factorion.tasks.curriculum import Curriculum
from factorion.train.ppo import Args, train
from factorion.train.ppo_eval import evaluate_policy
from factorion.train.ppo_log import CSVLog, curriculum_state, load_curriculum_state
from factorion.train.ppo_policy import (
    freeze_trunk,
    n_frozen_blocks,
    same_trunk,
    stage_kl,
)
from factorion.train.ppo_rollout import (
    OBS_KEYS,
    Rollout,
    compute_gae,
    path_masks,
    taken_path_masks,
)


# ---------------------------------------------------------------------------------- GAE
def _gae_reference(r, v, term, trunc, fv, nv, g, lam):
    T, B = r.shape
    adv = np.zeros((T, B))
    for b in range(B):
        last = 0.0
        for t in reversed(range(T)):
            if term[t, b]:
                nxt, cont = 0.0, 0.0
            elif trunc[t, b]:
                nxt, cont = fv[t, b], 0.0
            else:
                nxt, cont = (nv[b] if t == T - 1 else v[t + 1, b]), 1.0
            delta = r[t, b] + g * nxt - v[t, b]
            last = delta + g * lam * cont * last
            adv[t, b] = last
    return adv


def test_gae_truncation_bootstraps_with_final_value():
    g, lam = 0.9, 0.8
    r = torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, 2.0]])
    v = torch.tensor([[0.2, 0.1], [0.3, 0.4], [0.6, 0.5]])
    term = torch.tensor([[False, False], [False, True], [False, False]])
    trunc = torch.tensor([[False, False], [True, False], [False, False]])
    fv = torch.tensor([[0.0, 0.0], [5.0, 7.0], [0.0, 0.0]])  # 7.0 must be ignored (terminal)
    nv = torch.tensor([0.7, 0.9])
    adv, ret = compute_gae(r, v, term, trunc, fv, nv, g, lam)
    # env 0, step 1 truncated: bootstrap with V(final obs) = 5, no flow from step 2 (a new episode)
    assert adv[1, 0].item() == pytest.approx(0.5 + g * 5.0 - 0.3)
    assert adv[0, 0].item() == pytest.approx((1.0 + g * 0.3 - 0.2) + g * lam * (0.5 + g * 5.0 - 0.3))
    assert adv[2, 0].item() == pytest.approx(0.0 + g * 0.7 - 0.6)
    # env 1, step 1 terminated: no bootstrap at all
    assert adv[1, 1].item() == pytest.approx(1.0 - 0.4)
    np.testing.assert_allclose(adv.numpy(), _gae_reference(r.numpy(), v.numpy(), term.numpy(), trunc.numpy(),
                                                           fv.numpy(), nv.numpy(), g, lam), rtol=1e-6)
    torch.testing.assert_close(ret, adv + v)
    # treating the truncation as terminal would give a different (wrong) advantage
    adv_t, _ = compute_gae(r, v, term | trunc, torch.zeros_like(trunc), fv, nv, g, lam)
    assert adv_t[1, 0].item() == pytest.approx(0.5 - 0.3)


def test_gae_random_matches_reference():
    rng = np.random.default_rng(0)
    T, B = 7, 5
    r, v, fv = rng.normal(size=(T, B)), rng.normal(size=(T, B)), rng.normal(size=(T, B))
    end = rng.random((T, B)) < 0.3
    term = end & (rng.random((T, B)) < 0.5)
    trunc = end & ~term
    nv = rng.normal(size=B)
    adv, _ = compute_gae(*(torch.as_tensor(x) for x in (r, v, term, trunc, fv, nv)), 0.99, 0.95)
    np.testing.assert_allclose(adv.numpy(), _gae_reference(r, v, term, trunc, fv, nv, 0.99, 0.95), rtol=1e-9)


# ---------------------------------------------------------------------------------- masks
@pytest.fixture(scope="module")
def tiny_policy():
    torch.manual_seed(0)
    return Policy(PolicyConfig.preset("tiny", n_layers=2))


def test_path_masks_reproduce_rollout_logprobs(tiny_policy):
    """The per-stage masks stored along the taken path, re-applied in the update, give the
    same log-prob and entropy as the rollout's full masks, for the same parameters."""
    policy = tiny_policy
    env = FactorioVectorEnv(24, 7, curriculum=Curriculum(("belt", "smelting", "assembler1"), start_level=3),
                            autoreset_mode="same_step", max_steps=6, task_pool=8)
    obs, info = env.reset(seed=3)
    T, B = 6, env.num_envs
    L = env.layout
    buf = Rollout(T, B, env.observation_space, L.n_cells, L.n_entity, L.n_variant, "cpu")
    ops = set()
    with torch.no_grad():
        for t in range(T):
            ot, mt = obs_to_tensors(obs), masks_to_tensors(info["action_mask"])
            out = policy(ot, mt)
            a = out["action"]
            pm = taken_path_masks(mt, a, policy.fp_index)
            for k in OBS_KEYS:
                buf.obs[k][t] = ot[k].to(buf.obs[k].dtype)
            for k, m in pm.items():
                buf.masks[k][t] = m
            buf.actions[t], buf.logprobs[t], buf.values[t] = a, out["logprob"], out["value"]
            # same batch, same params: bit-identical
            again = policy(ot, path_masks(pm), actions=a)
            assert torch.equal(again["logprob"], out["logprob"])
            assert torch.equal(again["stage_logprob"], out["stage_logprob"])
            assert torch.equal(again["entropy"], out["entropy"])
            ops.update(a[:, 0].tolist())
            obs, _, _, _, info = env.step(a.numpy())
    assert ops == {0, 1, 2}, ops  # place, remove and finish all exercised
    # through the buffer (int16 storage, flatten) and a shuffled minibatch: the same numbers
    z = torch.zeros(T, B)
    flat = buf.flat(z, z)
    perm = torch.randperm(T * B)[:50]
    mb = index_rows(flat, perm)
    with torch.no_grad():
        out = policy(mb["obs"], path_masks(mb["masks"]), actions=mb["actions"])
    torch.testing.assert_close(out["logprob"], mb["logprobs"], rtol=1e-5, atol=1e-5)
    assert torch.isfinite(out["logprob"]).all()
    # the path masks are what the compact form stores, far smaller than the dense masks
    n_path = sum(m.shape[-1] for m in buf.masks.values())
    assert n_path == 3 + L.n_cells + L.n_entity + 4 + L.n_variant


def test_path_masks_match_after_a_gradient_step(tiny_policy):
    """After the parameters change, the stored path masks still give the same log-prob as the
    env's full masks (what the ratio pi_new / pi_old needs)."""
    policy = Policy(tiny_policy.config)
    policy.load_state_dict(tiny_policy.state_dict())
    env = FactorioVectorEnv(16, 6, family="belt", level=4, autoreset_mode="same_step", task_pool=4)
    obs, info = env.reset(seed=1)
    ot, mt = obs_to_tensors(obs), masks_to_tensors(info["action_mask"])
    with torch.no_grad():
        a = policy(ot, mt)["action"]
    pm = taken_path_masks(mt, a, policy.fp_index)
    opt = torch.optim.SGD(policy.parameters(), lr=1.0)
    policy(ot, mt, actions=a)["logprob"].sum().backward()
    opt.step()
    with torch.no_grad():
        full = policy(ot, mt, actions=a)["logprob"]
        path = policy(ot, path_masks(pm), actions=a)["logprob"]
    assert torch.equal(full, path)


def test_frozen_trunk_replay_is_exact(tiny_policy):
    """Fine-tuning the top block only: the lower block's output cached at rollout and replayed
    in the update gives the rollout's log-probs and values, gradients reach only the trained
    part, and an untouched copy (the BC reference) can reuse the cache."""
    policy = Policy(tiny_policy.config)
    policy.load_state_dict(tiny_policy.state_dict())
    ref = Policy(tiny_policy.config)
    ref.load_state_dict(tiny_policy.state_dict())
    env = FactorioVectorEnv(12, 7, family="smelting", level=4, autoreset_mode="same_step", task_pool=4)
    obs, info = env.reset(seed=2)
    ot, mt = obs_to_tensors(obs), masks_to_tensors(info["action_mask"])
    k = n_frozen_blocks(policy, 1)
    assert k == 1 and n_frozen_blocks(policy, -1) == 0 and n_frozen_blocks(policy, 5) == 0
    frozen = freeze_trunk(policy, k, ot, mt)
    assert "blocks.0.qkv.weight" in frozen and "kind_emb.weight" in frozen
    assert not any(n.startswith(("blocks.1.", "op_head", "value_head")) for n in frozen)
    assert same_trunk(policy, ref, k) and policy.trunk_blocks == k
    with torch.no_grad():
        out = policy(ot, mt)
    a, feats = out["action"], out["trunk"]
    assert "trunk" not in ref(ot, mt)  # trunk_blocks = 0: nothing cached, nothing returned
    pm = taken_path_masks(mt, a, policy.fp_index)
    again = policy(ot, path_masks(pm), actions=a, trunk_cache=feats)
    assert again["trunk"] is feats
    torch.testing.assert_close(again["logprob"], out["logprob"], rtol=0, atol=1e-6)
    torch.testing.assert_close(again["value"], out["value"], rtol=0, atol=1e-6)
    again["logprob"].sum().backward()
    assert policy.blocks[1].qkv.weight.grad is not None and policy.blocks[0].qkv.weight.grad is None
    ref.trunk_blocks = k
    with torch.no_grad():
        r1 = ref(ot, mt, actions=a, trunk_cache=feats)["logprob"]
        r2 = ref(ot, mt, actions=a)["logprob"]
    torch.testing.assert_close(r1, r2, rtol=0, atol=1e-6)
    wrong = ref(ot, mt, actions=a, trunk_cache=torch.zeros_like(feats))["logprob"]
    assert not torch.allclose(wrong, r2)  # the cache is really used


def test_temperature_is_consistent_and_sharpens(tiny_policy):
    env = FactorioVectorEnv(16, 6, family="belt", level=3, autoreset_mode="same_step", task_pool=4)
    obs, info = env.reset(seed=4)
    ot, mt = obs_to_tensors(obs), masks_to_tensors(info["action_mask"])
    with torch.no_grad():
        out = tiny_policy(ot, mt, temperature=0.5, return_stage_logits=True)
        pm = taken_path_masks(mt, out["action"], tiny_policy.fp_index)
        again = tiny_policy(ot, path_masks(pm), actions=out["action"], temperature=0.5)
        plain = tiny_policy(ot, mt, actions=out["action"], return_stage_logits=True)
    assert torch.equal(again["logprob"], out["logprob"])
    assert (out["entropy"] <= plain["entropy"] + 1e-6).all()  # along the same path: sharper
    assert out["entropy"].sum() < plain["entropy"].sum()
    assert not torch.equal(plain["logprob"], out["logprob"])
    assert "stage_logits" not in again and len(out["stage_logits"]) == 5
    for hot, cold in zip(out["stage_logits"], plain["stage_logits"], strict=True):
        valid = cold > torch.finfo(torch.float32).min  # the masked entries stay at the fill value
        torch.testing.assert_close(hot[valid], 2 * cold[valid])
        assert torch.equal(hot > torch.finfo(torch.float32).min, valid)


def test_stage_kl_forward_kl_along_the_path():
    """Zero against itself, the analytic KL otherwise, masked entries ignored, and a gradient
    that does not vanish on a collapsed policy (what holds it near BC)."""
    neg = torch.finfo(torch.float32).min
    ref = [torch.tensor([[0.0, 0.0, neg]]), torch.tensor([[1.0, 2.0]])]
    ref_lp = [torch.log_softmax(x, -1) for x in ref]
    assert stage_kl(ref_lp, ref).abs().max() < 1e-6
    logits = [torch.tensor([[8.0, -8.0, neg]], requires_grad=True), torch.tensor([[1.0, 2.0]])]
    kl = stage_kl(ref_lp, logits)
    p = torch.log_softmax(logits[0].detach(), -1)
    expect = 0.5 * ((np.log(0.5) - p[0, 0]) + (np.log(0.5) - p[0, 1]))
    assert kl.item() == pytest.approx(float(expect), rel=1e-5)
    kl.sum().backward()
    assert logits[0].grad[0, 0].item() == pytest.approx(0.5, abs=1e-3)  # pi - pi_ref


# ---------------------------------------------------------------------------------- pieces
def test_curriculum_state_round_trip():
    c = Curriculum(("belt", "splitter"), window=4)
    for s in (True, True, True, True, False):
        c.update("belt", c.level["belt"], s)
    st = json.loads(json.dumps(curriculum_state(c)))
    d = Curriculum(("belt", "splitter"), window=4)
    load_curriculum_state(d, st)
    assert d.state() == c.state() and d.level["belt"] == 2


def test_csv_log_grows_its_header(tmp_path):
    log = CSVLog(tmp_path / "m.csv")
    log.log({"a": 1, "b": 0.5})
    log.log({"a": 2, "c": float("nan"), "d": "x"})
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert [r["a"] for r in rows] == ["1", "2"] and rows[0]["d"] == "" and rows[1]["d"] == "x"
    again = CSVLog(tmp_path / "m.csv", resume=True)
    again.log({"a": 3})
    assert len(list(csv.DictReader(open(tmp_path / "m.csv")))) == 3


def test_evaluate_policy_fixed_seeds(tiny_policy):
    kw = {"families": ("belt", "smelting"), "levels": (1, 3), "n_seeds": 2, "size": 6, "max_steps": 4}
    a = evaluate_policy(tiny_policy, **kw)
    b = evaluate_policy(tiny_policy, **kw)
    assert a["n"] == 8 and set(a["by_family"]) == {"belt", "smelting"} and set(a["by_level"]) == {"1", "3"}
    assert "belt/3" in a["by_family_level"]
    assert [e["ratio"] for e in a["episodes"]] == [e["ratio"] for e in b["episodes"]]  # greedy + fixed seeds
    assert all(e["steps"] <= 4 for e in a["episodes"])
    assert {e["seed"] for e in a["episodes"]} == {10_000, 10_001}


# ---------------------------------------------------------------------------------- runs
def _tiny_args(tmp_path, init, **kw) -> Args:
    base = {"out": str(tmp_path), "run": "t", "init": str(init), "smoke": True, "wandb": False, "threads": 1,
            "size": 7, "families": ("belt", "smelting"), "total_steps": 192, "eval_levels": (3,),
            "train_blocks": 1}
    base.update(kw)
    return Args(**base)


def test_tiny_run_writes_loadable_checkpoint_and_resumes(tmp_path, tiny_policy):
    init = tmp_path / "bc.pt"
    tiny_policy.save(init)  # stands in for the BC checkpoint (and the KL reference)
    s = train(_tiny_args(tmp_path, init))
    out = tmp_path / "t"
    assert s["global_step"] >= 192 and s["iterations"] == 3
    p = Policy.load_from_checkpoint(out / "last.ckpt")
    assert p.config.d_model == tiny_policy.config.d_model and p.config.n_layers == 2
    Policy.load_from_checkpoint(out / "policy.pt")
    before, after = tiny_policy.state_dict(), p.state_dict()
    assert not torch.equal(before["blocks.1.qkv.weight"], after["blocks.1.qkv.weight"])  # trained
    assert torch.equal(before["blocks.0.qkv.weight"], after["blocks.0.qkv.weight"])  # frozen, cached
    assert torch.equal(before["kind_emb.weight"], after["kind_emb.weight"])
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 3
    for k in ("charts/SPS", "time/env_s", "time/forward_s", "time/update_s", "time/other_s",
              "losses/approx_kl", "losses/kl_bc", "losses/clipfrac", "losses/entropy",
              "losses/explained_variance", "env/invalid_rate", "env/entities", "curriculum/belt",
              "charts/critic_warmup"):
        assert k in rows[0], k
    assert rows[0]["charts/critic_warmup"] == "1" and rows[1]["charts/critic_warmup"] == "0"
    assert float(rows[1]["charts/bc_kl_coef"]) > 0
    ev = json.loads((out / "eval.json").read_text())
    assert ev["final"]["n"] == 2 and ev["init"]["n"] == 2 and "by_family_level" in ev["final"]
    # resume: continues the iteration count, the step count and the CSV
    s2 = train(_tiny_args(tmp_path, init, resume=True, total_steps=256, eval=False))
    assert s2["iterations"] == 4 and s2["global_step"] == 256
    assert len(list(csv.DictReader(open(out / "metrics.csv")))) == 4


def test_scratch_fixed_level_run(tmp_path):
    s = train(Args(out=str(tmp_path), run="s", scratch=True, smoke=True, wandb=False, threads=1, size=5,
                   families=("belt",), level=3, total_steps=64, eval=False))
    assert s["global_step"] == 64 and s["curriculum"] is None
    assert Policy.load_from_checkpoint(tmp_path / "s" / "last.ckpt").config.d_model == 32


@pytest.mark.slow
def test_short_run_raises_throughput_on_5x5_belt(tmp_path):
    """From scratch on 5x5 belt tasks with one belt missing (level 3; throughput 0 until the
    gap is closed), a short run learns to close it: the greedy policy's throughput ratio on
    held-out tasks rises."""
    s = train(Args(out=str(tmp_path), run="belt", scratch=True, preset="tiny", size=5, families=("belt",),
                   level=3, num_envs=32, num_steps=8, max_steps=6, entity_cost=0.0, lr=1e-3, anneal_lr=False,
                   ent_coef=0.01, ent_coef_end=0.01, update_epochs=4, target_kl=0.0, critic_warmup=1,
                   total_steps=24_576, minutes=0, wandb=False, threads=1, eval_seeds=16, eval_levels=(3,),
                   task_pool=64, temperature=1.0, expert_coef=0.0))  # PPO alone, no expert labels
    ev = json.loads((tmp_path / "belt" / "eval.json").read_text())
    assert ev["final"]["ratio"] > ev["init"]["ratio"] + 0.2, (ev["init"]["ratio"], ev["final"]["ratio"])
    assert s["global_step"] >= 24_576


def test_cli_flags_map_to_args():
    from factorion.train.finetune import parse

    a = parse(["--scratch", "--families", "belt", "smelting", "--no-wandb", "--total-steps", "64",
               "--eval-levels", "3", "4", "--lr", "1e-4", "--train-blocks", "-1"])
    assert a.scratch and not a.wandb and a.total_steps == 64 and a.lr == 1e-4 and a.train_blocks == -1
    assert a.families == ("belt", "smelting") and a.eval_levels == (3, 4)
    d = parse([])
    assert d.init == "models/bc/last.ckpt" and d.minutes == 30.0 and not d.smoke and d.wandb
