"""Uniform: a fresh random subset of the budget at every selection event."""

from dataclasses import dataclass

import torch

from nteach.teaching.strategies.base import Selection, Strategy
from nteach.teaching.strategies.registry import register


@register
@dataclass(frozen=True)
class Uniform(Strategy):
    name = "uniform"

    def select(self, scores, budget, pool_size, event, generator) -> Selection:
        return Selection(indices=torch.randperm(pool_size, generator=generator)[:budget])
