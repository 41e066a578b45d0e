"""Fixtures shared across test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models gain nothing from threads, and spinning OpenMP threads crawl on a busy shared
    2-core machine: one torch thread for the module (use with ``pytest.mark.usefixtures``)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
