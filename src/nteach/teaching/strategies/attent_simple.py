"""AtteNT-Simple (ICLR 2026, the LLM fine-tuning teacher): one full epoch, then the hardest examples only.

Call ``select`` once per epoch. The first epoch trains on the whole pool
while each example's loss is recorded from the training forward itself
(``observe``, keyed by dataset index: no extra pass). At the next event the
top ``ratio`` of the pool by recorded loss is chosen once (hard top-k over
the whole pool), and every later epoch trains on that subset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nteach.teaching.strategies.base import Context, Feedback, Selection, Strategy, top_k
from nteach.teaching.strategies.registry import register


@register
@dataclass(frozen=True)
class AtteNTSimple(Strategy):
    warmup: int = 1  # full epochs before the subset is chosen

    name = "attent_simple"
    teaches = ("examples",)
    default_ratio = 0.7  # the share of the pool kept after the warm-up

    def init_state(self, pool_size: int) -> dict[str, torch.Tensor]:
        return {
            "losses": torch.full((pool_size,), float("-inf")),  # last training loss; -inf: never seen
            "subset": torch.zeros(0, dtype=torch.long),  # chosen once, after the warm-up
        }

    def observe(self, feedback: Feedback, state: dict[str, torch.Tensor]) -> None:
        losses = state["losses"]
        if feedback.indices is None:
            losses.copy_(feedback.losses.to(losses))
        else:
            losses[feedback.indices.to(losses.device)] = feedback.losses.to(losses)

    def select(self, ctx: Context) -> Selection:
        if ctx.event < self.warmup:
            return Selection(indices=None)
        if len(ctx.state["subset"]) == 0:
            ctx.state["subset"] = torch.sort(top_k(ctx.state["losses"], ctx.budget)).values
        return Selection(indices=ctx.state["subset"])
