"""The policy: shapes on any grid size, masks respected at every stage, log-prob bookkeeping,
parameter counts, checkpoints. Needs neither the simulator nor the task generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorion.core.world import World
from factorion.env.factorio_env import task_vectors
from factorion.env.masks import OP_FINISH, OP_PLACE, OP_REMOVE, STAGES
from factorion.policy.adapters import masks_to_tensors, obs_to_tensors, stage_mask, valid_actions
from factorion.policy.model import PRESETS, Policy, PolicyConfig
from factorion.train.bc_samples import build_masks, layout_for

RECIPES = ["iron-gear-wheel", "electronic-circuit"]
ITEMS = ["iron-plate", "copper-cable", "iron-gear-wheel", "electronic-circuit"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def random_world(size: int, seed: int = 0, fill: float = 0.3) -> World:
    """Sources, sinks, an obstacle, machines and random belts/inserters/undergrounds."""
    rng = np.random.default_rng(seed)
    w = World(size, size)
    w.place("source", 0, 0, item="iron-plate")
    w.place("sink", size - 1, size - 1, item="iron-gear-wheel")
    w.place("obstacle", size - 1, 0)
    if size >= 6:
        w.place("assembling-machine-1", 1, 2, recipe="iron-gear-wheel")
    names = [
        "transport-belt",
        "fast-inserter",
        "underground-belt",
        "splitter",
        "stone-furnace",
        "wooden-chest",
    ]
    for _ in range(int(fill * size * size)):
        y, x, d = (int(v) for v in rng.integers(0, [size, size, 4]))
        name = names[int(rng.integers(len(names)))]
        kw = {"io": 1 + int(rng.integers(2))} if "underground" in name else {}
        try:
            w.place(name, y, x, direction=d, **kw)
        except ValueError:
            pass
    return w


def make_obs(world: World, B: int = 1, step: float = 0.1, ratio: float = 0.5):
    task = type("T", (), {"items": ITEMS, "recipes": RECIPES})
    iv, rv = task_vectors(task, 8, 4)
    layout = layout_for(world.height, world.width)
    masks = build_masks(layout, np.repeat(world.grid[None], B, 0), RECIPES)
    obs = {
        "grid": torch.as_tensor(np.repeat(world.grid[None], B, 0)),
        "task": torch.as_tensor(np.repeat(iv[None], B, 0)),
        "recipes": torch.as_tensor(np.repeat(rv[None], B, 0)),
        "step": torch.full((B, 1), step),
        "ratio": torch.full((B, 1), ratio),
    }
    return obs, masks


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Policy(PolicyConfig.preset("tiny")).eval()


def test_param_counts():
    counts = {name: Policy(cfg).num_params() for name, cfg in PRESETS.items()}
    assert counts["tiny"] < counts["small"] < counts["default"]
    assert 1_000_000 <= counts["default"] <= 3_000_000, counts
    assert counts["tiny"] < 100_000
    p = Policy(PRESETS["tiny"])
    assert p.num_params() == sum(t.numel() for t in p.parameters())


def _flops(preset: str, size: int = 11, B: int = 4) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    p = Policy(PolicyConfig.preset(preset)).eval()
    obs, masks = make_obs(random_world(size, seed=1), B=B)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        p(obs, masks)
    return fc.get_total_flops() / B


def test_cpu_preset_costs_a_tenth_of_small():
    """The CPU preset's forward costs at most a tenth of ``small``'s (issue 14)."""
    cpu, small = _flops("cpu"), _flops("small")
    assert 0 < cpu <= small / 10, (cpu, small)


@pytest.mark.parametrize("size", [5, 11, 16])
def test_any_grid_size(tiny, size):
    w = random_world(size, seed=size)
    obs, masks = make_obs(w, B=3)
    out = tiny(obs, masks)
    assert out["action"].shape == (3, 5)
    for k in ("logprob", "entropy", "value"):
        assert out[k].shape == (3,) and torch.isfinite(out[k]).all(), k
    assert out["stage_logprob"].shape == (3, 5)
    assert masks.valid(out["action"].numpy()).all()
    # the greedy action is deterministic and valid
    g1, g2 = tiny(obs, masks, greedy=True)["action"], tiny(obs, masks, greedy=True)["action"]
    assert torch.equal(g1, g2) and masks.valid(g1.numpy()).all()


def test_masks_respected_over_many_samples(tiny):
    """No masked action is ever sampled, at any stage, for any op (valid under the env's
    exact masks and under every stage's conditional mask)."""
    n_seen = {OP_PLACE: 0, OP_REMOVE: 0, OP_FINISH: 0}
    n_dirs, n_vars, n_ents = set(), set(), set()
    for seed, size in enumerate([5, 7, 11, 16]):
        w = random_world(size, seed=seed)
        obs, masks = make_obs(w, B=500)
        with torch.no_grad():
            a = tiny(obs, masks)["action"]
        assert masks.valid(a.numpy()).all()
        mt = masks_to_tensors(masks)
        assert valid_actions(mt, a, tiny.fp_index).all()
        an = a.numpy()
        for s in range(1, 5):  # every stage against the env's own conditional mask
            m = masks.mask_for(STAGES[s], [an[:, i] for i in range(s)])
            assert m[np.arange(len(an)), an[:, s]].all(), STAGES[s]
        for op in n_seen:
            n_seen[op] += int((an[:, 0] == op).sum())
        place = an[an[:, 0] == OP_PLACE]
        n_ents |= set(place[:, 2].tolist())
        n_dirs |= set(place[:, 3].tolist())
        n_vars |= set(place[:, 4].tolist())
    assert all(v > 0 for v in n_seen.values()), n_seen  # every op was exercised
    assert len(n_ents) > 5 and len(n_dirs) == 4 and len(n_vars) >= 2


def test_dense_and_compact_masks_agree(tiny):
    w = random_world(7, seed=3)
    obs, masks = make_obs(w, B=64)
    compact = masks_to_tensors(masks)
    dense = masks_to_tensors(masks.dense())
    assert "fit" in compact and "dir" in dense
    torch.manual_seed(1)
    a = tiny(obs, compact)["action"]
    for s, stage in enumerate(STAGES):
        pre = [a[:, i] for i in range(s)]
        assert torch.equal(stage_mask(compact, stage, pre, tiny.fp_index), stage_mask(dense, stage, pre))
    e1, e2 = tiny(obs, compact, actions=a), tiny(obs, dense, actions=a)
    assert torch.allclose(e1["logprob"], e2["logprob"])


def test_logprob_is_sum_of_stages_and_matches_sampling(tiny):
    w = random_world(9, seed=4)
    obs, masks = make_obs(w, B=32)
    torch.manual_seed(2)
    s = tiny(obs, masks)
    e = tiny(obs, masks, actions=s["action"])
    assert torch.allclose(e["logprob"], e["stage_logprob"].sum(1))
    assert torch.allclose(e["entropy"], e["stage_entropy"].sum(1))
    assert torch.allclose(s["logprob"], e["logprob"], atol=1e-5)
    # stages an op ignores carry no probability mass elsewhere: log-prob 0 and entropy 0
    ign = s["action"][:, 0] != OP_PLACE
    if ign.any():
        assert torch.allclose(e["stage_logprob"][ign, 2:], torch.zeros(1))
        assert torch.allclose(e["stage_entropy"][ign, 2:], torch.zeros(1), atol=1e-6)


def test_probabilities_sum_to_one_over_all_valid_actions(tiny):
    """Enumerate every valid canonical action of a 5x5 state: exp(log-prob) sums to 1."""
    w = random_world(5, seed=5, fill=0.2)
    obs1, masks1 = make_obs(w, B=1)
    dense = masks1.dense()
    acts = [(OP_FINISH, 0, 0, 0, 0)]
    acts += [(OP_REMOVE, c, 0, 0, 0) for c in np.nonzero(dense["cell"][0, OP_REMOVE])[0]]
    for c in np.nonzero(dense["cell"][0, OP_PLACE])[0]:
        for e in np.nonzero(dense["entity"][0, c])[0]:
            for d in np.nonzero(dense["dir"][0, c, e])[0]:
                for v in np.nonzero(dense["variant"][0, e])[0]:
                    acts.append((OP_PLACE, c, e, d, v))
    A = np.array(acts)
    obs, masks = make_obs(w, B=len(A))
    assert masks.valid(A).all()
    with torch.no_grad():
        lp = tiny(obs, masks, actions=torch.as_tensor(A))["logprob"]
    assert abs(float(lp.double().exp().sum()) - 1.0) < 1e-3, len(A)


def test_unmasked_and_fully_masked_are_finite(tiny):
    w = random_world(6, seed=6)
    obs, masks = make_obs(w, B=4)
    out = tiny(obs, None)
    assert torch.isfinite(out["logprob"]).all()
    m = masks_to_tensors(masks)
    m["op"][:] = False  # an impossible state: no NaN, still an action
    out = tiny(obs, m)
    assert torch.isfinite(out["logprob"]).all() and torch.isfinite(out["entropy"]).all()


def test_act_numpy_api(tiny):
    w = random_world(8, seed=7)
    obs, masks = make_obs(w, B=1)
    single = {k: v[0].numpy() for k, v in obs.items()}
    m1 = build_masks(masks.layout, w.grid[None], RECIPES, batched=False)  # as the single env gives them
    assert m1["op"].shape == (3,)
    a = tiny.act(single, m1)
    assert a.shape == (5,) and masks.valid(a[None]).all()
    ab = tiny.act({k: v.numpy() for k, v in obs.items()}, masks, greedy=True)
    assert ab.shape == (1, 5)
    assert obs_to_tensors(single)["grid"].shape == (1, 6, 8, 8)


def test_value_and_grad_flow():
    torch.manual_seed(0)
    p = Policy(PolicyConfig.preset("tiny"))
    w = random_world(6, seed=8)
    obs, masks = make_obs(w, B=8)
    a = p(obs, masks)["action"]
    out = p(obs, masks, actions=a)
    (-out["logprob"].mean() + out["value"].pow(2).mean()).backward()
    no_grad = [n for n, q in p.named_parameters() if q.grad is None]
    assert not no_grad, no_grad


def test_save_load_roundtrip(tmp_path, tiny):
    path = tmp_path / "policy.pt"
    tiny.save(path)
    q = Policy.load_from_checkpoint(path)
    assert q.config == tiny.config
    w = random_world(7, seed=9)
    obs, masks = make_obs(w, B=4)
    a = tiny(obs, masks, greedy=True)["action"]
    with torch.no_grad():
        assert torch.allclose(tiny(obs, masks, actions=a)["logprob"], q(obs, masks, actions=a)["logprob"])
    assert PolicyConfig.from_dict(tiny.config.to_dict()) == tiny.config


def test_old_configs_keep_their_model(tmp_path):
    """A config saved before ``conv_stem`` existed loads as the model it was (no conv stem)."""
    old = Policy(PolicyConfig.preset("tiny", conv_stem=0))
    state = {
        "config": {k: v for k, v in old.config.to_dict().items() if k != "conv_stem"},
        "state_dict": old.state_dict(),
    }
    torch.save(state, tmp_path / "old.pt")
    q = Policy.load_from_checkpoint(tmp_path / "old.pt")
    assert q.config.conv_stem == 0 and q.num_params() == old.num_params()


def test_step_is_seen_only_when_configured():
    """By default the policy ignores ``step`` (its scale depends on the episode limit, which differs
    between BC, roll-outs and PPO); configs saved before the field existed keep seeing it."""
    from factorion.core.world import N_CHANNELS
    torch.manual_seed(0)
    obs = {"grid": torch.zeros(2, N_CHANNELS, 5, 5, dtype=torch.int16),
           "task": torch.zeros(2, 8, dtype=torch.long),
           "recipes": torch.zeros(2, 4, dtype=torch.long), "ratio": torch.zeros(2, 1)}
    for see, differs in ((False, False), (True, True)):
        p = Policy(PolicyConfig.preset("tiny", see_step=see)).eval()
        torch.nn.init.normal_(p.scalar_proj.weight)
        a = p.tokens({**obs, "step": torch.zeros(2, 1)})
        b = p.tokens({**obs, "step": torch.ones(2, 1)})
        assert (not torch.equal(a, b)) == differs
    old = PolicyConfig.preset("tiny").to_dict()
    del old["see_step"]
    assert PolicyConfig.from_dict(old).see_step is True
