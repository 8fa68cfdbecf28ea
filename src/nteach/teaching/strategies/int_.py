"""INT (Implicit Neural Teaching, ICML 2024): train on the examples with the largest L1 residual."""

from dataclasses import dataclass

from nteach.teaching.strategies.base import Selection, Strategy, top_k
from nteach.teaching.strategies.registry import register


@register
@dataclass(frozen=True)
class INT(Strategy):
    name = "int"
    # the paper's shipped image setting: ratio rising in ten steps, ever sparser re-selection
    default_schedule = "step"
    default_interval = "incremental"

    def needs(self, event: int) -> tuple[str, ...]:
        return ("residual",)

    def select(self, ctx) -> Selection:
        return Selection(indices=top_k(ctx.scores["residual"], ctx.budget))
