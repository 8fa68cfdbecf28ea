"""Full batch: every example at every step (the standard way to fit)."""

from dataclasses import dataclass

from nteach.teaching.strategies.base import Selection, Strategy
from nteach.teaching.strategies.registry import register


@register
@dataclass(frozen=True)
class Full(Strategy):
    name = "full"
    teaches = ("coordinates", "examples")
    default_interval = "void"
    whole_pool = True

    def select(self, ctx) -> Selection:
        return Selection(indices=None)
