"""Clock-robust time for the attention recipes: each run's counted work, at prices fitted to every run of
its case.

Every run counts its work (nteach.attention.loop.new_work): optimizer steps, units trained on with a
backward pass and units forwarded without grad (scoring passes, Selective Backprop's filter), where a unit
is a token for text (padding included) and an image for the ViT; at each evaluation it records the work
and the seconds it has trained so far. Between two evaluations a run trained one segment: s seconds for
n steps, t units trained and f forwarded. One fit over every segment of every teacher and seed of a case
gives three non-negative prices,

    s ~ n * loop + t * trained + f * forwarded,

with a robust loss on each segment's relative error, so that a segment the machine slowed counts little.
A run's clock-robust time is its work at those prices: a slow moment during one run moves every
teacher's prices a little, and its own time no more than anyone's. The prices are the real steps' (the
Trainer's own work included) at the sizes each teacher really trains and scores, which a probe timed
before the runs is not: on one case its training step cost 1.2x what the same step cost inside the runs.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares, nnls

PARTS = ("loop", "trained", "forwarded")
SCALE = 0.05  # relative errors beyond about 5 % weigh less and less (soft L1)
TINY = 1e-7  # seconds: a price below it is 0


def _columns(unit: str) -> tuple[str, str, str]:
    suffix = "_tokens" if unit == "token" else ""
    return "steps", f"trained{suffix}", f"forwarded{suffix}"


def segments(runs: list[dict], unit: str) -> tuple[np.ndarray, np.ndarray]:
    """(work of each segment: steps, units trained, units forwarded; its seconds), over every run."""
    columns, rows, seconds = _columns(unit), [], []
    for run in runs:
        before, elapsed = dict.fromkeys(columns, 0), 0.0
        for record in run["history"]:
            work = record["work"]
            row = [work[c] - before[c] for c in columns]
            if row[0] > 0 and record["seconds"] > elapsed:
                rows.append(row)
                seconds.append(record["seconds"] - elapsed)
            before, elapsed = {c: work[c] for c in columns}, record["seconds"]
    return np.array(rows, dtype=float).reshape(-1, 3), np.array(seconds, dtype=float)


def fit_prices(runs: list[dict], unit: str) -> dict:
    """Seconds per step, per unit trained and per unit forwarded that best explain every run's segments;
    with how many segments there were and the median of their relative errors."""
    rows, seconds = segments(runs, unit)
    prices = np.zeros(3)
    used = np.flatnonzero(rows.any(axis=0))  # work no run did has no price (0)
    if len(seconds):
        weighted = rows[:, used] / seconds[:, None]  # relative errors: every segment counts alike
        start = nnls(weighted, np.ones(len(seconds)))[0]
        fit = least_squares(lambda p: weighted @ p - 1, start, bounds=(0, np.inf), loss="soft_l1",
                            f_scale=SCALE, x_scale="jac")
        prices[used] = np.where(fit.x < TINY, 0.0, fit.x)  # the bounded solver stops just inside 0
    errors = np.abs(rows @ prices / seconds - 1) if len(seconds) else np.zeros(0)
    return {"unit": unit, **{part: float(p) for part, p in zip(PARTS, prices)}, "segments": len(seconds),
            "median_error": float(np.median(errors)) if len(errors) else 0.0}


def robust_seconds(work: dict, prices: dict) -> float:
    """The clock-robust training time of ``work`` at ``prices``."""
    steps, trained, forwarded = (work.get(c, 0) for c in _columns(prices["unit"]))
    return steps * prices["loop"] + trained * prices["trained"] + forwarded * prices["forwarded"]


def price_case(case: dict) -> None:
    """Fit the case's prices to its runs (into ``case["costs"]["fitted"]``) and give every record of
    every run its clock-robust seconds at them."""
    runs = [run for teacher_runs in case["runs"].values() for run in teacher_runs]
    prices = fit_prices(runs, case["costs"]["unit"])
    case["costs"]["fitted"] = prices
    for run in runs:
        for record in run["history"]:
            record["robust_seconds"] = robust_seconds(record["work"], prices)


def price_results(results: dict) -> dict:
    """Every case of an attention results file priced by its own runs (files written before the prices
    were fitted carry a probe's prices instead: the same runs, read under today's clock)."""
    for case in results["cases"].values():
        price_case(case)
    return results
