"""`nteach bench attention`: every teacher on each attention-recipe case of a suite file, same seeds.

A suite is a TOML file (src/nteach/bench/suites/attention-*.toml): top-level ``teachers``
and ``seeds``, and one [[case]] table per recipe setting: ``recipe`` (vit,
encoder or lm), any field of that recipe's config, the ``tolerance`` of its
target and, optionally, its own ``teachers``. ``options`` is a string of
teacher hyperparameters for every teacher, or a table of them by teacher.

The standard run of a case is teacher ``full`` with the same seed. The
target every run of that seed is timed to is full's final validation
metric, less the tolerance for an accuracy, plus it for a loss. Times are
the recipes' training seconds (steps and every scoring pass, no
evaluation) and clock-robust seconds: each run's counted work at prices
fitted to every run of the case (nteach.bench.attention_clock); a probe
times the case's steps before its runs, as a check on those prices
(nteach.bench.attention_probe). A suite may run in parts
(some cases, seeds or teachers); each part writes one results file, and
`nteach bench report` merges them (nteach.bench.results).
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from nteach.attention.recipes import load_recipes
from nteach.attention.recipes.teachers import TEACHERS, parse_options
from nteach.bench.attention_clock import price_case
from nteach.bench.attention_probe import case_kit, measure_units
from nteach.bench.results import merge, provenance
from nteach.bench.suite import read_suite_file, rotated
from nteach.errors import UserError
from nteach.progress import progress_bar
from nteach.runs import HISTORY, new_run_folder, write_json, write_text
from nteach.teaching import make_strategy

SUITE_KEYS = {"name", "teachers", "seeds", "case"}
CASE_KEYS = {"name", "recipe", "tolerance", "teachers"}
PER_RUN = {"teacher", "seed", "out", "overwrite"}  # config fields the bench sets for each run
DEFAULT_TEACHERS = ["full", *(t for t in TEACHERS if t != "full")]
TOML_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


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
    return {"name": suite.get("name", path.stem), "teachers": teachers, "seeds": seeds, "cases": cases}


def check_case(case: Case, seed: int) -> None:
    """Every teacher with its options, and the recipe's settings, data and model: before any run."""
    for teacher in case.teachers:
        make_strategy(teacher, **parse_options(teacher, case.options_for(teacher)))
    load_recipes()[case.recipe].check(case.config("full", seed))


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
    return {"seed": seed, "train_seconds": summary["train_seconds"], "examples": summary["examples_trained"],
            "compile_seconds": summary["compile_seconds"], "history": history}


def select_part(suite: dict, cases: list[str] | None, teachers: list[str] | None) -> None:
    """Keep only the named cases and teachers (a part of the suite); an unknown name is a UserError."""
    if cases:
        known = {case.name for case in suite["cases"]}
        if set(cases) - known:
            raise UserError(f"no case {sorted(set(cases) - known)[0]!r}; the suite has "
                            f"{', '.join(sorted(known))}")
        suite["cases"] = [case for case in suite["cases"] if case.name in cases]
    if teachers:
        suite["cases"] = [replace(case, teachers=[t for t in case.teachers if t in teachers])
                          for case in suite["cases"]]
        suite["cases"] = [case for case in suite["cases"] if case.teachers]
        if not suite["cases"]:
            raise UserError(f"none of the teachers {', '.join(teachers)} is in the selected cases")


def run_case(case: Case, seeds: list[int], folder: Path, show_progress: bool, written) -> dict:
    """Warm-up, the probe, then every teacher x seed (rotated); every history gets its robust seconds
    once every run's segments have fitted the prices. ``written(result)`` is called after each run."""
    if case.settings.get("compile") in ("on", "graphs"):
        torch.compiler.reset()  # torch keeps 8 graphs a model: each case starts from an empty cache
    warm_up(case, seeds[0])
    config = case.config("full", seeds[0])
    costs = measure_units(case_kit(case.recipe, config), config.batch_size)
    result = {"recipe": case.recipe, "settings": case.settings, "options": case.options,
              "metric": case.metric, "tolerance": case.tolerance, "costs": costs, "runs": {}}
    jobs = [(teacher, seed) for k, seed in enumerate(seeds) for teacher in rotated(case.teachers, k)]
    for teacher, seed in progress_bar(jobs, show=show_progress, unit="run", desc=case.name):
        result["runs"].setdefault(teacher, []).append(run_one(case, teacher, seed, folder))
        written(result)
    price_case(result)
    return result


def run_attention_suite(path: Path, out: Path, overwrite: bool = False, show_progress: bool = True,
                        seeds: list[int] | None = None, cases: list[str] | None = None,
                        teachers: list[str] | None = None, compile: str | None = None) -> dict:
    """Run the suite (or the part given by ``cases``, ``seeds`` and ``teachers``): results.json as it
    goes, then results.md and one plot per case. ``compile`` replaces every case's setting."""
    from nteach.bench.attention_report import attention_markdown, plot_case

    suite = load_attention_suite(path)
    suite["seeds"] = seeds or suite["seeds"]
    select_part(suite, cases, teachers)
    if compile is not None:  # every case, and so every teacher of a case, compiled alike
        suite["cases"] = [replace(case, settings={**case.settings, "compile": compile})
                          for case in suite["cases"]]
    for case in suite["cases"]:
        check_case(case, suite["seeds"][0])
    folder = new_run_folder(out, overwrite)
    results = {"format": 2, "kind": "attention", "suite": suite["name"],
               "provenance": provenance(path, "attention"), "seeds": suite["seeds"], "cases": {}}

    def written(name: str):
        def write(result: dict) -> None:
            results["cases"][name] = result
            write_json(folder / "results.json", results)  # as it goes: a cut-off part keeps its runs
        return write

    for case in suite["cases"]:
        result = run_case(case, suite["seeds"], folder, show_progress, written(case.name))
        written(case.name)(result)
        plot_case(case.name, result, folder / f"{case.name}.png")
    write_text(folder / "results.md", attention_markdown(merge([results])))
    return results
