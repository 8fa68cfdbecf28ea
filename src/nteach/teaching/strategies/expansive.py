"""Expansive Supervision: a fixed set of edge anchors plus a uniform sample of the rest.

At the first event the signal provides a 0/1 mask of dilated edges whose area
is about rho = anchor_share * budget / N ("expansive_edges:RHO"); it is
trimmed at random to round(rho N) anchors, kept in the teacher's state.
Every event selects all anchors, then non-anchor examples uniformly at
random up to the budget. The loss is plain MSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nteach.teaching.strategies.base import Context, Selection, Strategy, random_subset
from nteach.teaching.strategies.registry import register


def edge_anchors(ctx: Context, mask_name: str, count: int) -> torch.Tensor:
    """Up to ``count`` indices drawn uniformly from the nonzero entries of the signal's edge mask
    ``mask_name`` (as Expansive Supervision draws its anchors; paced_sweep's anchors too)."""
    candidates = ctx.scores[mask_name].nonzero().squeeze(1)
    return random_subset(candidates, min(count, len(candidates)), ctx.generator)


@register
@dataclass(frozen=True)
class Expansive(Strategy):
    anchor_share: float = 0.5  # rho = anchor_share * ratio: the anchors' share of the pool

    name = "expansive"

    def rho(self, ctx: Context) -> float:
        return self.anchor_share * ctx.budget / ctx.pool_size

    def mask_name(self, ctx: Context) -> str:
        return f"expansive_edges:{self.rho(ctx)}"

    def needs_at(self, ctx: Context) -> tuple[str, ...]:
        return () if "anchors" in ctx.state else (self.mask_name(ctx),)

    def anchors(self, ctx: Context) -> torch.Tensor:
        """The anchor indices, drawn from the edge mask on first use and kept in ``ctx.state``."""
        if "anchors" not in ctx.state:
            count = round(self.rho(ctx) * ctx.pool_size)
            ctx.state["anchors"] = edge_anchors(ctx, self.mask_name(ctx), count)
        return ctx.state["anchors"]

    def select(self, ctx: Context) -> Selection:
        anchors = self.anchors(ctx)
        if len(anchors) >= ctx.budget:  # only when the ratio schedule falls below the anchors' share
            return Selection(indices=random_subset(anchors, ctx.budget, ctx.generator))
        others = torch.ones(ctx.pool_size, dtype=torch.bool, device=anchors.device)
        others[anchors] = False
        rest = random_subset(others.nonzero().squeeze(1), ctx.budget - len(anchors), ctx.generator)
        return Selection(indices=torch.cat([anchors, rest]))
