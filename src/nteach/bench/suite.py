"""`nteach bench inr`: every teacher on every (signal, model) case of a suite file, several seeds.

A suite is a TOML file (see benchmarks/): top-level defaults (teachers, seeds,
ratio, budget, ...) and one [[case]] table per (signal, model). Any field of
SignalModelConfig may appear at either level; a case's value wins.
"""

from __future__ import annotations

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
SUITE_KEYS = {"name", "teachers", "seeds", "targets", "eval_every", "case"}
CASE_KEYS = {"name", "targets", "teachers"} | {f.name for f in fields(SignalModelConfig)}


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
    return {"name": suite.get("name", path.stem), "cases": cases,
            "teachers": list(suite.get("teachers", ["full", "uniform"])),
            "seeds": list(suite.get("seeds", [0])), "eval_every": suite.get("eval_every")}


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(runs: list[dict], targets: list[float], metric: str) -> dict:
    """Mean and spread over seeds of one teacher's runs on one case."""
    out = {"seeds": len(runs), "final": _mean_std([r["final"][metric] for r in runs]),
           "best": _mean_std([r["best"] for r in runs]), "time_to_target": {}}
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


def case_table(case: dict, summaries: dict[str, dict], metric: str) -> str:
    """Markdown for one case: per target, time (mean ± std over seeds) and speed-ups."""
    unit = " dB" if metric == "psnr" else ""
    header = ["teacher"]
    for target in case["targets"]:
        header += [f"s to {target:g}{unit}", "vs full", "vs uniform"]
    header += [f"final {metric}", f"best {metric}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for teacher, summary in summaries.items():
        row = [teacher]
        for target in case["targets"]:
            entry = summary["time_to_target"][f"{target:g}"]
            time = _cell(entry["mean_std"])
            if entry["reached"] < summary["seeds"]:
                time = f"{time} ({entry['reached']}/{summary['seeds']} reached)"
            row += [time, _speedup(summary, summaries.get("full"), f"{target:g}"),
                    _speedup(summary, summaries.get("uniform"), f"{target:g}")]
        digits = 2 if metric == "psnr" else 3
        row += [_cell(summary["final"], digits), _cell(summary["best"], digits)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def run_suite(path: Path, out: Path, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Run every case x teacher x seed; write results.json, results.md and one plot per case."""
    from nteach.viz import quality_vs_time

    suite = load_suite(path)
    signals = {case["name"]: load_signal(case["config"]) for case in suite["cases"]}  # fail early
    for case in suite["cases"]:
        for teacher in case["teachers"]:
            build_fit(case["config"], teacher, signals[case["name"]])
    folder = new_run_folder(out, overwrite)
    jobs = [(c, t, s) for c in suite["cases"] for s in suite["seeds"] for t in c["teachers"]]
    runs: dict[str, dict[str, list[dict]]] = {}
    for case, teacher, seed in tqdm(jobs, disable=not show_progress, unit="run"):
        config = SignalModelConfig(**{**asdict(case["config"]), "seed": seed})
        fit = build_fit(config, teacher, signals[case["name"]], eval_every=suite["eval_every"])
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
                   case_table(case, summaries, signal.metric)]
        first_seed = {t: r[0]["history"] for t, r in runs[name].items()}
        save_figure(folder / f"{name}.png", quality_vs_time(first_seed, metric=signal.metric,
                                                             targets=tuple(case["targets"]), title=name))
    del results["runs"]  # now stored per case
    write_json(folder / "results.json", results)
    write_text(folder / "results.md", "".join(report))
    return results
