"""Factorion: machine-designed Factorio factories.

Layers, data flowing one way: ``blueprint`` (exchange strings) -> ``world`` (the grid) ->
``sim`` (steady-state throughput) -> ``env`` (gymnasium) -> ``model`` -> training -> evaluation.
Only the model, training and evaluation layers import torch.
"""

from . import env as _env  # noqa: F401  (registers factorion/FactorioEnv-v0 with gymnasium)

__version__ = "0.1.0"
