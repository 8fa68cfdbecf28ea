"""Sweep: shuffled rounds over the pool, each example once a round, what a DataLoader with shuffle=True does.

Steps consume a round ``budget`` examples at a time; when fewer are left than a
step needs, the next round (a fresh permutation) fills the step up. A peer
every user gets for free, so every benchmark runs it.
"""

from dataclasses import dataclass

import torch

from nteach.teaching.strategies.base import Selection, Strategy
from nteach.teaching.strategies.registry import register


@register
@dataclass(frozen=True)
class Sweep(Strategy):
    name = "sweep"

    def init_state(self, pool_size: int) -> dict[str, torch.Tensor]:
        return {"order": torch.zeros(0, dtype=torch.long)}  # what is left of the current round

    def select(self, ctx) -> Selection:
        order = ctx.state["order"].cpu()  # a resumed state may sit on the GPU; the generator draws here
        while len(order) < ctx.budget:
            order = torch.cat([order, torch.randperm(ctx.pool_size, generator=ctx.generator)])
        ctx.state["order"] = order[ctx.budget:]
        return Selection(indices=order[:ctx.budget])
