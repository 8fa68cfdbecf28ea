"""What the measurements show about why `paced_sweep` misses a target (docs/benchmarks.md, under the
targets): every figure from the same merged suites as the rest of the page.

- INR: a time to Q_ref is steps times the cost of a step, so our time over the best peer's splits into
  our steps over theirs and our cost a step over theirs (both seed-paired, to the same target).
- Attention LM: whether any teacher learnt more per example trained than full did, and how many examples
  full's own curve needs to reach the target, against how many the target leaves a teacher.
"""

from __future__ import annotations

import statistics

from nteach.bench import attention_report
from nteach.bench.targets import quality_at, time_to_target

OURS = "paced_sweep"  # our own teacher, the one the targets are for


def inr_breakdown(summaries: dict[str, dict]) -> dict[str, tuple[str, float, float]]:
    """Per held-out case where we reached Q_ref: (best peer, our steps over its steps, our cost a step
    over its cost a step); the two multiply to our clock-robust time over its time."""
    out = {}
    for name, summary in summaries.items():
        if OURS not in summary["teachers"] or not summary["targets"]:
            continue
        entry = summary["teachers"][OURS]["targets"][f"{summary['targets'][-1]:g}"]
        robust, steps = entry["robust_seconds"]["ratio"], entry["step"]["ratio"]
        if robust is not None and steps:
            out[name] = (entry["robust_seconds"]["peer"], steps, robust / steps)
    return out


def examples_to(history: list[dict], target: float, metric: str) -> float | None:
    """Examples trained when ``history`` first reached ``target`` (linear between evaluations)."""
    return time_to_target(history, target, metric, attention_report.higher_is_better(metric), "examples")


def gaps_to_full(case: dict) -> dict[str, float]:
    """Per teacher, how far its metric sat from full's curve at equal examples trained (full's curve linear
    between its evaluations, seed by seed; positive: worse than full), mean over its evaluations. Left out:
    evaluations before full's first one after training (a line from the untrained model to it lies far
    above the real curve), those where the run had trained exactly what full had (the same value at the
    same examples), and each run's last one, where its learning rate had decayed to zero and full's, at the
    same examples, had not (a comparison of schedules, not of the examples chosen)."""
    metric = case["metric"]
    worse = -1.0 if attention_report.higher_is_better(metric) else 1.0
    full = {run["seed"]: run["history"] for run in case["runs"]["full"]}
    gaps = {}
    for teacher, runs in case["runs"].items():
        values = []
        for run in runs:
            curve = full.get(run["seed"]) if teacher != "full" else None
            trained = [r["examples"] for r in curve or [] if r["examples"] > 0]
            for record in run["history"][:-1] if trained else []:
                if trained[0] <= record["examples"] <= trained[-1]:
                    theirs = quality_at(curve, record["examples"], metric, clock="examples")
                    if theirs != record[metric]:
                        values.append(worse * (record[metric] - theirs))
        if values:
            gaps[teacher] = statistics.fmean(values)
    return gaps


def lm_shortfall(case: dict, goal: float) -> dict | None:
    """For the LM case: each teacher's gap to full's curve, the examples full's curve needs to reach the
    target and those our best peer needed (means over seeds), and what ``goal`` times the latter leaves."""
    summary = attention_report.summarize_case(case)
    row, metric = summary["teachers"].get(OURS), case["metric"]
    peer = row["peer"] if row else None
    if peer is None:
        return None
    needs = [examples_to(run["history"], summary["targets"][run["seed"]], metric)
             for runs in (case["runs"]["full"], case["runs"][peer]) for run in runs]
    if None in needs:
        return None
    count = len(case["runs"]["full"])
    full, theirs = statistics.fmean(needs[:count]), statistics.fmean(needs[count:])
    return {"gaps": gaps_to_full(case), "full_needs": full, "peer": peer, "peer_needs": theirs,
            "allowed": goal * theirs}


def inr_markdown(summaries: dict[str, dict], goal: float) -> str:
    split = inr_breakdown(summaries)
    if not split:
        return ""
    steps, costs = [v[1] for v in split.values()], [v[2] for v in split.values()]
    fewer = sum(s < 1.0 for s in steps)
    each = "; ".join(f"{name} ({peer}: {s:.2f}x, {c:.2f}x)" for name, (peer, s, c) in split.items())
    return (f"- INR: a time is steps times the cost of a step. At Q_ref `{OURS}` took fewer steps than its "
            f"best peer on {fewer} of {len(split)} cases (median {statistics.median(steps):.2f}x; "
            f"{min(steps):.2f}x to {max(steps):.2f}x), at {statistics.median(costs):.2f}x its cost a step "
            f"(median; {min(costs):.2f}x to {max(costs):.2f}x); {goal:.2f}x the time at the same cost a step "
            f"asks for {goal:.2f}x the steps. By case (best peer: steps, cost a step): {each}.\n")


def lm_markdown(case: dict, goal: float) -> str:
    found = lm_shortfall(case, goal)
    if found is None or not found["gaps"]:
        return ""
    gaps = found["gaps"]
    best, worst = min(gaps, key=gaps.get), max(gaps, key=gaps.get)
    lead = ("no teacher learnt more per example trained than full did, by more than the tolerance"
            if gaps[best] > -case["tolerance"] else f"`{best}` learnt more per example trained than full")
    return (f"- Attention LM: {lead}. At equal "
            f"examples, before their last epoch, their {case['metric']} sat from {gaps[best]:+.3f} "
            f"(`{best}`) to {gaps[worst]:+.3f} (`{worst}`) of full's curve (linear between full's "
            f"evaluations, seed by seed; negative: better than full). Full's curve reaches the target "
            f"after {found['full_needs']:.0f} examples (mean over seeds), `{found['peer']}` after "
            f"{found['peer_needs']:.0f}; {goal:.2f}x of its time leaves about {found['allowed']:.0f} "
            f"examples, {1 - found['allowed'] / found['full_needs']:.0%} fewer than full's curve needs.\n")


def shortfalls_markdown(heldout: dict[str, dict] | None, attention: dict | None, inr_goal: float,
                        lm_goal: float) -> str:
    """The "why" list under the targets table, from the held-out INR summaries and attention suite."""
    lines = [inr_markdown(heldout, inr_goal)] if heldout else []
    lines.append(f"- Per iteration: on the dev cases only a fresh error-driven pass over the pool before a "
                 f"step closed more of the gap to NINT than `{OURS}` does, and on a CPU that pass costs more "
                 f"than it saves (docs/experiments.md).\n")
    for case in (attention or {}).get("cases", {}).values():
        if case["recipe"] == "lm" and "full" in case["runs"]:
            lines.append(lm_markdown(case, lm_goal))
    text = "".join(lines)
    return f"\nWhat the measurements show about why:\n\n{text}" if text else ""
