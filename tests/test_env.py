"""The gymnasium env: spaces, exact masks, rewards, termination, the batched vector env."""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from factorion.core.world import DIR, KIND, KIND_ID, PART, Entity, World
from factorion.env import factorio_env as E
from factorion.env.baselines import RandomAgent, run_episode, sample_uniform
from factorion.env.factorio_env import ENV_ID, FactorioEnv
from factorion.env.masks import OP_FINISH, OP_PLACE, OP_REMOVE, STAGES
from factorion.env.vector import FactorioVectorEnv

HAVE_SIM = importlib.util.find_spec("factorion.sim") is not None
FIXED_NAMES = ("source", "sink", "obstacle")
HAVE_TASKS = importlib.util.find_spec("factorion.tasks") is not None


# ---------------------------------------------------------------------------------- fixtures
def _fake_throughput(grid: np.ndarray) -> float:
    """Stand-in physics while factorion.sim is missing: 15/s per source whose belt chain
    (following belt directions) reaches a sink."""
    H, W = grid.shape[1:]
    total = 0.0
    belts = set(int(k) for k in E.ActionLayout(1, 1).kind[:4])
    for y, x in zip(*np.nonzero(grid[KIND] == KIND_ID["source"]), strict=True):
        for dy, dx in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            cy, cx, seen = y + dy, x + dx, set()
            while 0 <= cy < H and 0 <= cx < W and int(grid[KIND, cy, cx]) in belts and (cy, cx) not in seen:
                seen.add((cy, cx))
                ddy, ddx = ((-1, 0), (0, 1), (1, 0), (0, -1))[int(grid[DIR, cy, cx])]
                cy, cx = cy + ddy, cx + ddx
            if seen and 0 <= cy < H and 0 <= cx < W and grid[KIND, cy, cx] == KIND_ID["sink"]:
                total += 15.0
                break
    return total


class _FakeSim:
    @staticmethod
    def throughput(world: World) -> float:
        return _fake_throughput(world.grid)

    @staticmethod
    def throughput_batch(grids, rates=None):
        return np.array([_fake_throughput(g) for g in grids])


@pytest.fixture(autouse=True)
def sim(monkeypatch):
    """The real simulator when it exists, else the stand-in above."""
    if HAVE_SIM:
        return importlib.import_module("factorion.sim")
    monkeypatch.setattr(E, "_sim", lambda: _FakeSim)
    return _FakeSim


@dataclass
class HandTask:
    """The shape of tasks.Task, for hand-built worlds."""
    family: str
    level: int
    seed: int
    world: World
    solution: World
    reference: float
    removed: list = field(default_factory=list)
    recipes: tuple = ()
    items: tuple = ()


