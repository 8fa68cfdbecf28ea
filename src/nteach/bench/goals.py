"""Where our own teacher stands against the targets set for it, from the same merged suites as the rest
of docs/benchmarks.md.

The targets, for a teacher of our own that wins where users train:
- INR, held-out suite: the median over cases of its clock-robust time to Q_ref over the best peer's at
  most 0.80, with the bootstrap 95 % upper bound of that median (cases resampled) below 1;
- at no target of any held-out case more than 1.05x the time of the faster of uniform and sweep;
- per iteration, dev suite: at least 0.75 of the gap in steps to Q_ref between uniform and NINT closed,
  at a modelled cost per step at most 1.05x uniform's;
- attention, held-out suite: on the LM case at most 0.85x the best peer's time, reaching the target on
  every seed; on the ViT at most 0.90x InfoBatch's.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from nteach.bench import attention_report
from nteach.bench.shortfalls import OURS, shortfalls_markdown
from nteach.bench.summary import summarize_case
from nteach.bench.targets import time_to_target

FREE = ("uniform", "sweep")  # the peers that cost nothing to teach
HEADLINE_GOAL, UPPER_GOAL, FREE_GOAL = 0.80, 1.0, 1.05
GAP_GOAL, STEP_COST_GOAL = 0.75, 1.05
LM_GOAL, VIT_GOAL = 0.85, 0.90


def bootstrap_upper(values: list[float], level: float = 0.95, draws: int = 10_000, seed: int = 0) -> float:
    """The upper end of the central ``level`` interval of the median over ``values``, resampled with
    replacement ``draws`` times (its own generator: no global random state is touched)."""
    medians = np.median(np.random.default_rng(seed).choice(np.asarray(values, dtype=float),
                                                           size=(draws, len(values))), axis=1)
    return float(np.quantile(medians, 0.5 + level / 2, method="higher"))  # no interpolation: inf stays inf


def headline_ratios(summaries: dict[str, dict]) -> dict[str, float]:
    """Per case, our time to Q_ref over the best peer's (inf where we missed it on some seed)."""
    ratios = {}
    for name, summary in summaries.items():
        if OURS in summary["teachers"] and summary["targets"]:
            entry = summary["teachers"][OURS]["targets"][f"{summary['targets'][-1]:g}"]["robust_seconds"]
            ratios[name] = math.inf if entry["ratio"] is None else entry["ratio"]
    return ratios


def worst_against_free(summaries: dict[str, dict]) -> tuple[float, str, str] | None:
    """(ratio, case, target): our largest mean time over the faster free peer's, at any target."""
    worst = None
    for name, summary in summaries.items():
        rows = summary["teachers"]
        if OURS not in rows:
            continue
        for key, entry in rows[OURS]["targets"].items():
            free = [rows[t]["targets"][key]["mean_robust"] for t in FREE if t in rows]
            free = [t for t in free if t is not None]
            if not free:
                continue
            mine = entry["mean_robust"]
            ratio = math.inf if mine is None else mine / min(free)
            if worst is None or ratio > worst[0]:
                worst = (ratio, name, key)
    return worst


def mean_steps(runs: list[dict], target: float, metric: str) -> float:
    """Steps to ``target``, mean over the runs (inf if some run missed it)."""
    steps = [time_to_target(r["history"], target, metric, clock="step") for r in runs]
    return math.inf if None in steps else statistics.fmean(steps)


def per_iteration(cases: dict[str, dict], summaries: dict[str, dict]) -> dict[str, tuple]:
    """Per case with uniform, NINT and ours: (the share of uniform's lead in steps to Q_ref over NINT's that
    we close, None where NINT is not ahead or a teacher missed; our modelled cost a step over uniform's)."""
    out = {}
    for name, case in cases.items():
        runs = case["runs"]
        if not {OURS, "uniform", "nint"} <= set(runs) or not summaries[name]["targets"]:
            continue
        target = summaries[name]["targets"][-1]
        uniform, nint, ours = (mean_steps(runs[t], target, case["metric"]) for t in ("uniform", "nint", OURS))
        finite = all(math.isfinite(v) for v in (uniform, nint, ours))
        closed = (uniform - ours) / (uniform - nint) if finite and uniform > nint else None
        cost = {t: statistics.fmean(r["history"][-1]["robust_seconds"] / r["history"][-1]["work"]["steps"]
                                    for r in runs[t]) for t in (OURS, "uniform")}
        out[name] = (closed, cost[OURS] / cost["uniform"])
    return out


def closest_misses(case: dict, summary: dict, teacher: str) -> list[float]:
    """Per seed on which ``teacher`` never reached the target, how far its best evaluation stayed from it."""
    metric = case["metric"]
    sign = -1.0 if attention_report.higher_is_better(metric) else 1.0
    gaps = []
    for run in case["runs"][teacher]:
        target = summary["targets"].get(run["seed"])
        best = min(sign * record[metric] for record in run["history"])
        if target is not None and best > sign * target:
            gaps.append(best - sign * target)
    return gaps


