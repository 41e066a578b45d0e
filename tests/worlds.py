"""Small hand-made worlds shared by the tests (and by the fuzz script run beside them)."""

from __future__ import annotations

from factorion.core.world import OBSTACLE, Entity, World


def hand_world(*, obstacle: bool = True, source_rate: float | None = None) -> World:
    """A 4x8 factory: iron from a source along a belt, an inserter into a gear assembler, a gear
    sink; optionally a small electric pole (an obstacle) and a capped source."""
    w = World(4, 8)
    w.place("source", 1, 0, item="iron-plate")
    for x in range(1, 4):
        w.place("transport-belt", 1, x, direction=1)
    w.place("inserter", 0, 3, direction=2)
    w.place("assembling-machine-1", 0, 4, recipe="iron-gear-wheel")
    w.place("sink", 3, 7, item="iron-gear-wheel")
    if obstacle:
        w.place(Entity(OBSTACLE, 3, 0, obstacle_name="small-electric-pole"))
    if source_rate is not None:
        w.rates[(1, 0)] = source_rate
    return w
