"""Learning-rate schedules for INR fits: a factor of the base rate, a pure function of the budget's progress.

Every teacher in a comparison gets the same schedule, so that a teacher's gain is not a stand-in for a
missing decay: at high fidelity (past 50 dB) a constant rate leaves the fit bouncing on its own noise.
"""

from __future__ import annotations

import math

from nteach.errors import UserError

LR_SCHEDULES = ("constant", "cosine", "exponential")
EXPONENTIAL_FINAL = 0.01  # "exponential" ends at 1 % of the base rate


def check_lr_schedule(schedule: str) -> str:
    if schedule not in LR_SCHEDULES:
        raise UserError(f"unknown lr schedule {schedule!r}; choose from {', '.join(LR_SCHEDULES)}")
    return schedule


def lr_factor(schedule: str, progress: float) -> float:
    """The base rate's multiplier at ``progress`` in [0, 1] of the budget (steps or seconds):
    1 throughout (constant), half a cosine down to 0 (cosine), or 1 % ** progress (exponential)."""
    p = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "exponential":
        return EXPONENTIAL_FINAL ** p
    raise UserError(f"unknown lr schedule {schedule!r}; choose from {', '.join(LR_SCHEDULES)}")
