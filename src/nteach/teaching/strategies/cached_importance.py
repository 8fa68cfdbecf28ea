"""Cached importance: sample where the loss was large when last seen, at uniform sampling's cost.

INT, EVOS and NINT pay a no-grad pass over the whole pool at selection
events; on a CPU that pass costs more than the step it guides, and plain
uniform sampling wins in wall-clock time. This teacher never scores the
pool. It keeps, per example, the loss that example had the last time it
was trained on (the training forward computes it anyway) and draws the
next batch without replacement from

    p_i = (1 - mix) * c_i^temperature / sum_j c_j^temperature + mix / N.

Examples not trained on yet count as the largest cached loss, so the
first steps sweep the pool. A cached loss only ever gets older, and an
example's loss mostly falls as training goes on, so examples not seen for
a while keep their old, larger value and come back: staleness acts as a
bonus, without a refresh pass.

Options kept for the ablation (docs/benchmarks.md), off by default because
they measured worse: ``weighted`` scales each loss by w_i = 1 / (N p_i),
clipped at ``max_weight`` and divided by the batch mean, so that the step
follows the full-pool gradient in expectation (about 0.8 dB lower after
800 SIREN steps: the focus is what helps); ``refresh_every`` re-scores the
pool every k events with a no-grad pass (no gain: the cache's staleness is
not what limits it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nteach.errors import UserError
from nteach.teaching.strategies.base import Feedback, Selection, Strategy
from nteach.teaching.strategies.registry import register


@register
@dataclass(frozen=True)
class CachedImportance(Strategy):
    temperature: float = 0.5  # 0: uniform; 1: proportional to the cached loss
    mix: float = 0.5  # share of the probability spread uniformly: every example keeps p >= mix / N
    weighted: bool = False  # importance weights 1 / (N p), so the gradient stays (nearly) unbiased
    max_weight: float = 5.0
    refresh_every: int = 0  # > 0: re-score the whole pool (one no-grad pass) every this many events

    name = "cached_importance"

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0.0 < self.mix <= 1.0 or self.max_weight < 1.0:
            raise UserError(f"cached_importance needs temperature >= 0, 0 < mix <= 1 and max_weight >= 1, "
                            f"got {self.temperature}, {self.mix}, {self.max_weight}")

    def needs(self, event: int) -> tuple[str, ...]:
        return ("squared_error",) if self.refresh_every and event % self.refresh_every == 0 else ()

    def init_state(self, pool_size: int) -> dict[str, torch.Tensor]:
        return {"cache": torch.full((pool_size,), float("nan"))}

    def probabilities(self, cache: torch.Tensor) -> torch.Tensor:
        """p_i from the cached losses; never-seen examples take the largest cached loss."""
        seen = ~cache.isnan()
        largest = cache[seen].max() if seen.any() else cache.new_ones(())
        scores = torch.where(seen, cache, largest).clamp_min(1e-12).pow(self.temperature)
        return (1.0 - self.mix) * scores / scores.sum() + self.mix / len(cache)

    def select(self, ctx) -> Selection:
        if "squared_error" in ctx.scores and self.refresh_every and ctx.event % self.refresh_every == 0:
            ctx.state["cache"] = ctx.scores["squared_error"].detach().clone()
        device = ctx.state["cache"].device
        p = self.probabilities(ctx.state["cache"].cpu())  # the teacher's generator draws on the CPU
        # Gumbel-top-k: the same law as drawing without replacement, in about 60 % of multinomial's time
        gumbel = -torch.log(-torch.log(torch.rand(len(p), generator=ctx.generator).clamp_min(1e-20)))
        indices = torch.topk(p.log() + gumbel, ctx.budget, sorted=False).indices
        if not self.weighted:
            return Selection(indices=indices.to(device))
        weights = (1.0 / (ctx.pool_size * p[indices])).clamp_max(self.max_weight)
        return Selection(indices=indices.to(device), weights=(weights / weights.mean()).to(device))

    def observe(self, feedback: Feedback, state: dict[str, torch.Tensor]) -> None:
        cache = state["cache"]
        if cache.device != feedback.losses.device:
            cache = state["cache"] = cache.to(feedback.losses.device)
        if feedback.indices is None:
            cache.copy_(feedback.losses)
        else:
            cache[feedback.indices] = feedback.losses.to(cache.dtype)
