"""`nteach bench attention`: every teacher on each attention-recipe case of a suite file, same seeds.

A suite is a TOML file (benchmarks/attention-*.toml): top-level ``teachers``
and ``seeds``, and one [[case]] table per recipe setting: ``recipe`` (vit,
encoder or lm), any field of that recipe's config, the ``tolerance`` of its
target and, optionally, its own ``teachers``. ``options`` is a string of
teacher hyperparameters for every teacher, or a table of them by teacher.

The standard run of a case is teacher ``full`` with the same seed. The
target every run of that seed is timed to is full's final validation
metric, less the tolerance for an accuracy, plus it for a loss. Times are
the recipes' training seconds: steps and every scoring pass, no evaluation.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path

from tqdm.auto import tqdm

from nteach.attention.recipes import load_recipes
from nteach.attention.recipes.vit import TEACHERS, parse_options
from nteach.bench.compare import machine
from nteach.bench.targets import time_to_target
from nteach.bench.stats import cell, mean_std, ratio_cell, seed_ratios, write_results
from nteach.bench.suite import read_suite_file, rotated
from nteach.errors import UserError
from nteach.runs import HISTORY, new_run_folder, save_figure, write_json
from nteach.teaching import make_strategy

SUITE_KEYS = {"name", "teachers", "seeds", "challenger", "case"}
CASE_KEYS = {"name", "recipe", "tolerance", "teachers"}
PER_RUN = {"teacher", "seed", "out", "overwrite"}  # config fields the bench sets for each run
DEFAULT_TEACHERS = ["full", *(t for t in TEACHERS if t != "full")]
TOML_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def higher_is_better(metric: str) -> bool:
    return metric.endswith("accuracy")  # the recipes track val_accuracy or val_loss


@dataclass(frozen=True)
class Case:
    """One recipe setting of a suite: each of its teachers trains it once per seed."""

    name: str
    recipe: str
    settings: dict  # fields of the recipe's config
    options: str | dict  # teacher hyperparameters: one string for every teacher, or a string by teacher
    tolerance: float
    teachers: list[str]

    @property
    def metric(self) -> str:
        return load_recipes()[self.recipe].metric

    def options_for(self, teacher: str) -> str:
        return self.options.get(teacher, "") if isinstance(self.options, dict) else self.options

    def config(self, teacher: str, seed: int, out: Path | None = None):
        return load_recipes()[self.recipe].config(**self.settings, options=self.options_for(teacher),
                                                  teacher=teacher, seed=seed, out=str(out) if out else None)


def _check_type(where: str, name: str, value, annotation: str) -> None:
    """A TOML value of the config field's type (an int may stand for a float; a bool is no int)."""
    allowed = tuple(kind for word in annotation.split(" | ") for kind in TOML_TYPES.get(word, ()))
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise UserError(f"{where}: {name} must be {annotation}, got {value!r}")


def _teacher_list(where: str, value) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise UserError(f"{where}: teachers must be a list of teacher names, got {value!r}")
    return value


def load_case(where: str, table: dict, teachers: list[str]) -> Case:
    """A [[case]] table, its keys and value types checked against its recipe's config."""
    recipes = load_recipes()
    if table.get("recipe") not in recipes:
        raise UserError(f"{where}: recipe must be one of {', '.join(recipes)}, got {table.get('recipe')!r}")
    recipe = table["recipe"]
    config_fields = {f.name: str(f.type) for f in fields(recipes[recipe].config)}
    settings = {key: value for key, value in table.items() if key not in CASE_KEYS}
    for key, value in settings.items():
        if key in PER_RUN:
            raise UserError(f"{where}: {key!r} is set by the bench for each run (use teachers and seeds)")
        if key not in config_fields:
            raise UserError(f"{where}: unknown setting {key!r} for recipe {recipe}")
        if key != "options":
            _check_type(where, key, value, config_fields[key])
    tolerance = table.get("tolerance")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise UserError(f"{where}: tolerance must be a number >= 0 (how far from full's final metric "
                        f"counts as reaching it), got {tolerance!r}")
    case_teachers = _teacher_list(where, table.get("teachers", teachers))
    if "full" not in case_teachers:
        raise UserError(f"{where}: its teachers need 'full', the standard run every other is timed against")
    options = settings.pop("options", "")
    by_teacher = options if isinstance(options, dict) else {}
    if not isinstance(options, (str, dict)) or not all(isinstance(v, str) for v in by_teacher.values()):
        raise UserError(f"{where}: options must be a string, or a table of strings by teacher")
    if not set(by_teacher) <= set(case_teachers):
        raise UserError(f"{where}: options for {sorted(set(by_teacher) - set(case_teachers))[0]!r}, "
                        "which is not one of its teachers")
    name = table.get("name", recipe)
    if not isinstance(name, str) or not re.fullmatch(r"[\w.-]+", name):
        raise UserError(f"{where}: a case name is a folder name (letters, digits, _ . -), got {name!r}")
    return Case(name, recipe, settings, options, float(tolerance), list(case_teachers))


