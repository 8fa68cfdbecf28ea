"""`nteach bench inr`: every teacher on every (signal, model) case of a suite file, several seeds.

A suite is a TOML file (see benchmarks/): top-level defaults (teachers, seeds,
ratio, budget, ...) and one [[case]] table per (signal, model). Any field of
SignalModelConfig may appear at either level; a case's value wins. A
``[variants.NAME]`` table names a teacher with hyperparameters (``teacher =
"paced_sweep"``, ``temperature = 0.0``, ...) and, optionally, case settings
that override the case's for it (``ratio = 0.05``); NAME may then appear in
a teachers list, for ablations and sweeps. ``cases_from = "quick"`` (a suite name or file)
takes another suite's [[case]] tables, not its defaults, so that an ablation or
a control runs exactly the cases of the suite it reads. ``challenger`` names a
teacher to measure against the others, or against ``peers`` only. ``uniform`` names the
teacher the "vs uniform" columns divide by (default: the one called uniform), for suites
whose uniform sampling runs as a variant, at another ratio, say.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, fields
from pathlib import Path

import tomllib
from tqdm.auto import tqdm

from nteach.bench.compare import machine, run_result
from nteach.errors import UserError
from nteach.inr.experiment import SignalModelConfig, build_fit, load_signal
from nteach.runs import new_run_folder, save_figure, write_json, write_text

SUITES = Path(__file__).resolve().parents[3] / "benchmarks"
SUITE_KEYS = {"name", "teachers", "seeds", "targets", "eval_every", "challenger", "peers", "variants", "case",
              "cases_from", "uniform"}
CASE_KEYS = {"name", "targets", "teachers"} | {f.name for f in fields(SignalModelConfig)}
# what a variant may not set: the signal is loaded once per case, and seeds come from the suite
FIXED_PER_CASE = {"image", "signal", "size", "gray", "sample_rate", "clip_seconds", "mono", "resolution",
                  "surface_points", "seed"}
VARIANT_SETTINGS = CASE_KEYS - {"name", "targets", "teachers"} - FIXED_PER_CASE


def suite_path(name_or_path: str, kind: str = "inr") -> Path:
    """A suite file path, or the name of a ``kind`` suite in benchmarks/ ("quick", "full")."""
    path = Path(name_or_path)
    return SUITES / f"{kind}-{name_or_path}.toml" if not path.suffix else path


def read_suite_file(path: Path) -> dict:
    """The TOML of a suite file; a missing or malformed file is a one-line UserError."""
    if not path.is_file():
        raise UserError(f"no suite file at {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: {error}") from None


def load_suite(path: Path) -> dict:
    """Read and check a suite file; every case gets a full config before anything runs."""
    suite = read_suite_file(path)
    if "cases_from" in suite:
        if "case" in suite:
            raise UserError(f"{path}: give [[case]] tables or cases_from, not both")
        suite["case"] = read_suite_file(suite_path(suite["cases_from"])).get("case")
    defaults = {k: v for k, v in suite.items() if k not in SUITE_KEYS}
    unknown = sorted((set(suite) - SUITE_KEYS - CASE_KEYS))
    if unknown:
        raise UserError(f"{path}: unknown setting {unknown[0]!r}")
    if not suite.get("case"):
        raise UserError(f"{path}: no [[case]] tables")
    cases = []
    for number, case in enumerate(suite["case"], 1):
        unknown = sorted(set(case) - CASE_KEYS)
        if unknown:
            raise UserError(f"{path}: case {number} has unknown setting {unknown[0]!r}")
        settings = {**defaults, **{k: v for k, v in case.items() if k not in ("name", "targets", "teachers")}}
        config = SignalModelConfig(**settings)
        name = case.get("name") or f"{Path(config.image).stem}-{config.model}"
        targets = case.get("targets", suite.get("targets"))
        if not targets:
            raise UserError(f"{path}: case {name!r} has no targets")
        teachers = list(case.get("teachers", suite.get("teachers", ["full", "uniform"])))
        cases.append({"name": name, "config": config, "teachers": teachers,
                      "targets": sorted(float(t) for t in targets)})
    listed = {t for case in cases for t in case["teachers"]}
    challenger = suite.get("challenger")
    if challenger is not None and challenger not in listed:
        raise UserError(f"{path}: the challenger {challenger!r} is not one of its teachers")
    peers = suite.get("peers")
    if peers is not None:
        strangers = [p for p in peers if p not in listed or p == challenger]
        if not challenger or strangers:
            raise UserError(f"{path}: peers need a challenger and other teachers of the suite"
                            + (f"; {strangers[0]!r} is not one" if strangers else ""))
    uniform = suite.get("uniform", "uniform")
    if "uniform" in suite and uniform not in listed:
        raise UserError(f"{path}: uniform = {uniform!r} is not one of its teachers")
    variants = suite.get("variants", {})
    for name, table in variants.items():
        if not isinstance(table, dict) or "teacher" not in table:
            raise UserError(f"{path}: variant {name!r} needs a table with a teacher")
        fixed = sorted(set(table) & FIXED_PER_CASE)
        if fixed:
            raise UserError(f"{path}: variant {name!r} sets {fixed[0]!r}, which only a case can set")
    return {"name": suite.get("name", path.stem), "cases": cases, "variants": variants,
            "teachers": list(suite.get("teachers", ["full", "uniform"])),
            "seeds": list(suite.get("seeds", [0])), "eval_every": suite.get("eval_every"),
            "challenger": challenger, "peers": peers, "uniform": uniform}


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(runs: list[dict], targets: list[float], metric: str) -> dict:
    """Mean and spread over seeds of one teacher's runs on one case."""
    out = {"seeds": len(runs), "final": _mean_std([r["final"][metric] for r in runs]),
           "best": _mean_std([r["best"] for r in runs]),
           "ms_per_step": _mean_std([1000 * r["train_seconds"] / r["steps"] for r in runs if r["steps"]]),
           "time_to_target": {}}
    for target in targets:
        times = [r["time_to_target"][f"{target:g}"] for r in runs]
        reached = [t for t in times if t is not None]
        out["time_to_target"][f"{target:g}"] = {"reached": len(reached), "times": times,
                                               "mean_std": _mean_std(reached)}
    return out


