"""The teaching engine: schedules, scores, strategies and the Teacher. Knows nothing of images or tokens."""

from nteach.teaching.schedules import INTERVALS, RATIO_SCHEDULES, interval_at, ratio_at
from nteach.teaching.scores import l1_residual, ntk_product, ntk_score, predict
from nteach.teaching.strategies import (
    STRATEGIES,
    Selection,
    Strategy,
    make_strategy,
    options_from_text,
    register,
)
from nteach.teaching.teacher import Teacher

__all__ = [
    "INTERVALS", "RATIO_SCHEDULES", "STRATEGIES", "Selection", "Strategy", "Teacher",
    "interval_at", "l1_residual", "make_strategy", "ntk_product", "ntk_score", "options_from_text",
    "predict", "ratio_at", "register",
]
