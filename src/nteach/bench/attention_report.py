"""What an attention suite's runs say (its parts merged): per case, each teacher's time to full's final
validation metric within the tolerance, as ratios to full and to the best peer, on the clock-robust and
the raw clock; and what that says of AtteNT's two claims."""

from __future__ import annotations

import statistics
from pathlib import Path

from nteach.bench.results import describe
from nteach.bench.summary import best_peer, by_seed, ratio_to
from nteach.bench.targets import time_to_target
from nteach.runs import save_figure

CLOCKS = ("robust_seconds", "seconds")
CLAIMS = {  # teacher: (what AtteNT claims it saves, the time saved in the paper in %, the recipe it is for)
    "attent_simple": ("LoRA fine-tuning of pretrained LLMs", 13.0, "lm"),
    "attent_complex": ("a ViT trained over many epochs", 20.58, "vit"),
}
FLAT = {"val_loss": 0.01, "val_accuracy": 0.003}  # full has flattened: last epoch gained < 1 % / 0.3 points


def higher_is_better(metric: str) -> bool:
    return metric.endswith("accuracy")  # the recipes track val_accuracy or val_loss


def target_of(full_history: list[dict], metric: str, tolerance: float) -> float:
    """Full's final metric, less the tolerance for an accuracy, plus it for a loss."""
    return full_history[-1][metric] + (-tolerance if higher_is_better(metric) else tolerance)


def last_epoch_gain(history: list[dict], metric: str) -> float:
    """What the last epoch gained: in points for an accuracy, as a share of the loss for a loss."""
    before, last = history[-2][metric], history[-1][metric]
    return last - before if higher_is_better(metric) else (before - last) / before


def summarize_case(case: dict) -> dict:
    """Targets per seed, and per teacher its times to them and ratios to full and to the best peer."""
    metric, runs, tolerance = case["metric"], case["runs"], case["tolerance"]
    targets = {run["seed"]: target_of(run["history"], metric, tolerance) for run in runs["full"]}
    full_runs = runs["full"]
    summary = {"targets": targets,
               "gain": statistics.median(last_epoch_gain(r["history"], metric) for r in full_runs),
               "se": statistics.fmean(r["history"][-1].get(f"{metric}_se", float("nan")) for r in full_runs),
               "teachers": {}}

    def reached(run: dict, clock: str) -> float | None:
        if run["seed"] not in targets:
            return None
        return time_to_target(run["history"], targets[run["seed"]], metric, higher_is_better(metric), clock)

    times = {clock: {teacher: [reached(r, clock) for r in teacher_runs]
                     for teacher, teacher_runs in runs.items()} for clock in CLOCKS}
    full_examples = statistics.fmean(r["examples"] for r in full_runs)
    for teacher, teacher_runs in runs.items():
        seeds = [r["seed"] for r in teacher_runs]
        peer = best_peer(times["robust_seconds"], runs, teacher, [t for t in runs if t != teacher])
        row = {"seeds": len(seeds), "reached": sum(t is not None for t in times["seconds"][teacher]),
               "final": [r["history"][-1][metric] for r in teacher_runs],
               "examples": statistics.fmean(r["examples"] for r in teacher_runs) / full_examples,
               "peer": peer}
        for clock in CLOCKS:
            mine = times[clock][teacher]
            row[clock] = {"full": ratio_to(mine, by_seed(runs, times[clock], "full", seeds)),
                          "peer": ratio_to(mine, by_seed(runs, times[clock], peer, seeds)) if peer else None,
                          "mean": statistics.fmean(mine) if mine and None not in mine else None}
        summary["teachers"][teacher] = row
    return summary


def _ratio(entry: dict | None) -> str:
    if entry is None:
        return "–"
    if entry["ratio"] is None:
        return f"reached {entry['reached']}/{entry['seeds']}" if entry["reached"] < entry["seeds"] else "–"
    spread = f" ({entry['low']:.2f}–{entry['high']:.2f})" if entry["seeds"] > 1 and entry["low"] else ""
    return f"{entry['ratio']:.2f}{spread}"


def _mean_spread(values: list[float], digits: int) -> str:
    spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.{digits}f}{spread}"


def _prices(costs: dict) -> str:
    """The fitted prices and how well they explain the runs, then the probe's (a check)."""
    fitted, unit = costs["fitted"], f"{'an' if costs['unit'][0] in 'aeiou' else 'a'} {costs['unit']}"
    return (f"{1e3 * fitted['trained']:.3g} ms {unit} trained, {1e3 * fitted['forwarded']:.3g} ms {unit} "
            f"scored, {1e3 * fitted['loop']:.3g} ms a step besides (fitted to {fitted['segments']} stretches "
            f"of the runs, median error {100 * fitted['median_error']:.1f} %; the probe: "
            f"{1e3 * costs['trained']:.3g} ms trained, {1e3 * costs['forwarded']:.3g} ms scored)")