def load_attention_suite(path: Path) -> dict:
    """Read and check a suite file: name, teachers, seeds and its cases."""
    suite = read_suite_file(path)
    unknown = sorted(set(suite) - SUITE_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown setting {unknown[0]!r}")
    if not suite.get("case"):
        raise UserError(f"{path}: no [[case]] tables")
    seeds = suite.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
        raise UserError(f"{path}: seeds must be a list of integers, got {seeds!r}")
    teachers = _teacher_list(str(path), suite.get("teachers", DEFAULT_TEACHERS))
    cases = [load_case(f"{path}: case {n}", table, teachers) for n, table in enumerate(suite["case"], 1)]
    names = [case.name for case in cases]
    if len(set(names)) < len(names):
        raise UserError(f"{path}: two cases are named {next(n for n in names if names.count(n) > 1)!r}")
    challenger = suite.get("challenger")
    if challenger is not None and challenger not in teachers:
        raise UserError(f"{path}: the challenger {challenger!r} is not one of its teachers")
    return {"name": suite.get("name", path.stem), "teachers": teachers, "seeds": seeds, "cases": cases,
            "challenger": challenger}


def check_case(case: Case, seed: int) -> None:
    """Every teacher with its options, and the recipe's settings, data and model: before any run."""
    for teacher in case.teachers:
        make_strategy(teacher, **parse_options(teacher, case.options_for(teacher)))
    load_recipes()[case.recipe].check(case.config("full", seed))


def versus_full(history: list[dict], full_history: list[dict], metric: str, tolerance: float) -> dict:
    """When a run reached full's final ``metric`` within ``tolerance``, and how that compares with full.

    ratio = the run's time to the target / full's own time to it; None if the run never reached it
    (or full reached it before training, at 0 s).
    """
    higher = higher_is_better(metric)
    target = full_history[-1][metric] + (-tolerance if higher else tolerance)
    seconds = time_to_target(history, target, metric, higher_is_better=higher)
    full_seconds = time_to_target(full_history, target, metric, higher_is_better=higher)
    ratio = seconds / full_seconds if seconds is not None and full_seconds else None
    return {"target": target, "time_to_target": seconds, "full_time_to_target": full_seconds,
            "ratio": ratio, "saved_percent": None if ratio is None else 100.0 * (1.0 - ratio)}


def warm_up(case: Case, seed: int) -> None:
    """One short run of full, thrown away: one-time costs (lazy imports, kernel and thread pool set-up,
    a CUDA context) would otherwise be charged to whichever teacher runs first, the standard included."""
    with tempfile.TemporaryDirectory() as scratch:
        config = case.config("full", seed, Path(scratch) / "run")
        config = replace(config, epochs=1, max_examples=min(config.max_examples or 64, 64))
        load_recipes()[case.recipe].run(config, show_progress=False)


def run_one(case: Case, teacher: str, seed: int, folder: Path) -> dict:
    """One run into folder/CASE/TEACHER-seedN, its history read back from the run folder."""
    out = folder / case.name / f"{teacher}-seed{seed}"
    recipe = load_recipes()[case.recipe]
    summary, run_folder = recipe.run(case.config(teacher, seed, out), show_progress=False)
    history = [json.loads(line) for line in (run_folder / HISTORY).read_text().splitlines()]
    best = max if higher_is_better(case.metric) else min
    return {"seed": seed, "folder": str(out.relative_to(folder)), "train_seconds": summary["train_seconds"],
            "final": history[-1][case.metric], "best": best(r[case.metric] for r in history),
            "summary": {k: v for k, v in summary.items() if k != "config"}, "history": history}


def summarize(runs: list[dict]) -> dict:
    """Mean and spread over seeds of one teacher's runs on one case (times to target: where reached)."""
    reached = [r for r in runs if r["time_to_target"] is not None]
    with_ratio = [r for r in runs if r["ratio"] is not None]
    return {"seeds": len(runs), "reached": len(reached),
            "train_seconds": mean_std([r["train_seconds"] for r in runs]),
            "final": mean_std([r["final"] for r in runs]), "best": mean_std([r["best"] for r in runs]),
            "time_to_target": mean_std([r["time_to_target"] for r in reached]),
            "ratio": mean_std([r["ratio"] for r in with_ratio]),
            "saved_percent": mean_std([r["saved_percent"] for r in with_ratio])}


def compare_case(case: Case, runs: dict[str, list[dict]]) -> dict:
    """Each run timed to its seed's target (from full's run), and each teacher summarised."""
    full = {run["seed"]: run["history"] for run in runs["full"]}
    for teacher_runs in runs.values():
        for run in teacher_runs:
            run.update(versus_full(run["history"], full[run["seed"]], case.metric, case.tolerance))
    return {"recipe": case.recipe, "settings": case.settings, "options": case.options, "metric": case.metric,
            "tolerance": case.tolerance, "targets": {str(r["seed"]): r["target"] for r in runs["full"]},
            "summary": {teacher: summarize(teacher_runs) for teacher, teacher_runs in runs.items()},
            "runs": runs}


def case_table(summaries: dict[str, dict], metric: str) -> str:
    """Markdown: per teacher, training time, final and best metric, time to target and versus full."""
    header = ["teacher", "training s", f"final {metric}", f"best {metric}", "s to target",
              "× full (time to target)", "time saved"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for teacher, summary in summaries.items():
        time = cell(summary["time_to_target"])
        if summary["reached"] < summary["seeds"]:
            time = f"{time} ({summary['reached']}/{summary['seeds']} reached)"
        saved = cell(summary["saved_percent"])
        row = [teacher, cell(summary["train_seconds"]), cell(summary["final"], 4),
               cell(summary["best"], 4), time, cell(summary["ratio"], 2),
               saved if saved == "–" else f"{saved} %"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def case_report(case: Case, result: dict) -> str:
    options = case.options if isinstance(case.options, dict) else {"every teacher": case.options}
    settings = ", ".join([f"{k}={v}" for k, v in case.settings.items()]
                         + [f"options for {teacher}: {text}" for teacher, text in options.items() if text])
    targets = ", ".join(f"{target:.4f} (seed {seed})" for seed, target in result["targets"].items())
    direction = "less" if higher_is_better(case.metric) else "plus"
    return (f"\n## {case.name}\n\nRecipe `{case.recipe}` ({settings or 'defaults'}). Target: `full`'s final "
            f"{case.metric} with the same seed, {direction} the tolerance {case.tolerance:g}: {targets}.\n\n"
            + case_table(result["summary"], case.metric))


def challenger_report(challenger: str, cases: dict[str, dict]) -> tuple[dict, str]:
    """Seed by seed, ``challenger``'s time to each case's target / the fastest other teacher's."""
    lines = [f"\n## `{challenger}` against the fastest other teacher\n\n",
             f"Seed by seed: `{challenger}`'s time to the target / the fastest other teacher's on that seed "
             "(mean, min–max over seeds; a miss counts as inf). < 1: faster.\n\n",
             "| case | × fastest other | fastest other |\n|---|---|---|\n"]
    table = {}
    for name, case in cases.items():
        if challenger not in case["runs"]:
            continue
        times = {t: [r["time_to_target"] for r in runs] for t, runs in case["runs"].items()}
        ratios = table[name] = seed_ratios(times, challenger, [t for t in times if t != challenger])
        fastest = sorted({r["fastest"] for r in ratios if r["fastest"]})
        lines.append(f"| {name} | {ratio_cell(ratios)} | {', '.join(fastest) or '–'} |\n")
    return {"teacher": challenger, "cases": table}, "".join(lines)


def plot_case(case: Case, result: dict, path: Path) -> None:
    """The metric against training seconds, one line per teacher, first seed; its target dotted."""
    from nteach.viz import quality_vs_time

    first = {teacher: runs[0] for teacher, runs in result["runs"].items()}
    figure = quality_vs_time({teacher: run["history"] for teacher, run in first.items()}, metric=case.metric,
                             targets=(first["full"]["target"],),
                             title=f"{case.name}, seed {first['full']['seed']}: target "
                                   f"{first['full']['target']:.4g} (dotted)")
    figure.axes[0].set_ylabel(case.metric.replace("_", " "))
    save_figure(path, figure)


def run_attention_suite(path: Path, out: Path, overwrite: bool = False, show_progress: bool = True,
                        seeds: list[int] | None = None) -> dict:
    """Run every case x seed x teacher; write results.json, results.md and one plot per case.
    ``seeds`` replaces the suite's own."""
    suite = load_attention_suite(path)
    suite["seeds"] = seeds or suite["seeds"]
    for case in suite["cases"]:
        check_case(case, suite["seeds"][0])
    folder = new_run_folder(out, overwrite)
    jobs = [(case, seed, teacher) for case in suite["cases"] for k, seed in enumerate(suite["seeds"])
            for teacher in rotated(case.teachers, k)]
    runs: dict[str, dict[str, list[dict]]] = {}
    for case, seed, teacher in tqdm(jobs, disable=not show_progress, unit="run"):
        if case.name not in runs:
            warm_up(case, seed)
        runs.setdefault(case.name, {}).setdefault(teacher, []).append(run_one(case, teacher, seed, folder))
    results = {"machine": machine(), "suite": suite["name"], "seeds": suite["seeds"], "runs": runs}
    write_json(folder / "results.json", results)  # the raw runs first: a report error must not lose them
    described = ", ".join(f"{key} {value}" for key, value in results["machine"].items())
    report = [f"# Attention suite `{suite['name']}`\n\n",
              f"Machine: {described}. Times are training seconds (steps and every scoring pass, no "
              f"evaluation), mean ± std over seeds {suite['seeds']}. × full = a teacher's time to the "
              "target / full's own time to it, seed by seed; time saved = 1 - that.\n"]
    results["cases"] = {}
    for case in suite["cases"]:
        result = results["cases"][case.name] = compare_case(case, runs[case.name])
        report.append(case_report(case, result))
        plot_case(case, result, folder / f"{case.name}.png")
    if suite["challenger"]:
        results["challenger"], text = challenger_report(suite["challenger"], results["cases"])
        report.append(text)
    return write_results(folder, results, report)
