"""Selective Backprop (Jiang et al., 2019): backpropagate mostly the examples with high loss.

A per-batch filter, not an epoch selection: every epoch covers the whole
pool, and for each batch the loop runs a no-grad forward, then keeps
example i with probability P_i = rank_i ** beta, rank_i being the
percentile rank of its loss among the last ``window`` losses seen
(this batch included). With ranks spread evenly over (0, 1],
E[P] = 1 / (beta + 1), so beta = 1 / keep - 1 keeps about ``keep`` of
each batch. Biased towards hard examples by design.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nteach.errors import UserError
from nteach.teaching.strategies.base import Context, Selection, Strategy
from nteach.teaching.strategies.registry import register


def percentile_ranks(losses: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The fraction of ``reference`` at or below each loss, in [0, 1] (float64)."""
    ordered = torch.sort(reference.double()).values
    return torch.searchsorted(ordered, losses.double(), right=True).double() / len(ordered)


def keep_probabilities(losses: torch.Tensor, reference: torch.Tensor, keep: float) -> torch.Tensor:
    """P_i = rank_i ** beta with beta = 1 / keep - 1: on average about ``keep`` of the batch."""
    return percentile_ranks(losses, reference) ** (1.0 / keep - 1.0)


@register
@dataclass(frozen=True)
class SelectiveBackprop(Strategy):
    keep: float = 0.5  # expected share of each batch that is backpropagated (beta = 1 / keep - 1)
    window: int = 1024  # recent losses the percentile ranks are taken over

    name = "selective_backprop"
    teaches = ("examples",)
    filters_batches = True

    def __post_init__(self) -> None:
        if not 0.0 < self.keep <= 1.0:
            raise UserError(f"keep must be in (0, 1], got {self.keep}")
        if self.window < 1:
            raise UserError(f"window must be >= 1, got {self.window}")

    def init_state(self, pool_size: int) -> dict[str, torch.Tensor]:
        return {"history": torch.zeros(0)}

    def select(self, ctx: Context) -> Selection:
        return Selection(indices=None)  # every example is forwarded; the batches are filtered

    def filter_batch(self, losses: torch.Tensor, state: dict[str, torch.Tensor],
                     generator: torch.Generator) -> torch.Tensor:
        device, losses = losses.device, losses.detach().float().cpu()
        state["history"] = torch.cat([state["history"].cpu(), losses])[-self.window:]
        chance = keep_probabilities(losses, state["history"], self.keep)
        kept = torch.rand(len(losses), generator=generator, dtype=torch.float64) < chance
        if not bool(kept.any()):  # never an empty batch: keep its hardest example
            kept[torch.argmax(losses)] = True
        return kept.to(device)
