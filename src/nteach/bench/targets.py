"""Targets from the runs, not from fixed numbers.

The headline target is the reference quality Q_ref: the reference teacher's
quality over the last tenth of its budget, on its worst seed, that is, what
the baseline gets every time (the median over seeds would leave the reference
itself short of it on about half of them, and its ratios undefined). Lower
targets sit a fixed distance below it (3 and 1 dB for PSNR and SI-SNR, 0.03 and
0.01 for IoU). A target that some run already meets at step 0 measures nothing
and is dropped. This module also reads curves: the time a run first reached a
quality, and its quality at a given time.
"""

from __future__ import annotations

import math
import statistics

BELOW_REFERENCE = {"psnr": (3.0, 1.0), "si_snr": (3.0, 1.0), "iou": (0.03, 0.01)}
DIGITS = {"psnr": 2, "si_snr": 2, "iou": 3}  # targets are rounded down to this many decimals
TAIL = 0.1  # Q_ref reads the last tenth of the reference's budget
FLAT_TAIL = 0.2  # a curve has flattened if it gains less than FLAT_GAIN over its last fifth
FLAT_GAIN = {"psnr": 0.3, "si_snr": 0.3, "iou": 0.003}


def time_to_target(history: list[dict], target: float, metric: str = "psnr",
                   higher_is_better: bool = True, clock: str = "seconds") -> float | None:
    """Training seconds at which ``target`` was first reached (None if never): linearly interpolated
    between the evaluation that first reached it and the one before, so that a time is not rounded up
    to the next evaluation (at 50 evaluations a run, that rounding alone moved ratios by up to 30 %).
    ``clock="step"``: the same in training steps, which the machine's timing noise does not move."""
    sign = 1.0 if higher_is_better else -1.0  # a loss reaches its target from above
    for k, record in enumerate(history):
        if sign * record[metric] >= sign * target:
            before = history[k - 1] if k else None
            if before is None or not math.isfinite(before[metric]):  # SI-SNR of a silent start is -inf
                return record[clock]
            share = (target - before[metric]) / (record[metric] - before[metric])
            return before[clock] + share * (record[clock] - before[clock])
    return None


def quality_at(history: list[dict], when: float, metric: str, clock: str = "seconds") -> float:
    """The quality at ``when`` (in ``clock`` units), linearly interpolated between evaluations; the last
    evaluation's beyond the end of the run."""
    for before, record in zip(history, history[1:]):
        if record[clock] >= when:
            if not (math.isfinite(before[metric]) and record[clock] > before[clock]):
                return record[metric]
            share = (when - before[clock]) / (record[clock] - before[clock])
            return before[metric] + max(share, 0.0) * (record[metric] - before[metric])
    return history[-1][metric]


def tail_quality(history: list[dict], metric: str, tail: float = TAIL) -> float:
    """The median quality of the evaluations in the last ``tail`` of a run's steps (at least the last one)."""
    last = history[-1]["step"]
    values = [r[metric] for r in history if r["step"] >= (1.0 - tail) * last]
    return statistics.median(values or [history[-1][metric]])


def reference_quality(histories: list[list[dict]], metric: str) -> float:
    """Q_ref: the lowest over seeds of the reference runs' tail quality."""
    return min(tail_quality(h, metric) for h in histories)


def tail_gain(history: list[dict], metric: str, tail: float = FLAT_TAIL) -> float:
    """What a run gained over its last ``tail`` of steps (interpolated where no evaluation falls on it)."""
    last = history[-1]["step"]
    return history[-1][metric] - quality_at(history, (1.0 - tail) * last, metric, clock="step")


def derive_targets(q_ref: float, metric: str, start: float) -> list[float]:
    """[Q_ref - 3 dB, Q_ref - 1 dB, Q_ref] (or the metric's equivalent), rounded down (so that the
    reference still reaches Q_ref), keeping only the targets above ``start`` (the best quality any run
    had at step 0)."""
    if not math.isfinite(q_ref):
        return []
    scale = 10 ** DIGITS.get(metric, 3)
    below = BELOW_REFERENCE.get(metric, (3.0, 1.0))
    targets = [math.floor((q_ref - d) * scale + 1e-9) / scale for d in (*below, 0.0)]
    return [t for t in targets if t > start]


def start_quality(histories: list[list[dict]], metric: str) -> float:
    """The best quality any run had before its first step."""
    return max(h[0][metric] for h in histories)
