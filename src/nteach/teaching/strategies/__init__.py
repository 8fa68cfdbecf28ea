"""Teaching strategies, one file each, registered by name on import."""

from nteach.teaching.strategies import full, int_, nint, uniform  # noqa: F401  (registers them)
from nteach.teaching.strategies.base import Context, Feedback, Selection, Strategy
from nteach.teaching.strategies.registry import STRATEGIES, make_strategy, register

__all__ = ["STRATEGIES", "Context", "Feedback", "Selection", "Strategy", "make_strategy", "register"]