def case_markdown(name: str, case: dict, summary: dict) -> str:
    metric, digits = case["metric"], 4
    settings = ", ".join(f"{k}={v}" for k, v in case["settings"].items())
    gain = summary["gain"]
    flat = gain < FLAT[metric]
    gain_text = f"{100 * gain:+.2f} %" if metric == "val_loss" else f"{100 * gain:+.2f} points"
    prices = " / ".join(_prices(c) for c in case["costs"])
    lines = [f"\n### {name}\n\n",
             f"Recipe `{case['recipe']}` ({settings}). Target: full's final {metric} "
             f"{'less' if higher_is_better(metric) else 'plus'} {case['tolerance']:g}, seed by seed "
             f"(one standard error of the validation set: {summary['se']:.4f}). Full's last epoch gained "
             f"{gain_text} ({'flat' if flat else 'not flat yet'}). Prices (one per part): {prices}.\n\n",
             "| teacher | seeds | × full, robust | × full, raw | × best peer, robust | × best peer, raw "
             f"| best peer | examples × full | final {metric} | robust s to target |\n",
             "|---|---|---|---|---|---|---|---|---|---|\n"]
    for teacher, row in summary["teachers"].items():
        robust, raw = row["robust_seconds"], row["seconds"]
        seconds = "–" if robust["mean"] is None else f"{robust['mean']:.1f}"
        cells = [teacher, str(row["seeds"]), _ratio(robust["full"]), _ratio(raw["full"]),
                 _ratio(robust["peer"]), _ratio(raw["peer"]), row["peer"] or "–", f"{row['examples']:.2f}",
                 _mean_spread(row["final"], digits), seconds]
        lines.append("| " + " | ".join(cells) + " |\n")
    return "".join(lines)


def claims(cases: dict[str, dict], summaries: dict[str, dict]) -> str:
    """Each AtteNT claim against what its own kind of case measured here."""
    lines = []
    for teacher, (what, paper, recipe) in CLAIMS.items():
        for name, case in cases.items():
            row = summaries[name]["teachers"].get(teacher)
            if case["recipe"] != recipe or row is None:
                continue
            robust, raw = row["robust_seconds"]["full"], row["seconds"]["full"]
            if robust["ratio"] is None:
                measured = f"reached full's target on {robust['reached']} of {robust['seeds']} seeds"
            else:
                saved = 100 * (1 - robust["ratio"])
                measured = (f"{robust['ratio']:.2f}x full's time to its target, {abs(saved):.1f} % "
                            f"{'less' if saved >= 0 else 'more'} (clock-robust; {robust['low']:.2f}x to "
                            f"{robust['high']:.2f}x over the seeds; {raw['ratio']:.2f}x on the raw clock)")
            versus = row["robust_seconds"]["peer"]
            if versus is not None and versus["ratio"] is not None:
                measured += f"; {versus['ratio']:.2f}x the time of the fastest other teacher, `{row['peer']}`"
            lines.append(f"- `{teacher}` on {what}: the paper reports {paper:g} % less time; `{name}` "
                         f"measured {measured}.\n")
    return "" if not lines else "\nAtteNT's claims, measured:\n\n" + "".join(lines)


def attention_markdown(merged: dict) -> str:
    """One attention suite's section: its claims, then one table per case."""
    summaries = {name: summarize_case(case) for name, case in merged["cases"].items()}
    text = [f"\n## Suite `{merged['suite']}`\n\n", f"{describe(merged)}.\n",
            claims(merged["cases"], summaries)]
    text += [case_markdown(name, merged["cases"][name], summary) for name, summary in summaries.items()]
    return "".join(text)


def plot_case(name: str, case: dict, path: Path) -> None:
    """The metric against clock-robust seconds, one line per teacher, first seed; full's target dotted."""
    from nteach.viz import quality_vs_time

    first = {teacher: runs[0] for teacher, runs in case["runs"].items()}
    target = target_of(first["full"]["history"], case["metric"], case["tolerance"])
    figure = quality_vs_time({teacher: run["history"] for teacher, run in first.items()},
                             metric=case["metric"], targets=(target,), clock="robust_seconds",
                             title=f"{name}, seed {first['full']['seed']}: target {target:.4g} (dotted)")
    figure.axes[0].set_ylabel(case["metric"].replace("_", " "))
    save_figure(path, figure)
