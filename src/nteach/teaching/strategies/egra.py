"""EGRA: edge-guided random sampling, a near-uniform sampler that slightly favours edges.

A static Canny edge map E of the image (the signal's "edges" score, asked
for once) is shifted at every event by a random s in [6, 9] positions
(mod N, along the row-major order) to give E'. Examples are then drawn
without replacement with probability P proportional to
E' p + (1 - p) base, so edge pixels are only 1 + p / ((1 - p) base) ~ 1.4
times likelier than the rest. The shift is applied to the static map at each
event (it does not accumulate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nteach.teaching.strategies.base import Context, Selection, Strategy
from nteach.teaching.strategies.registry import register


@register
@dataclass(frozen=True)
class EGRA(Strategy):
    p: float = 0.0025  # weight of the (shifted) edge map
    base: float = 4096 / 640000  # weight of every example, scaled by (1 - p)
    min_shift: int = 6  # the edge map moves by a random shift in [min_shift, max_shift]
    max_shift: int = 9

    name = "egra"

    def needs(self, event: int) -> tuple[str, ...]:
        return ("edges",) if event == 0 else ()

    def probabilities(self, edges: torch.Tensor, shift: int) -> torch.Tensor:
        """Unnormalised P: E' p + (1 - p) base, with E' the 0/1 ``edges`` moved ``shift`` places on."""
        return torch.roll(edges.float(), shift) * self.p + (1.0 - self.p) * self.base

    def select(self, ctx: Context) -> Selection:
        edges = ctx.scores["edges"]
        shift = int(torch.randint(self.min_shift, self.max_shift + 1, (1,), generator=ctx.generator))
        weights = self.probabilities(edges.cpu(), shift)  # the generator lives on the CPU
        chosen = torch.multinomial(weights, ctx.budget, replacement=False, generator=ctx.generator)
        return Selection(indices=chosen.to(edges.device))