def belt_task(size: int, rng: np.random.Generator, n_missing: int = 2, extras: bool = True) -> HandTask:
    """A source and a sink joined by a straight east belt, ``n_missing`` belts removed; with
    ``extras`` an obstacle, a furnace and an assembler off the line (when the grid has room)."""
    H = W = size
    sol = World(H, W)
    y = int(rng.integers(H))
    sol.place("source", y, 0, item="iron-plate")
    sol.place("sink", y, W - 1, item="iron-plate")
    for x in range(1, W - 1):
        sol.place("transport-belt", y, x, direction=1)
    if extras and size >= 7:
        oy = (y + 3) % H if (y + 3) % H + 3 <= H else 0
        if all(sol.grid[PART, oy:oy + 3, 1:4].ravel() == 0):
            sol.place("assembling-machine-2", oy, 1, recipe="iron-gear-wheel")
        fy = (y + 2) % H if (y + 2) % H + 2 <= H else (y - 2) % H
        if all(sol.grid[PART, fy:fy + 2, W - 3:W - 1].ravel() == 0):
            sol.place("stone-furnace", fy, W - 3)
        oy2 = (y - 1) % H
        if sol.grid[PART, oy2, W // 2] == 0:
            sol.place(Entity("obstacle", oy2, W // 2, obstacle_name="small-electric-pole"))
    world = sol.copy()
    removed = []
    xs = rng.choice(np.arange(1, W - 1), size=min(n_missing, W - 2), replace=False)
    for x in xs:
        removed.append(world.remove(y, int(x)))
    ref = float(E.sim_module().throughput(sol))
    return HandTask("belt", 1 if n_missing == 0 else 2, 0, world, sol, ref, removed,
                    ("iron-gear-wheel", "iron-plate", "copper-cable"), ("iron-plate",))


def sampler(size: int, n_missing: int = 2):
    return lambda rng: belt_task(size, rng, n_missing)


def make_env(size=11, n_missing=2, **kw) -> FactorioEnv:
    return FactorioEnv(size, task_sampler=sampler(size, n_missing), **kw)


def make_venv(n, size=11, n_missing=2, **kw) -> FactorioVectorEnv:
    return FactorioVectorEnv(n, size, task_sampler=sampler(size, n_missing), **kw)


def reachable_states(env: FactorioEnv, n_states: int, seed: int, steps_between: int = 6):
    """Worlds reached by random valid play (plus some random raw actions)."""
    agent = RandomAgent(seed, op_weights=(0.75, 0.25, 1e-9))
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    for _ in range(n_states):
        for _ in range(steps_between):
            a = agent.act(env.action_masks()) if rng.random() < 0.8 else env.action_space.sample()
            if a[0] == OP_FINISH:
                continue
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        yield env


# ---------------------------------------------------------------------------------- registration / checker
def test_registered_make_and_make_vec():
    assert ENV_ID in gym.registry
    spec = gym.registry[ENV_ID]
    assert spec.vector_entry_point == "factorion.env.vector:FactorioVectorEnv"
    env = gym.make(ENV_ID, size=7, task_sampler=sampler(7))
    assert isinstance(env.unwrapped, FactorioEnv)
    obs, _ = env.reset(seed=0)
    assert obs["grid"].shape == (6, 7, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        venv = gym.make_vec(ENV_ID, num_envs=3, size=7, task_sampler=sampler(7))
    assert isinstance(venv, FactorioVectorEnv) and venv.num_envs == 3
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    with warnings.catch_warnings():  # with a spec, the checker also tries every render mode
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("render_mode", [None, "ansi", "rgb_array"])
def test_check_env_passes(render_mode):
    env = make_env(7, render_mode=render_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no checker warning either
        warnings.filterwarnings("ignore", message=".*not having a spec.*")
        check_env(env)
    env.reset(seed=1)
    frame = env.render()
    if render_mode == "ansi":
        assert isinstance(frame, str) and len(frame.splitlines()) >= 7
    elif render_mode == "rgb_array":
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


# ---------------------------------------------------------------------------------- masks
def _dense_valid(m, a) -> bool:
    op, cell, e, d, v = (int(t) for t in a)
    if not m["op"][op] or not m["cell"][op, cell]:
        return False
    if op != OP_PLACE:
        return True
    return bool(m["entity"][cell, e] and m["dir"][cell, e, d] and m["variant"][e, v])


def _check_mask_structure(env: FactorioEnv):
    m = env.action_masks()
    L = env.layout
    dense = m.dense()
    assert dense["op"].shape == (3,) and dense["cell"].shape == (3, L.n_cells)
    assert dense["entity"].shape == (L.n_cells, L.n_entity)
    assert dense["dir"].shape == (L.n_cells, L.n_entity, 4)
    assert dense["variant"].shape == (L.n_entity, L.n_variant)
    np.testing.assert_array_equal(dense["entity"], dense["dir"].any(-1))
    np.testing.assert_array_equal(dense["cell"][0], dense["entity"].any(-1))
    assert dense["op"][0] == dense["cell"][0].any() and dense["op"][1] == dense["cell"][1].any()
    assert dense["op"][2] and dense["cell"][2].tolist() == [True] + [False] * (L.n_cells - 1)
    # the conditional masks agree with the dense ones
    for c in range(0, L.n_cells, max(1, L.n_cells // 17)):
        np.testing.assert_array_equal(m.mask_for("entity", (0, c)), dense["entity"][c])
        for e in range(L.n_entity):
            np.testing.assert_array_equal(m.mask_for("dir", (0, c, e)), dense["dir"][c, e])
            np.testing.assert_array_equal(m.mask_for("variant", (0, c, e)), dense["variant"][e])
        for op in (OP_REMOVE, OP_FINISH):
            for stage in ("entity", "dir", "variant"):
                got = m.mask_for(stage, (op, c, 0))
                assert got[0] and not got[1:].any()  # ignored head: the canonical 0 only
    for op in range(3):
        np.testing.assert_array_equal(m.mask_for("cell", (op,)), dense["cell"][op])


def test_masks_exact_exhaustive_on_reachable_states():
    """5x5 and 7x7: every canonical action of every op, mask == World oracle."""
    for size, seed, n_states in ((5, 0, 8), (7, 1, 5)):
        env = make_env(size, n_missing=2)
        L = env.layout
        acts = np.array(_all_canonical_actions(L))
        n_valid = 0
        for state in reachable_states(env, n_states, seed):
            _check_mask_structure(state)
            m = state.action_masks()
            want = np.array([L.oracle_valid(state.world, a, state.task.recipes) for a in acts])
            np.testing.assert_array_equal(_dense_valid_batch(m, acts), want)
            np.testing.assert_array_equal(m.valid(acts), want)
            n_valid += want.sum()
        assert n_valid > 50 * n_states


def _dense_valid_batch(m, acts) -> np.ndarray:
    op, cell, e, d, v = acts.T
    ok = m["op"][op] & m["cell"][op, cell]
    place = m["entity"][cell, e] & m["dir"][cell, e, d] & m["variant"][e, v]
    return ok & ((op != OP_PLACE) | place)


def _all_canonical_actions(L):
    out = [np.array([OP_FINISH, 0, 0, 0, 0])]
    out += [np.array([OP_REMOVE, c, 0, 0, 0]) for c in range(L.n_cells)]
    for c in range(L.n_cells):
        for e in range(L.n_entity):
            dirs = range(4) if L.directional[e] else (0,)
            variants = range(L.n_variant) if L.has_variants[e] else (0,)
            out += [np.array([OP_PLACE, c, e, d, v]) for d in dirs for v in variants]
    return out


@pytest.mark.parametrize("size", [11, 32])
def test_masks_exact_sampled_on_reachable_states(size):
    env = make_env(size, n_missing=4)
    L = env.layout
    rng = np.random.default_rng(size)
    agent = RandomAgent(size)
    n_valid = 0
    for state in reachable_states(env, 6 if size == 11 else 3, size, steps_between=15):
        m = state.action_masks()
        _check_mask_structure(state) if size == 11 else None
        acts = [rng.integers(0, L.nvec) for _ in range(600)] + [agent.act(m) for _ in range(200)]
        for a in acts:
            _, a = L.canonical(a)
            a = a[0]
            want = L.oracle_valid(state.world, a, state.task.recipes)
            assert _dense_valid(m, a) == want, a
            assert bool(m.valid(a[None])[0]) == want
            n_valid += want
    assert n_valid > 100


def test_ignored_fields_are_accepted_and_advertised_as_zero():
    env = make_env(11)
    env.reset(seed=3)
    L = env.layout
    rng = np.random.default_rng(0)
    m = env.action_masks()
    noise = lambda: rng.integers(0, L.nvec)  # noqa: E731
    for _ in range(50):
        a = noise()
        a[0] = OP_FINISH
        assert m.valid(a[None])[0] and L.oracle_valid(env.world, a, env.task.recipes)
    rem = np.nonzero(m["cell"][OP_REMOVE])[0]
    a = noise()
    a[:2] = OP_REMOVE, rem[0]
    assert m.valid(a[None])[0]
    chest = L.entities.index("wooden-chest")
    cells = np.nonzero(m["entity"][:, chest])[0]
    a = np.array([OP_PLACE, cells[0], chest, 3, 2])  # dir and variant do not matter for a chest
    assert m.valid(a[None])[0] and not m["dir"][cells[0], chest, 3] and not m["variant"][chest, 2]
    before = env.world.grid.copy()
    _, _, _, _, info = env.step(a)
    assert not info["invalid"]
    y, x = divmod(int(cells[0]), L.width)
    assert env.world.entity_at(y, x) == Entity("wooden-chest", y, x)
    assert (env.world.grid != before).sum() == 2  # KIND and PART of one cell


# ---------------------------------------------------------------------------------- actions
def test_place_and_remove_multi_tile():
    env = make_env(11, n_missing=0)
    env.reset(seed=0)
    L = env.layout
    asm = L.entities.index("assembling-machine-3")
    m = env.action_masks()
    cells = np.nonzero(m["entity"][:, asm])[0]
    v = int(np.nonzero(m["variant"][asm])[0][0])
    assert env.task.recipes[v] == "iron-gear-wheel"
    c = int(cells[0])
    y, x = divmod(c, L.width)
    before = env.world.grid.copy()
    n0 = env.n_entities
    _, r, _, _, info = env.step(np.array([OP_PLACE, c, asm, 0, v]))
    assert not info["invalid"] and info["entities"] == n0 + 1 and info["n_placed"] == 1
    assert np.isclose(r, -env.entity_cost)  # no throughput change, one more entity
    e = env.world.entity_at(y + 2, x + 1)
    assert e == Entity("assembling-machine-3", y, x, 0, recipe="iron-gear-wheel")
    # remove through a non-anchor cell
    _, r, _, _, info = env.step(np.array([OP_REMOVE, (y + 2) * L.width + x + 1, 0, 0, 0]))
    assert not info["invalid"] and info["n_removed"] == 1
    np.testing.assert_array_equal(env.world.grid, before)
    assert np.isclose(r, env.entity_cost)


def test_removing_a_task_entity_is_free_and_clutter_costs_once():
    """The clutter cost counts entities beyond the start: removing a task-given one neither pays
    nor costs (only the throughput change counts), re-adding it is free, one more costs."""
    env = make_env(11, n_missing=2, entity_cost=0.01)
    _, info = env.reset(seed=3)
    assert info["throughput"] == 0.0  # two entities missing: nothing flows
    given = [e for e in env.world.entities() if e.name not in FIXED_NAMES]
    e = given[0]
    _, r, _, _, info = env.step(np.array([OP_REMOVE, e.y * env.layout.width + e.x, 0, 0, 0]))
    assert not info["invalid"] and r == 0.0 and info["entities"] == env.n_start - 1
    from factorion.train.bc_samples import encode_action
    _, r, _, _, info = env.step(encode_action(("place", e), env.layout, env.task.recipes))
    assert not info["invalid"] and np.isclose(r, 0.0) and info["entities"] == env.n_start


def test_remove_rules_and_invalid_actions_are_flagged_noops():
    env = make_env(11, n_missing=0, invalid_penalty=0.0)
    obs0, _ = env.reset(seed=5)
    L = env.layout
    g = env.world.grid
    fixed = [KIND_ID["source"], KIND_ID["sink"], KIND_ID["obstacle"]]
    protected = np.nonzero(np.isin(g[KIND], fixed).ravel())[0]
    assert len(protected) >= 3
    assert not env.action_masks()["cell"][OP_REMOVE, protected].any()
    empty = np.nonzero(g[PART].ravel() == 0)[0]
    occupied_belt = np.nonzero(g[KIND].ravel() == KIND_ID["transport-belt"])[0][0]
    belt = L.entities.index("transport-belt")
    bad = [np.array([OP_REMOVE, protected[0], 0, 0, 0]), np.array([OP_REMOVE, empty[0], 0, 0, 0]),
           np.array([OP_PLACE, occupied_belt, belt, 1, 0]),
           np.array([OP_PLACE, L.width - 1, L.entities.index("assembling-machine-1"), 0, 0]),  # off-grid
           np.array([OP_PLACE, empty[0], L.entities.index("underground-belt"), 0, 2]),  # io 3
           np.array([OP_PLACE, empty[0], L.entities.index("assembling-machine-1"), 0, 1]),  # smelting
           np.array([OP_PLACE, empty[0], L.entities.index("assembling-machine-1"), 0, 3]),  # no recipe 3
           np.array([7, 0, 0, 0, 0]), np.array([0, 10**6, 0, 0, 0]), np.array([0, -1, 0, 0, 0])]
    for i, a in enumerate(bad, 1):
        obs, r, term, trunc, info = env.step(a)
        assert info["invalid"] and r == 0.0 and not term and not trunc, a
        np.testing.assert_array_equal(obs["grid"], obs0["grid"])
        assert info["n_invalid"] == i and info["steps"] == i
    penal = make_env(11, invalid_penalty=0.5)
    penal.reset(seed=5)
    _, r, *_ = penal.step(np.array([7, 0, 0, 0, 0]))
    assert r == -0.5


def test_finish_terminates_level1_finish_is_zero_and_breaking_costs():
    env = make_env(11, n_missing=0)
    obs, info = env.reset(seed=2)
    assert np.isclose(info["ratio"], 1.0) and env.task.level == 1
    _, r, term, trunc, info = env.step(np.array([OP_FINISH, 5, 3, 2, 1]))
    assert term and not trunc and r == 0.0 and info["success"]
    env.reset(seed=2)
    belt_cell = int(np.nonzero(env.world.grid[KIND].ravel() == KIND_ID["transport-belt"])[0][3])
    _, r, term, _, info = env.step(np.array([OP_REMOVE, belt_cell, 0, 0, 0]))
    assert not term and r == -1.0 and info["ratio"] == 0.0  # a task entity: its removal is not paid


def test_truncation_is_not_termination():
    env = make_env(7, max_steps=3)
    env.reset(seed=0)
    for i in range(3):
        _, _, term, trunc, info = env.step(np.array([7, 0, 0, 0, 0]))  # invalid: still a step
        assert not term and trunc == (i == 2)
    assert "success" in info
    env2 = make_env(7, max_steps=2)
    env2.reset(seed=0)
    env2.step(np.array([7, 0, 0, 0, 0]))
    _, _, term, trunc, _ = env2.step(np.array([OP_FINISH, 0, 0, 0, 0]))
    assert term and not trunc  # finishing on the last step is a termination


@pytest.mark.parametrize("seed", range(3))
def test_reward_telescopes(seed):
    env = make_env(11, n_missing=4, entity_cost=0.01)
    agent = RandomAgent(seed, op_weights=(0.7, 0.25, 0.05))
    obs, info = env.reset(seed=seed)
    thr0, n0, ref = info["throughput"], info["entities"], env.ref
    total, done, rs = 0.0, False, []
    while not done:
        obs, r, term, trunc, info = env.step(agent.act(env.action_masks()))
        rs.append(r)
        total += r
        done = term or trunc
    want = (info["throughput"] - thr0) / ref - 0.01 * max(info["entities"] - n0, 0)
    assert np.isclose(total, want, atol=1e-9) and len(rs) > 3
    assert info["entities"] == E.count_entities(env.world.grid[None])[0]


# ---------------------------------------------------------------------------------- observation
@pytest.mark.parametrize("size", [5, 11, 32])
def test_grid_sizes(size):
    env = make_env(size, n_missing=1)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["grid"].shape == (6, size, size) and obs["grid"].dtype == np.int16
    assert env.action_space.nvec.tolist() == [3, size * size, 24, 4, 4]
    assert info["action_mask"]["cell"].shape == (3, size * size)
    out = run_episode(env, RandomAgent(size), seed=size)
    assert out["n_invalid"] == 0 and out["steps"] <= env.max_steps == 2 * size * size
    venv = make_venv(4, size, n_missing=1)
    obs, info = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)
    agent = RandomAgent(0)
    for _ in range(20):
        obs, r, term, trunc, info = venv.step(agent.act(venv.action_masks()))
        assert not info["invalid"].any()
    assert venv.observation_space.contains(obs)


def test_observation_task_fields():
    env = make_env(11)
    obs, info = env.reset(seed=0)
    from factorion.core import gamedata as gd
    assert obs["task"][0] == gd.item_names().index("iron-plate") + 1 and not obs["task"][1:].any()
    assert obs["recipes"][0] == gd.recipe_names().index("iron-gear-wheel") + 1
    assert obs["step"][0] == 0.0 and obs["ratio"][0] == np.float32(info["ratio"])
    for key in ("throughput", "ratio", "entities", "n_placed", "invalid", "steps", "sim_time_s",
                "action_mask", "family", "level"):
        assert key in info


# ---------------------------------------------------------------------------------- agents
def test_random_agent_is_valid_and_dense_masks_give_the_same_choices():
    env = make_env(11)
    env.reset(seed=0)
    m = env.action_masks()
    for s in range(30):
        a_fast = RandomAgent(s).act(m)
        a_dense = RandomAgent(s).act(m.dense())
        np.testing.assert_array_equal(a_fast, a_dense)
        assert m.valid(a_fast[None])[0]
    venv = make_venv(8)
    venv.reset(seed=0)
    mv = venv.action_masks()
    np.testing.assert_array_equal(RandomAgent(1).act(mv), RandomAgent(1).act(mv.dense()))
    out = run_episode(env, RandomAgent(0), seed=4)
    assert out["terminated"] or out["truncated"]
    assert {"return", "steps", "ratio", "n_invalid", "success"} <= set(out)


def test_sample_uniform_is_uniform_among_valid():
    rng = np.random.default_rng(0)
    mask = np.zeros((20000, 6), bool)
    mask[:, [1, 3, 4]] = True
    counts = np.bincount(sample_uniform(rng, mask), minlength=6)
    assert counts[[0, 2, 5]].sum() == 0 and np.allclose(counts[[1, 3, 4]] / 20000, 1 / 3, atol=0.02)


# ---------------------------------------------------------------------------------- vector env
def test_vector_shapes_spaces_and_info():
    B, size = 5, 9
    venv = make_venv(B, size)
    obs, info = venv.reset(seed=0)
    L = venv.layout
    assert venv.observation_space.contains(obs) and obs["grid"].shape == (B, 6, size, size)
    assert venv.action_space.shape == (B, 5)
    m = venv.action_masks()
    shapes = {"op": (B, 3), "cell": (B, 3, L.n_cells), "entity": (B, L.n_cells, L.n_entity),
              "dir": (B, L.n_cells, L.n_entity, 4), "variant": (B, L.n_entity, L.n_variant)}
    for k, s in shapes.items():
        assert m[k].shape == s and info["action_mask"][k].shape == s
    venv.action_space.seed(0)
    obs, r, term, trunc, info = venv.step(venv.action_space.sample())  # mostly invalid: no-ops
    assert r.shape == term.shape == trunc.shape == (B,)
    for k in ("throughput", "ratio", "entities", "invalid", "steps", "autoreset", "success"):
        assert info[k].shape == (B,), k
    assert isinstance(info["sim_time_s"], float)


def test_vector_env_matches_single_envs():
    """Same tasks, same actions: the batched env and B single envs agree step by step."""
    B, size = 6, 11
    rng = np.random.default_rng(0)
    tasks = [belt_task(size, rng, n_missing=3) for _ in range(B)]
    venv = make_venv(B, size, autoreset_mode="disabled")
    singles = [make_env(size) for _ in range(B)]
    venv.reset(seed=0, options={"tasks": tasks})
    for i, s in enumerate(singles):
        s.reset(seed=0, options={"task": tasks[i]})
    agent = RandomAgent(0, op_weights=(0.6, 0.35, 0.05))
    raw = np.random.default_rng(1)
    alive = np.ones(B, bool)
    for t in range(60):
        a = agent.act(venv.action_masks())
        if t % 5 == 0:
            a[0] = raw.integers(0, venv.layout.nvec)  # an arbitrary (usually invalid) action
        obs, r, term, trunc, info = venv.step(a)
        for i in np.nonzero(alive)[0]:
            o, ri, te, tr, inf = singles[i].step(a[i])
            np.testing.assert_array_equal(obs["grid"][i], o["grid"])
            assert np.isclose(r[i], ri) and te == term[i] and tr == trunc[i]
            assert inf["invalid"] == info["invalid"][i] and inf["entities"] == info["entities"][i]
            for k in STAGES:
                np.testing.assert_array_equal(venv.action_masks()[k][i], singles[i].action_masks()[k])
            if te or tr:
                alive[i] = False
        if not alive.any():
            break


def test_vector_masks_are_not_mutated_by_later_steps():
    def varied(rng):  # tasks whose recipes (so variant tables) differ
        t = belt_task(7, rng)
        t.recipes = [(), ("iron-gear-wheel",), ("copper-cable", "iron-gear-wheel")][int(rng.integers(3))]
        return t

    venv = FactorioVectorEnv(4, 7, task_sampler=varied, max_steps=1)
    venv.reset(seed=0)
    m = venv.action_masks()
    kept = {k: np.array(v, copy=True) for k, v in m.compact().items()}
    agent = RandomAgent(0)
    for _ in range(4):  # every step ends every episode: resets rewrite the task tables
        venv.step(agent.act(venv.action_masks()))
    for k, v in m.compact().items():
        np.testing.assert_array_equal(v, kept[k])


def test_vector_autoreset_next_step():
    venv = make_venv(3, 7)
    obs, _ = venv.reset(seed=0)
    noop = np.array([[7, 0, 0, 0, 0]] * 3)  # invalid: no-op
    act = noop.copy()
    act[1] = [OP_FINISH, 0, 0, 0, 0]
    obs, r, term, trunc, info = venv.step(act)
    assert term.tolist() == [False, True, False] and info["steps"].tolist() == [1, 1, 1]
    old_task = venv.tasks[1]
    obs, r, term, trunc, info = venv.step(act)  # env 1's action is ignored: it resets
    assert info["autoreset"].tolist() == [False, True, False]
    assert r[1] == 0.0 and not term[1] and not trunc[1] and not info["invalid"][1]
    assert info["steps"].tolist() == [2, 0, 2] and venv.tasks[1] is not old_task
    np.testing.assert_array_equal(obs["grid"][1], venv.tasks[1].world.grid)
    assert obs["step"][1, 0] == 0.0
    obs, r, term, trunc, info = venv.step(act)
    assert term[1] and not info["autoreset"].any()


def test_vector_autoreset_same_step_and_truncation():
    venv = make_venv(3, 7, autoreset_mode="same_step", max_steps=2)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    venv.reset(seed=0)
    act = np.array([[7, 0, 0, 0, 0]] * 3)
    act[0] = [OP_FINISH, 0, 0, 0, 0]
    obs, r, term, trunc, info = venv.step(act)
    assert term.tolist() == [True, False, False]
    assert info["_final_obs"].tolist() == [True, False, False] and info["final_obs"][1] is None
    assert info["final_info"]["steps"][0] == 1 and info["steps"][0] == 0  # already reset
    np.testing.assert_array_equal(obs["grid"][0], venv.tasks[0].world.grid)
    obs, r, term, trunc, info = venv.step(np.array([[7, 0, 0, 0, 0]] * 3))
    assert trunc.tolist() == [False, True, True] and not term.any()
    assert info["steps"].tolist() == [1, 0, 0]


def test_vector_reward_telescopes_and_agent_never_invalid():
    venv = make_venv(8, 11, n_missing=4, autoreset_mode="same_step")
    obs, info = venv.reset(seed=0)
    thr0, n0 = info["throughput"].copy(), info["entities"].copy()
    ret = np.zeros(8)
    agent = RandomAgent(0, op_weights=(0.7, 0.25, 0.05))
    checked = 0
    for _ in range(300):
        obs, r, term, trunc, info = venv.step(agent.act(venv.action_masks()))
        assert not info["invalid"].any()
        ret += r
        for i in np.nonzero(term | trunc)[0]:
            fin = info["final_info"]
            want = ((fin["throughput"][i] - thr0[i]) / venv.ref[i]
                    - venv.entity_cost * max(fin["entities"][i] - n0[i], 0))
            assert np.isclose(ret[i], want)
            ret[i], thr0[i], n0[i] = 0.0, info["throughput"][i], info["entities"][i]
            checked += 1
    assert checked >= 8


def test_task_pool_reuses_tasks():
    calls = []

    def counting(rng):
        calls.append(1)
        return belt_task(7, rng)

    venv = FactorioVectorEnv(4, 7, task_sampler=counting, task_pool=3, task_pool_refresh=0.0)
    venv.reset(seed=0)
    for _ in range(5):
        venv.reset()
    assert len(calls) == 3 and venv.task_source.generated == 3


def test_vector_render():
    venv = make_venv(2, 7, render_mode="ansi")
    venv.reset(seed=0)
    frames = venv.render()
    assert len(frames) == 2 and all(isinstance(f, str) for f in frames)


# ---------------------------------------------------------------------------------- real tasks
@pytest.mark.skipif(not (HAVE_TASKS and HAVE_SIM), reason="factorion.tasks / factorion.sim not written yet")
def test_real_tasks_level1_finish_zero_and_check_env():
    T = importlib.import_module("factorion.tasks")
    for family in T.FAMILIES:
        env = FactorioEnv(11, family=family, level=1)
        _, info = env.reset(seed=0)
        _, r, term, _, info = env.step(np.array([OP_FINISH, 0, 0, 0, 0]))
        assert term and r == 0.0, family
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(FactorioEnv(11, family=T.FAMILIES[0], level=2))


@pytest.mark.skipif(not (HAVE_TASKS and HAVE_SIM), reason="factorion.tasks / factorion.sim not written yet")
def test_real_tasks_masks_exact():
    T = importlib.import_module("factorion.tasks")
    env = FactorioEnv(11)
    rng = np.random.default_rng(0)
    L = env.layout
    for k, state in enumerate(reachable_states(env, 10, 0, steps_between=4)):
        if k % 3 == 0:
            state.reset(options={"family": T.FAMILIES[k % len(T.FAMILIES)], "level": 1 + k % 5})
        m = state.action_masks()
        _check_mask_structure(state)
        for a in [rng.integers(0, L.nvec) for _ in range(300)] + [RandomAgent(k).act(m) for _ in range(100)]:
            a = L.canonical(a)[1][0]
            assert _dense_valid(m, a) == L.oracle_valid(state.world, a, state.task.recipes), a


@pytest.mark.skipif(not (HAVE_TASKS and HAVE_SIM), reason="factorion.tasks / factorion.sim not written yet")
def test_curriculum_drives_resets_and_gets_results():
    T = importlib.import_module("factorion.tasks")
    cur = T.Curriculum(families=("belt", "smelting"), window=1, promote_at=1.0)
    venv = FactorioVectorEnv(3, 11, curriculum=cur, autoreset_mode="same_step")
    obs, info = venv.reset(seed=0)
    fams = set(info["family"])
    assert fams <= {"belt", "smelting"} and set(info["level"]) == {1}
    # level 1: finishing at once keeps the working factory: reward 0, a success
    obs, r, term, trunc, info = venv.step(np.array([[OP_FINISH, 0, 0, 0, 0]] * 3))
    assert term.all() and info["final_info"]["success"].all() and (r == 0).all()
    state = cur.state()
    assert sum(s["episodes"] for s in state.values()) == 3
    assert all(state[f]["level"] == 2 for f in fams)  # promoted (window 1)
    assert set(info["level"]) <= {1, 2} and 2 in set(info["level"])  # new episodes from the curriculum


@pytest.mark.slow
@pytest.mark.skipif(not (HAVE_TASKS and HAVE_SIM), reason="factorion.tasks / factorion.sim not written yet")
def test_real_tasks_masks_exact_exhaustive():
    """Every canonical action on reachable states of every family at 11x11 (slow: ~1 s a state)."""
    T = importlib.import_module("factorion.tasks")
    env = FactorioEnv(11)
    L = env.layout
    acts = np.array(_all_canonical_actions(L))
    for k, family in enumerate(T.FAMILIES):
        env.reset(seed=k, options={"family": family, "level": 4})
        agent = RandomAgent(k, op_weights=(0.7, 0.3, 1e-9))
        for _ in range(3):
            m = env.action_masks()
            want = np.array([L.oracle_valid(env.world, a, env.task.recipes) for a in acts])
            np.testing.assert_array_equal(_dense_valid_batch(m, acts), want)
            np.testing.assert_array_equal(m.valid(acts), want)
            for _ in range(5):
                env.step(agent.act(env.action_masks()))
