"""InfoBatch (ICLR 2024): skip part of the well-learned examples each epoch, rescale the rest.

Call ``select`` once per epoch. Every example keeps its last training loss
(``observe``; a large constant before it is first seen). At each epoch the
examples scoring strictly below the mean are candidates; a random share
``prune`` of them is skipped and the kept candidates get loss weight
1 / (1 - prune), so the expected gradient is unchanged. From progress
``delta`` on (the last 1 - delta of the epochs) nothing is pruned.
No extra forward pass. Equal scores (e.g. none seen yet) prune nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nteach.errors import UserError
from nteach.teaching.strategies.base import Context, Feedback, Selection, Strategy
from nteach.teaching.strategies.registry import register

UNSEEN = 1e4  # the score of an example never trained on: never a candidate for pruning


@register
@dataclass(frozen=True)
class InfoBatch(Strategy):
    prune: float = 0.5  # share of the below-mean examples skipped each epoch
    delta: float = 0.875  # stop pruning from this fraction of the epochs on

    name = "infobatch"
    teaches = ("examples",)

    def __post_init__(self) -> None:
        if not 0.0 <= self.prune < 1.0:
            raise UserError(f"prune must be in [0, 1), got {self.prune}")

    def init_state(self, pool_size: int) -> dict[str, torch.Tensor]:
        return {"scores": torch.full((pool_size,), UNSEEN)}

    def observe(self, feedback: Feedback, state: dict[str, torch.Tensor]) -> None:
        scores = state["scores"]
        if feedback.indices is None:
            scores.copy_(feedback.losses.to(scores))
        else:
            scores[feedback.indices.to(scores.device)] = feedback.losses.to(scores)

    def candidates(self, scores: torch.Tensor) -> torch.Tensor:
        """Indices of the examples strictly below the mean score (none when all scores are equal)."""
        if bool(scores.max() == scores.min()):  # a float mean of equal values may land above them
            return torch.zeros(0, dtype=torch.long, device=scores.device)
        scores = scores.double()
        return (scores < scores.mean()).nonzero().squeeze(1)

    def select(self, ctx: Context) -> Selection:
        candidates = self.candidates(ctx.state["scores"])
        if ctx.progress >= self.delta or len(candidates) == 0 or self.prune == 0.0:
            return Selection(indices=None)
        skip = round(self.prune * len(candidates))
        order = candidates[torch.randperm(len(candidates), generator=ctx.generator).to(candidates.device)]
        weights = torch.ones(ctx.pool_size, device=candidates.device)
        weights[order[skip:]] = 1.0 / (1.0 - self.prune)
        trained = torch.ones(ctx.pool_size, dtype=torch.bool, device=candidates.device)
        trained[order[:skip]] = False
        indices = trained.nonzero().squeeze(1)
        return Selection(indices=indices, weights=weights[indices])
