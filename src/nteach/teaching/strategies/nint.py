"""NINT (NTK-guided implicit neural teaching, CVPR 2026).

Each batch of B examples is built from three disjoint parts, in order:
the top p(u) B by NTK score ||K r||^2, the top (1 - xi - p(u)) B by L1
residual among the rest, and xi B drawn uniformly from what is left.
u counts selection events; the NTK score is refreshed every ``alpha``
events and dropped once its share falls under 1e-3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nteach.teaching.strategies.base import Selection, Strategy, random_subset, top_k
from nteach.teaching.strategies.registry import register

MIN_NTK_SHARE = 1e-3


@register
@dataclass(frozen=True)
class NINT(Strategy):
    xi: float = 0.7  # share of uniformly random examples
    lam: float = 1.0  # decay rate of the NTK share
    alpha: int = 10  # events between NTK refreshes (and decay scale)
    code_faithful: bool = False  # reproduce the released code's decay and refresh steps

    name = "nint"

    def ntk_share(self, event: int) -> float:
        """p(u): the share of the batch chosen by NTK score at event u (0 once under 1e-3)."""
        if self.code_faithful:  # the release computes 0.3 * exp(floor(-u / 10))
            share = (1.0 - self.xi) * math.exp(math.floor(-event / self.alpha))
        else:
            share = (1.0 - self.xi) * math.exp(-self.lam * event / self.alpha)
        return share if share >= MIN_NTK_SHARE else 0.0

    def refreshes_ntk(self, event: int) -> bool:
        if self.ntk_share(event) == 0.0:
            return False
        if self.code_faithful:  # the release refreshes at events 0, 9, 19, 29, ...
            return event == 0 or (event + 1) % self.alpha == 0
        return event % self.alpha == 0

    def needs(self, event: int) -> tuple[str, ...]:
        return ("residual", "ntk") if self.refreshes_ntk(event) else ("residual",)

    def part_sizes(self, budget: int, event: int) -> tuple[int, int, int]:
        """(NTK, residual, random) counts that add up to ``budget``."""
        n_ntk = round(self.ntk_share(event) * budget)
        n_random = min(round(self.xi * budget), budget - n_ntk)
        return n_ntk, budget - n_ntk - n_random, n_random

    def select(self, ctx) -> Selection:
        n_ntk, n_residual, n_random = self.part_sizes(ctx.budget, ctx.event)
        residual = ctx.scores["residual"]
        taken = top_k(ctx.scores["ntk"], n_ntk) if n_ntk else residual.new_zeros(0, dtype=torch.long)
        taken = torch.cat([taken, top_k(residual, n_residual, exclude=taken)])
        left = torch.ones(ctx.pool_size, dtype=torch.bool, device=residual.device)
        left[taken] = False
        chosen = random_subset(left.nonzero().squeeze(1), n_random, ctx.generator)
        return Selection(indices=torch.cat([taken, chosen]))
