"""Factorion: machine-designed Factorio factories.

Layers, each importing only those below it (docs/architecture.md):

- ``factorion.core``: game data, the blueprint codec, the grid world, pictures;
- ``factorion.sim``: the exact steady-state throughput simulator;
- ``factorion.tasks``: task families with reference solutions, levels, the curriculum;
- ``factorion.env``: the gymnasium env, its masks, the planner and baselines;
- ``factorion.policy``: the transformer policy and its observation / action adapters (torch);
- ``factorion.train``: behaviour cloning and PPO (torch);
- on top: ``factorion.build``, ``factorion.evaluate``, ``factorion.cli``.

Importing this package loads nothing heavy: ``import factorion.env`` registers
``factorion/FactorioEnv-v0`` with gymnasium.
"""

__version__ = "0.1.0"
