"""The core layer: game data from draftsman, the blueprint codec, the grid world,
blueprint <-> world, the kinds x directions footprint table and pictures. No torch,
gymnasium or numba here."""