def attention_ratios(merged: dict) -> dict[str, tuple[float, int, list[float]]]:
    """Per held-out recipe ("lm", "vit"): (our time over the best peer's, on the LM, or over InfoBatch's,
    on the ViT, inf where we missed the target on some seed; our seeds; by how much we missed it on each
    seed we did)."""
    out = {}
    for case in merged["cases"].values():
        summary = attention_report.summarize_case(case)
        row = summary["teachers"].get(OURS)
        if row is None:
            continue
        misses = closest_misses(case, summary, OURS)
        if case["recipe"] == "lm" and row["robust_seconds"]["peer"] is not None:
            ratio = row["robust_seconds"]["peer"]["ratio"]
            out["lm"] = (math.inf if ratio is None else ratio, row["seeds"], misses)
        elif case["recipe"] == "vit" and "infobatch" in summary["teachers"]:
            mine = row["robust_seconds"]["mean"]
            theirs = summary["teachers"]["infobatch"]["robust_seconds"]["mean"]
            out["vit"] = (math.inf if mine is None or theirs is None else mine / theirs, row["seeds"], misses)
    return out


def _x(value: float) -> str:
    return f"{value:.2f}x" if math.isfinite(value) else "missed on some seed"


def _met(ok: bool) -> str:
    return "yes" if ok else "no"


def inr_rows(summaries: dict[str, dict]) -> list[tuple]:
    """The held-out INR targets: (what, goal, measured, met) rows."""
    rows = []
    ratios = headline_ratios(summaries)
    if ratios:
        median, upper = statistics.median(ratios.values()), bootstrap_upper(list(ratios.values()))
        spread = f"{_x(min(ratios.values()))} to {_x(max(ratios.values()))}"
        rows.append(("INR held-out: time to Q_ref over the best peer's, median over cases",
                     f"<= {HEADLINE_GOAL:.2f}x", f"{_x(median)} over {len(ratios)} cases ({spread})",
                     median <= HEADLINE_GOAL))
        rows.append(("the same median's bootstrap 95 % upper bound", f"< {UPPER_GOAL:.2f}x", _x(upper),
                     upper < UPPER_GOAL))
    worst = worst_against_free(summaries)
    if worst:
        rows.append(("INR held-out: largest time over the faster of uniform and sweep, any target",
                     f"<= {FREE_GOAL:.2f}x", f"{_x(worst[0])} ({worst[1]}, target {worst[2]})",
                     worst[0] <= FREE_GOAL))
    return rows


def dev_rows(cases: dict[str, dict]) -> tuple[list[tuple], str]:
    """The per-iteration targets on the dev suite: rows, and a line with each case's figures."""
    steps = per_iteration(cases, {name: summarize_case(case) for name, case in cases.items()})
    if not steps:
        return [], ""
    rows = []
    closed = [v[0] for v in steps.values() if v[0] is not None]
    if closed:
        median = statistics.median(closed)
        rows.append(("Dev, per iteration: share of uniform's lead over NINT in steps to Q_ref closed, median "
                     "over the cases where NINT leads", f">= {GAP_GOAL:.2f}",
                     f"{median:.2f} over {len(closed)} cases ({min(closed):.2f} to {max(closed):.2f})",
                     median >= GAP_GOAL))
    cost = max(v[1] for v in steps.values())
    rows.append(("Dev: modelled cost a step over uniform's, largest over cases", f"<= {STEP_COST_GOAL:.2f}x",
                 f"{cost:.3f}x", cost <= STEP_COST_GOAL))
    each = "; ".join(f"{name} {'–' if share is None else f'{share:.2f}'}, {cost:.3f}x"
                     for name, (share, cost) in steps.items())
    return rows, ("\nPer iteration, by dev case (the share of the gap closed, – where NINT does not lead or "
                  f"a teacher missed Q_ref; the cost a step over uniform's): {each}.\n")


def attention_rows(merged: dict) -> list[tuple]:
    """The held-out attention targets: (what, goal, measured, met) rows; a miss says by how much."""
    rows = []
    for recipe, (ratio, seeds, misses) in sorted(attention_ratios(merged).items()):
        goal, what = ((LM_GOAL, "LM fine-tuning: time over the best peer's, every seed reaching")
                      if recipe == "lm" else (VIT_GOAL, "ViT: time over InfoBatch's"))
        measured = _x(ratio)
        if misses:
            closest = " and ".join(f"{gap:.3f}" for gap in sorted(misses))
            measured = (f"reached on {seeds - len(misses)} of {seeds} seeds; on the others its best stayed "
                        f"{closest} short of the target")
        met = ratio <= goal and not misses
        rows.append((f"Attention held-out, {what}", f"<= {goal:.2f}x", measured, met))
    return rows


def goals_markdown(suites: dict[str, dict]) -> str:
    """The section: one row per target, from the suites present (by name: heldout, dev, attention-heldout)."""
    rows, note, heldout = [], "", None
    if "heldout" in suites:
        heldout = {name: summarize_case(case) for name, case in suites["heldout"]["cases"].items()}
        rows += inr_rows(heldout)
    if "dev" in suites:
        dev, note = dev_rows(suites["dev"]["cases"])
        rows += dev
    if "attention-heldout" in suites:
        rows += attention_rows(suites["attention-heldout"])
    if not rows:
        return ""
    lines = [f"\n## `{OURS}` against its targets\n\n",
             "Our own teacher (the default of `nteach fit`) against the targets set for it; every figure "
             "is computed from the suites below.\n\n| target | goal | measured | met |\n|---|---|---|---|\n"]
    lines += [f"| {what} | {goal} | {measured} | {_met(ok)} |\n" for what, goal, measured, ok in rows]
    why = shortfalls_markdown(heldout, suites.get("attention-heldout"), HEADLINE_GOAL, LM_GOAL)
    return "".join(lines) + note + why
