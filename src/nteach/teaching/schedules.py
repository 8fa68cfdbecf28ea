"""Ratio and interval schedules: pure functions of training progress.

Progress is ``step / total``. ``step`` and ``total`` may be counted in
iterations or, for a wall-clock budget, in seconds: the formulas only see
their quotient.
"""

from __future__ import annotations

import math

from nteach.errors import UserError

RATIO_SCHEDULES = ("constant", "linear", "step", "cosine", "reverse-cosine")
INTERVALS = ("dense", "dense2", "incremental", "reverse-incremental", "void")


def _progress(step: float, total: float) -> float:
    if total <= 0:
        raise UserError(f"total must be > 0, got {total}")
    return min(max(step / total, 0.0), 1.0)


def check_ratio(ratio: float) -> float:
    """Return ``ratio`` if it lies in (0, 1], else raise a UserError naming it."""
    if not (0.0 < ratio <= 1.0) or math.isnan(ratio):
        raise UserError(f"ratio must be in (0, 1], got {ratio}")
    return ratio


def ratio_at(schedule: str, step: float, total: float, r0: float) -> float:
    """Fraction of the pool to train on at ``step`` of ``total``, starting from ``r0``."""
    p = _progress(step, total)
    if schedule == "constant":
        return r0
    if schedule == "linear":
        return r0 + (1.0 - r0) * p
    if schedule == "step":  # ten equal stages from r0 up to 1
        return min(r0 + math.floor(p * 10) * (1.0 - r0) / 10, 1.0)
    if schedule == "cosine":  # rises from r0 to 1
        return 1.0 - 0.5 * (1.0 - r0) * (1.0 + math.cos(math.pi * p))
    if schedule == "reverse-cosine":  # falls from r0 to 0.2
        return r0 - 0.5 * (r0 - 0.2) * (1.0 - math.cos(math.pi * p))
    raise UserError(f"unknown ratio schedule {schedule!r}; choose from {', '.join(RATIO_SCHEDULES)}")


_INCREMENTAL_STAGES = ((0.85, 50), (0.70, 40), (0.55, 30), (0.40, 20), (0.25, 10))


def interval_at(interval: str, step: float, total: float) -> int | None:
    """Steps between selection events at ``step`` of ``total``; None means never select."""
    p = _progress(step, total)
    if interval == "dense":
        return 1
    if interval == "dense2":
        return 2
    if interval == "incremental":  # dense first, then ever sparser re-selection
        for start, every in _INCREMENTAL_STAGES:
            if p >= start:
                return every
        return 1
    if interval == "reverse-incremental":  # 90, 80, ..., 10 over the first nine tenths, dense last
        part = min(math.floor(p * 10), 9)
        return 1 if part == 9 else 90 - 10 * part
    if interval == "void":
        return None
    raise UserError(f"unknown interval {interval!r}; choose from {', '.join(INTERVALS)}")


def is_selection_event(interval: str, step: int, last_event: int | None, progress_step: float,
                       total: float) -> bool:
    """Whether ``step`` re-selects: the first step always does, later ones when the interval has elapsed.

    ``progress_step`` / ``total`` place the step in the schedule (iterations or seconds);
    ``step - last_event`` counts iterations since the previous event.
    """
    if last_event is None:
        return True
    every = interval_at(interval, progress_step, total)
    return every is not None and step - last_event >= every
