"""Which teachers a held-out suite's confirming seeds run: a suite runs in parts on a small machine,
every teacher on the first seeds (the screen), then the rest of the seeds with the teachers that could
still matter (the confirmation)."""

from __future__ import annotations

from nteach.bench.goals import FREE
from nteach.bench.summary import summarize_case

SCREEN_WITHIN = 2.0  # kept: within this many times the best peer's clock-robust time at some target


def confirming_teachers(case: dict) -> list[str]:
    """The teachers of a screened case (a merged results case) to run on the remaining seeds: those
    within SCREEN_WITHIN of their best peer at some target, the reference, the controls, and the free
    peers every teacher is weighed against (uniform and sweep), in the order they ran."""
    summary = summarize_case(case)
    always = {case["reference"], *case.get("controls", []), *FREE}
    kept = []
    for teacher, row in summary["teachers"].items():
        ratios = [entry["robust_seconds"]["ratio"] for entry in row["targets"].values()]
        if teacher in always or any(r is not None and r <= SCREEN_WITHIN for r in ratios):
            kept.append(teacher)
    return kept
