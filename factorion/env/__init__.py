"""The env layer: the gymnasium env (``factorio_env``), the batched env (``vector``), the action
masks (``masks``, compiled passes in ``kernels``), the scripted planner and the baselines.

Importing the package registers ``factorion/FactorioEnv-v0`` with gymnasium."""

from factorion.env import factorio_env as _registers  # noqa: F401