def _cell(mean_std: tuple[float | None, float | None], digits: int = 1) -> str:
    mean, std = mean_std
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"


def _speedup(summary: dict, reference: dict | None, key: str) -> str:
    """reference time / this time (> 1: faster than the reference), when both reached the target."""
    if reference is None:
        return "–"
    mine, theirs = summary["time_to_target"][key], reference["time_to_target"][key]
    if mine["reached"] < summary["seeds"] or theirs["reached"] < reference["seeds"]:
        return "–"
    if mine["mean_std"][0] == 0:  # reached before training started: no ratio to speak of
        return "–"
    return f"{theirs['mean_std'][0] / mine['mean_std'][0]:.2f}x"


def case_table(case: dict, summaries: dict[str, dict], metric: str, uniform: str = "uniform") -> str:
    """Markdown for one case: per target, time (mean ± std over seeds) and speed-ups over full and over
    ``uniform``."""
    unit = " dB" if metric == "psnr" else ""
    header = ["teacher"]
    for target in case["targets"]:
        header += [f"s to {target:g}{unit}", "vs full", "vs uniform"]
    header += [f"final {metric}", f"best {metric}", "ms per step"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for teacher, summary in summaries.items():
        row = [teacher]
        for target in case["targets"]:
            entry = summary["time_to_target"][f"{target:g}"]
            time = _cell(entry["mean_std"])
            if entry["reached"] < summary["seeds"]:
                time = f"{time} ({entry['reached']}/{summary['seeds']} reached)"
            row += [time, _speedup(summary, summaries.get("full"), f"{target:g}"),
                    _speedup(summary, summaries.get(uniform), f"{target:g}")]
        digits = 2 if metric == "psnr" else 3
        row += [_cell(summary["final"], digits), _cell(summary["best"], digits),
                _cell(summary["ms_per_step"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def rotated(teachers: list[str], k: int) -> list[str]:
    """The teachers in the order of the k-th seed: each seed starts one teacher further on, so that
    no teacher always runs first or last (a machine's speed drifts during a suite)."""
    k %= len(teachers)
    return teachers[k:] + teachers[:k]


def seed_ratios(times: dict[str, list[float | None]], teacher: str, others: list[str]) -> list[dict]:
    """Seed by seed: ``teacher``'s time to a target / the fastest of ``others`` on that seed (``times``:
    each teacher's times to the target, one per seed, None where missed). A miss counts as inf."""
    ratios = []
    for k, mine in enumerate(times[teacher]):
        theirs = {t: times[t][k] for t in others if t in times and times[t][k] is not None}
        if not theirs or (mine is not None and min(theirs.values()) == 0):
            ratios.append({"ratio": None if mine is None else 0.0, "fastest": None})
            continue
        fastest = min(theirs, key=theirs.get)
        ratios.append({"ratio": float("inf") if mine is None else mine / theirs[fastest], "fastest": fastest})
    return ratios


def best_peer_ratio(times: dict[str, list[float | None]], teacher: str, others: list[str]) -> dict:
    """``teacher``'s mean time to a target / the mean time of the other teacher fastest on average (of
    those that reached it on every seed); inf if ``teacher`` missed it on a seed, None if no other
    reached it every time. Unlike the seed-by-seed ratio, the peer is not chosen anew on each seed, so
    that the clock's noise does not pick the luckiest peer of every seed."""
    means = {t: statistics.fmean(times[t]) for t in others
             if t in times and times[t] and all(x is not None for x in times[t])}
    if not means or min(means.values()) == 0:
        return {"ratio": None, "peer": None}
    peer = min(means, key=means.get)
    mine = times[teacher]
    ratio = statistics.fmean(mine) / means[peer] if all(x is not None for x in mine) else float("inf")
    return {"ratio": ratio, "peer": peer}


def steps_ratio(runs: dict[str, list[dict]], teacher: str, peer: str | None, key: str) -> float | None:
    """``teacher``'s mean steps to the target ``key`` / ``peer``'s: the best peer's ratio without the
    clock. inf if ``teacher`` missed the target on a seed; None if ``peer`` did, or if the runs predate
    steps to targets."""
    if peer is None or any("steps_to_target" not in r for t in (teacher, peer) for r in runs[t]):
        return None
    mine, theirs = ([r["steps_to_target"][key] for r in runs[t]] for t in (teacher, peer))
    if None in theirs or not statistics.fmean(theirs):
        return None
    return float("inf") if None in mine else statistics.fmean(mine) / statistics.fmean(theirs)


def ratio_cell(ratios: list[dict]) -> str:
    """Mean (min–max) of seed ratios, for a table."""
    values = [r["ratio"] for r in ratios if r["ratio"] is not None]
    if not values:
        return "–"
    mean = statistics.fmean(values)
    spread = f" ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else ""
    return f"{mean:.2f}{spread}"


def challenger_report(challenger: str, cases: dict[str, dict], peers: list[str] | None = None,
                      uniform: str = "uniform") -> tuple[dict, str]:
    """``challenger``'s time to each target against the fastest other teacher's (of ``peers``, default
    all the others) and uniform's, seed by seed, per case; the median over cases of the mean ratio at
    each case's middle target, in seconds and, against the same best peer, in steps."""
    table = {}
    lines = [f"\n## `{challenger}` against the fastest other teacher\n\n",
             f"Seed by seed: `{challenger}`'s time to the target / the fastest other teacher's on that seed "
             "(mean, min–max over seeds; a miss counts as inf), and / uniform's. Best peer: its mean time / "
             "the mean time of the other teacher fastest on average. < 1: faster.\n\n",
             "| case | target | × fastest other | fastest other | × best peer | best peer | × uniform |\n"
             "|---|---|---|---|---|---|---|\n"]
    middle, middle_peer, middle_steps = [], [], []
    for name, case in cases.items():
        runs = case["runs"]
        if challenger not in runs:
            continue
        others = [t for t in runs if t != challenger and (peers is None or t in peers)]
        table[name] = {}
        for target in case["targets"]:
            key = f"{target:g}"
            times = {t: [r["time_to_target"][key] for r in teacher_runs] for t, teacher_runs in runs.items()}
            best = seed_ratios(times, challenger, others)
            versus_uniform = seed_ratios(times, challenger, [uniform]) if uniform in runs else []
            fastest = sorted({r["fastest"] for r in best if r["fastest"]})
            peer = best_peer_ratio(times, challenger, others)
            table[name][key] = {"fastest_other": best, "best_peer": peer, "uniform": versus_uniform}
            peer_cell = "–" if peer["ratio"] is None else f"{peer['ratio']:.2f}"
            lines.append(f"| {name} | {key} | {ratio_cell(best)} | {', '.join(fastest) or '–'} | "
                         f"{peer_cell} | {peer['peer'] or '–'} | {ratio_cell(versus_uniform)} |\n")
        mid = f"{case['targets'][len(case['targets']) // 2]:g}"
        values = [r["ratio"] for r in table[name][mid]["fastest_other"] if r["ratio"] is not None]
        if values:
            middle.append(statistics.fmean(values))
        if table[name][mid]["best_peer"]["ratio"] is not None:
            middle_peer.append(table[name][mid]["best_peer"]["ratio"])
        in_steps = steps_ratio(runs, challenger, table[name][mid]["best_peer"]["peer"], mid)
        if in_steps is not None:
            middle_steps.append(in_steps)
    median = statistics.median(middle) if middle else None
    median_peer = statistics.median(middle_peer) if middle_peer else None
    median_steps = statistics.median(middle_steps) if middle_steps else None
    for value, measure in ((median, "the fastest other teacher's time, seed by seed"),
                           (median_peer, "the best peer's time (means over seeds)"),
                           (median_steps, "the same best peer's steps to it (free of the clock's noise; "
                                          "the time it means only where the two cost the same per step: "
                                          "see ms per step)")):
        if value is not None:
            text = "inf (it missed the target on too many seeds)" if math.isinf(value) else f"{value:.2f}x"
            lines.append(f"\nMedian over cases, at each case's middle target: {text} {measure}.\n")
    return {"teacher": challenger, "cases": table, "median_at_middle_target": median,
            "median_at_middle_target_best_peer": median_peer,
            "median_at_middle_target_best_peer_steps": median_steps}, "".join(lines)


def variant_fit(suite: dict, case: dict, teacher: str, signal, seed: int | None = None,
                eval_every: float | None = None):
    """The Fit of one teachers-list entry on one case: a registered teacher, or a variant (a teacher
    with hyperparameters and, for keys that are case settings such as ``ratio``, the case's overridden)."""
    variant = dict(suite["variants"].get(teacher, {"teacher": teacher}))
    name = variant.pop("teacher")
    settings = {k: variant.pop(k) for k in list(variant) if k in VARIANT_SETTINGS}
    seeded = {} if seed is None else {"seed": seed}
    config = SignalModelConfig(**{**asdict(case["config"]), **settings, **seeded})
    return build_fit(config, name, variant, signal, eval_every=eval_every)


def write_results(folder: Path, results: dict, report: list[str]) -> dict:
    """results.json (its runs now stored per case) and results.md, the report's parts joined."""
    del results["runs"]
    write_json(folder / "results.json", results)
    write_text(folder / "results.md", "".join(report))
    return results


def run_suite(path: Path, out: Path, overwrite: bool = False, show_progress: bool = True,
              seeds: list[int] | None = None) -> dict:
    """Run every case x teacher x seed; write results.json, results.md and one plot per case.
    ``seeds`` replaces the suite's own."""
    from nteach.viz import quality_vs_time

    suite = load_suite(path)
    suite["seeds"] = seeds or suite["seeds"]
    signals = {case["name"]: load_signal(case["config"]) for case in suite["cases"]}  # fail early
    for case in suite["cases"]:
        for teacher in case["teachers"]:
            variant_fit(suite, case, teacher, signals[case["name"]])
    folder = new_run_folder(out, overwrite)
    jobs = [(c, t, s) for c in suite["cases"] for k, s in enumerate(suite["seeds"])
            for t in rotated(c["teachers"], k)]
    runs: dict[str, dict[str, list[dict]]] = {}
    for case, teacher, seed in tqdm(jobs, disable=not show_progress, unit="run"):
        fit = variant_fit(suite, case, teacher, signals[case["name"]], seed, suite["eval_every"])
        fit.run(show_progress=False)
        result = {"seed": seed, **run_result(fit, case["targets"])}
        runs.setdefault(case["name"], {}).setdefault(teacher, []).append(result)
    results = {"machine": machine(), "suite": suite["name"], "seeds": suite["seeds"], "runs": runs}
    write_json(folder / "results.json", results)  # the raw runs first: a report error must not lose them
    report = [f"# INR suite `{suite['name']}`\n",
              f"Machine: {machine()}. Times are training seconds (steps + scoring passes, no evaluation), "
              f"mean ± std over seeds {suite['seeds']}; speed-up = reference time / teacher time.\n"]
    results["cases"] = {}
    for case in suite["cases"]:
        name, signal = case["name"], signals[case["name"]]
        summaries = {t: aggregate(r, case["targets"], signal.metric) for t, r in runs[name].items()}
        results["cases"][name] = {"config": asdict(case["config"]), "targets": case["targets"],
                                  "metric": signal.metric, "summary": summaries, "runs": runs[name]}
        report += [f"\n## {name} ({len(signal)} points, {case['config'].model} "
                   f"{case['config'].depth}x{case['config'].width}, ratio {case['config'].ratio})\n\n",
                   case_table(case, summaries, signal.metric, suite["uniform"])]
        first_seed = {t: r[0]["history"] for t, r in runs[name].items()}
        save_figure(folder / f"{name}.png", quality_vs_time(first_seed, metric=signal.metric,
                                                             targets=tuple(case["targets"]), title=name))
    if suite["challenger"]:
        results["challenger"], text = challenger_report(suite["challenger"], results["cases"], suite["peers"],
                                                        suite["uniform"])
        report.append(text)
    return write_results(folder, results, report)
