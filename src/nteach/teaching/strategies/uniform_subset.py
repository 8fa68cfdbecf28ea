"""Uniform subset: AtteNT-Complex's plan of cycles, with each cycle's subset drawn uniformly at random.

The control for AtteNT: the same warm-up, cycles, ratios and subset epochs
(so the same number of examples trained), no scoring pass, no notion of
hard examples. Any gap to ``attent_complex`` is what loss-based selection buys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nteach.teaching.strategies.attent_complex import Cycles
from nteach.teaching.strategies.base import Context, random_subset
from nteach.teaching.strategies.registry import register


@register
@dataclass(frozen=True)
class UniformSubset(Cycles):
    name = "uniform_subset"
    teaches = ("examples",)

    def draw(self, ctx: Context, count: int) -> torch.Tensor:
        return random_subset(torch.arange(ctx.pool_size), count, ctx.generator)
