"""What a suite's runs say, per case: targets from the runs, every teacher's times to them, and ratios to
its best peer, in clock-robust seconds, raw seconds and steps."""

from __future__ import annotations

import statistics

from nteach.bench.targets import (
    derive_targets,
    quality_at,
    reference_quality,
    start_quality,
    tail_gain,
    time_to_target,
)

CLOCKS = ("robust_seconds", "seconds", "step")  # clock-robust, raw, steps
FRACTIONS = (0.25, 0.5, 1.0)  # quality at these shares of the reference's budget


def ratio_to(mine: list[float | None], theirs: list[float | None]) -> dict:
    """Seed-paired: mean of mine / mean of theirs, and the min and max of the seed ratios; ``reached``
    counts my seeds that reached the target. ``ratio`` is None where I missed it on some seed."""
    pairs = [(m, t) for m, t in zip(mine, theirs) if t is not None]
    reached = sum(m is not None for m in mine)
    if not pairs or any(m is None for m, _ in pairs) or reached < len(mine):
        return {"ratio": None, "reached": reached, "seeds": len(mine)}
    total = sum(t for _, t in pairs)
    seed_ratios = [m / t for m, t in pairs if t > 0]
    return {"ratio": sum(m for m, _ in pairs) / total if total > 0 else None, "reached": reached,
            "seeds": len(mine), "low": min(seed_ratios, default=None), "high": max(seed_ratios, default=None)}


def by_seed(runs: dict[str, list[dict]], values: dict[str, list], teacher: str, seeds: list[int]) -> list:
    """``teacher``'s values (one per run) in the order of ``seeds``; None where it has no such seed."""
    mine = dict(zip((r["seed"] for r in runs[teacher]), values[teacher]))
    return [mine.get(s) for s in seeds]


def best_peer(times: dict[str, list], runs: dict[str, list[dict]], teacher: str,
              peers: list[str]) -> str | None:
    """The peer fastest on average over the seeds it shares with ``teacher``, of those that reached the
    target on every one of them."""
    seeds = [r["seed"] for r in runs[teacher]]
    means = {}
    for peer in peers:
        peer_seeds = {r["seed"] for r in runs[peer]}
        theirs = by_seed(runs, times, peer, [s for s in seeds if s in peer_seeds])
        if theirs and None not in theirs:
            means[peer] = statistics.fmean(theirs)
    return min(means, key=means.get) if means else None


def probe_over_robust(record: dict, parts: list[dict], teacher: str) -> float:
    """What the probe measured ``teacher``'s real steps to cost, over what the cost model prices them at,
    for the work of ``record`` (unit costs averaged over the parts). Above 1: the model prices the teacher
    low (in-step work it does not count). Parts that ran without ``teacher`` (a confirming part runs
    the screened teachers alone) did not time its steps and are left out."""
    parts = [costs for costs in parts if teacher in costs["measured_step"]]

    def mean(read) -> float:
        return statistics.fmean(read(costs) for costs in parts)
    work = record["work"]
    counted = sum(work[k] * mean(lambda c, k=k: c[k]) for k in ("trained", "forwarded", "ntk"))
    measured = work["steps"] * mean(lambda c: c["measured_step"][teacher]) + counted
    modelled = work["steps"] * mean(lambda c: c["step"][teacher]) + counted
    return measured / modelled if modelled > 0 else 1.0


def summarize_case(case: dict) -> dict:
    """Targets, times and ratios of one case (a merged results case)."""
    metric, runs = case["metric"], case["runs"]
    reference = case["reference"] if case["reference"] in runs else next(iter(runs))
    references = [r["history"] for r in runs[reference]]
    q_ref = reference_quality(references, metric)
    start = start_quality([r["history"] for rs in runs.values() for r in rs], metric)
    targets = case["targets"] or derive_targets(q_ref, metric, start)
    budget = statistics.median(h[-1]["robust_seconds"] for h in references)
    teachers = list(runs)
    controls = [t for t in case.get("controls", []) if t in runs]
    summary = {"reference": reference, "q_ref": q_ref, "start": start, "targets": targets,
               "flat_gain": statistics.median(tail_gain(h, metric) for h in references),
               "budget": budget, "teachers": {}}
    for teacher in teachers:
        histories = [r["history"] for r in runs[teacher]]
        summary["teachers"][teacher] = {
            "seeds": len(histories),
            "quality_at": [statistics.fmean(quality_at(h, f * budget, metric, clock="robust_seconds")
                                            for h in histories) for f in FRACTIONS],
            "raw_over_robust": statistics.median(r["train_seconds"] / r["history"][-1]["robust_seconds"]
                                                 for r in runs[teacher]),
            "probe_over_robust": statistics.median(probe_over_robust(r["history"][-1], case["costs"], teacher)
                                                   for r in runs[teacher]),
            "targets": {}}
    for target in targets:
        key = f"{target:g}"
        times = {clock: {t: [time_to_target(r["history"], target, metric, clock=clock) for r in runs[t]]
                         for t in teachers} for clock in CLOCKS}
        for teacher in teachers:
            # a control is measured against the reference alone; no one is measured against a control
            peers = [reference] if teacher in controls else [t for t in teachers if t not in controls
                                                             and t != teacher]
            seeds = [r["seed"] for r in runs[teacher]]
            entry = {"mean_robust": _mean(times["robust_seconds"][teacher])}
            for clock in CLOCKS:
                peer = best_peer(times["robust_seconds"], runs, teacher, peers)  # chosen on the robust clock
                theirs = by_seed(runs, times[clock], peer, seeds) if peer else [None] * len(seeds)
                entry[clock] = {**ratio_to(times[clock][teacher], theirs), "peer": peer}
            summary["teachers"][teacher]["targets"][key] = entry
    return summary


def _mean(values: list[float | None]) -> float | None:
    return statistics.fmean(values) if values and None not in values else None
