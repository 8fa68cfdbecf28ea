"""Seeded initialisation that leaves the caller's random state alone."""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int):
    """Draws from torch's global CPU generator inside come from ``seed`` (a network's initialisation);
    afterwards the generator is where the caller left it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
