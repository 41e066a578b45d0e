"""DAgger: the expert relabels the states the policy visits on procedural tasks.

The expert (:func:`expert_edits`) turns any state of a task into the edit list
``planner.actions_to_build(state, target)``: first the removal of every piece the state holds that the
target lacks (row-major), then the target's missing pieces in the canonical flow order (machines,
inserters, then belt-likes along the item flow from the sources). Its **label** for a state is the first
edit of that list (:func:`expert_label`). ``target`` is a function of the task alone
(``planner.expert_target``: the planner's plan from the task's start, or the reference solution when
that needs fewer edits -- the target of ``make demos`` too, so demonstrations and relabels agree; the
planner's budget is far above what it needs, so its answer does not depend on the clock), so the label
is a function of (task, state): the same state always gets the same label, whichever policy, round or
process visited it. Following the labels solves the task: each label is the head of the list, and the list of
the next state is the tail (a removal shortens the removals; a placement takes the first wanted piece
of the flow walk, which the walk passes through either way) -- see docs/learned.md and the tests.

Why the target is planned once from the task's start: a re-plan from every state would make the
target depend on the path (a piece the policy placed could steer the plan elsewhere), and a later label
could undo an earlier one; one target per task makes every label a step of one fixed edit list.

**Re-planned targets** (``replan=True``, what :func:`collect` uses): a fixed target has one flaw -- where
the policy put its first machine one cell off the target's, every label says "remove it", though a
factory built around it would work as well. With ``replan`` the expert also asks the planner to complete
the visited state itself (``planner.replan_target``: the candidate that reaches the reference in the
fewest edits from that state) and keeps whichever of the two needs fewer edits (ties: the fixed target).
Still a function of (task, state): the planner's random streams are fixed and its budget far above
need, so the same state gets the same label (tested); each DAgger episode follows one target from its
visited state to the end, so its labels are the steps of one edit list (tested: following them solves
the task).

**Accepted moves** (``accept=True``, ``--dagger-accept``): the labels above teach one move per state,
the expert's, though several may be as good: where the policy's first machine goes, say, the planner
often completes a factory around its spot as short as around its own. With ``accept`` an episode that
starts at a visited state ``s`` whose roll-out went on with a one-piece edit to ``s'`` takes the
policy's edit as its label when the expert's edit list from ``s'`` (:func:`expert_edits`) is no longer
than the one from ``s`` minus one: the move is then on a shortest known path to a working factory, and
the episode continues from ``s'`` with the expert. A label is then one of a set of moves, each as short
as the expert's (a function of (task, state, the policy's move)), not one move per state: the loss fits
a mixture over moves the planner confirmed, which keeps the policy's own choices where they are sound
instead of pulling them to the expert's one. Without it every label is the expert's, as above.

:func:`collect` rolls the policy out (a batched :class:`~factorion.env.vector.FactorioVectorEnv`,
sampled actions) and returns, for up to ``per_episode`` distinct visited states of each roll-out (evenly
spread), a BC episode that starts there and follows the expert to the end (``expand_episode``
arguments): the visited state with its label and the expert's continuation. ``make pretrain``
aggregates the episodes of every round with the demonstrations (``--dagger-rounds``); ``make
finetune``'s expert term uses :func:`expert_label` on every level (:mod:`factorion.train.ppo_expert`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import numpy as np

from factorion.core.world import World

__all__ = ["clear_cache", "expert_target", "expert_edits", "expert_label", "collect"]



_TARGETS: dict[tuple, World] = {}


def expert_target(task) -> World:
    """The world the expert builds towards (``planner.expert_target``; cached per task)."""
    from factorion.env.planner import expert_target as target_of

    key = (getattr(task, "family", None), getattr(task, "level", None), getattr(task, "seed", None),
           task.world.grid.tobytes())
    if key not in _TARGETS:
        if len(_TARGETS) > 4096:
            _TARGETS.clear()
        _TARGETS[key] = target_of(task)[0]
    return _TARGETS[key]


def clear_cache() -> None:
    """Forget the planned targets (as a fresh process would)."""
    _TARGETS.clear()


def expert_edits(task, state: World, replan: bool = False) -> list[tuple]:
    """The expert's edits from ``state`` (planner format): to :func:`expert_target`, or with
    ``replan`` to whichever of it and the planner's completion of ``state``
    (``planner.replan_target``) needs fewer edits (ties: the fixed target)."""
    from factorion.env.planner import actions_to_build, replan_target

    edits = list(actions_to_build(state, expert_target(task)))
    if replan and edits:
        other = replan_target(task, state)
        if other is not None:
            alt = list(actions_to_build(state, other))
            edits = alt if len(alt) < len(edits) else edits
    return edits


def expert_label(task, state: World, replan: bool = False) -> tuple:
    """The expert's next edit in ``state``: the head of :func:`expert_edits`, ``("finish",)`` when
    the state is the target."""
    edits = expert_edits(task, state, replan)
    return edits[0] if edits else ("finish",)


def _episode(task, state: World, replan: bool, nxt: World | None = None) -> dict:
    """The BC episode that starts at ``state``: the expert's edits from it; with ``nxt`` (the state the
    roll-out went to next), the policy's move there followed by the expert's edits from ``nxt`` when
    that is no longer (an accepted move, see the module docstring)."""
    actions = expert_edits(task, state, replan)
    move = _move(state, nxt) if nxt is not None and actions else None
    if move is not None:
        after = expert_edits(task, nxt, replan)
        if len(after) + 1 <= len(actions):
            actions = [move] + after
    return {"start": state.copy(), "actions": actions,
            "recipes": list(task.recipes), "items": [i for i in task.items if i],
            "reference": float(task.reference)}


def _move(state: World, nxt: World) -> tuple | None:
    """The one edit (planner format) that turns ``state`` into ``nxt``; None unless it is exactly
    one placement or one removal."""
    a, b = set(state.entities()), set(nxt.entities())
    gone, new = a - b, b - a
    if len(gone) + len(new) != 1:
        return None
    if new:
        return ("place", new.pop())
    e = gone.pop()
    return ("remove", e.y, e.x)


def collect(policy, tasks: Iterable, n_rollouts: int = 2, per_episode: int = 3, max_steps: int = 48,
            seed: int = 0, batch: int = 32, replan: bool = True, accept: bool = False) -> list[dict]:
    """DAgger episodes from the policy's own roll-outs (see the module docstring): ``n_rollouts``
    sampled roll-outs per task, ``per_episode`` distinct visited states of each (evenly spread), each
    continued by the expert (``replan``: around the pieces the policy placed where that takes fewer
    edits, :func:`expert_edits`). Up to ``batch`` tasks of one grid size roll out together (one batched
    env, one policy forward per step for all of them)."""
    import torch

    by_shape: dict[tuple, list] = {}
    for task in tasks:
        by_shape.setdefault(task.world.shape, []).append(task)
    rng = random.Random(seed)
    out: list[dict] = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for shape, group in by_shape.items():
            for k in range(0, len(group), batch):
                chunk = [t for t in group[k:k + batch] for _ in range(n_rollouts)]
                for task, states in zip(chunk, _rollout(policy, shape, chunk, max_steps, rng), strict=True):
                    out += [_episode(task, s, replan, nxt if accept else None)
                            for s, nxt in _pick(task, states, per_episode)]
    return out


def _rollout(policy, shape: tuple, tasks: list, max_steps: int, rng: random.Random) -> list[list[World]]:
    """The worlds each env of one batched env visits (one task per env, sampled actions; the one
    roll-out loop, :func:`factorion.policy.rollout.rollout`)."""
    from factorion.env.vector import FactorioVectorEnv
    from factorion.policy.rollout import rollout

    cfg = policy.config
    kw = {"entities": tuple(cfg.entities), "max_items": cfg.max_items, "max_recipes": cfg.max_recipes}
    n = len(tasks)
    env = FactorioVectorEnv(n, shape, max_steps=max_steps, autoreset_mode="disabled", **kw)
    visited: list[list[World]] = [[] for _ in range(n)]

    # env.world(i) is a view of the live batch grid: copy, or every entry becomes the final state
    def start(env, _info):
        for i in range(n):
            visited[i].append(env.world(i).copy())

    def step(env, _info, active):
        for i in np.nonzero(active)[0]:
            visited[i].append(env.world(i).copy())

    rollout(policy, env, tasks, greedy=False, seed=rng.randrange(2**31), on_step=step, on_reset=start)
    return visited


def _pick(task, states: Sequence[World], k: int) -> list[tuple[World, World | None]]:
    """Up to ``k`` distinct visited states that are not the target, evenly spread, each with the
    state the roll-out went to next (None at its end; steps that changed nothing are skipped)."""
    keys = [s.grid.tobytes() for s in states]
    seen, uniq = set(), []
    for i, (s, key) in enumerate(zip(states, keys, strict=True)):
        if key not in seen:
            seen.add(key)
            j = next((j for j in range(i + 1, len(keys)) if keys[j] != key), None)
            uniq.append((s, None if j is None else states[j]))
    target = expert_target(task)
    uniq = [p for p in uniq if p[0] != target]
    if len(uniq) <= k:
        return uniq
    idx = np.linspace(0, len(uniq) - 1, k).round().astype(int)
    return [uniq[i] for i in sorted(set(idx.tolist()))]
