"""Uniform: a fresh random subset of the budget at every selection event."""

from dataclasses import dataclass

import torch

from nteach.teaching.strategies.base import Selection, Strategy
from nteach.teaching.strategies.registry import register


@register
@dataclass(frozen=True)
class Uniform(Strategy):
    name = "uniform"
    teaches = ("coordinates", "examples")

    def select(self, ctx) -> Selection:
        return Selection(indices=torch.randperm(ctx.pool_size, generator=ctx.generator)[:ctx.budget])
