"""`nteach bench inr`: every teacher on every (signal, model) case of a suite file, several seeds.

A suite is a TOML file (see benchmarks/): top-level defaults (teachers, seeds,
ratio, budget, ...) and one [[case]] table per (signal, model). Any field of
SignalModelConfig may appear at either level; a case's value wins. A case may
name its ``regime`` (capacity-limited, high-fidelity, ...) for the report to
group by, and fixed ``targets``; without them, targets come from the runs
(nteach.bench.targets). ``reference`` names the teacher whose end-of-budget
quality sets the headline target (default uniform), and ``controls`` the
teachers that are measured but never anyone's peer (an identical twin of
uniform, for the clock). A ``[variants.NAME]`` table names a teacher with
hyperparameters (``teacher = "paced_sweep"``, ``temperature = 0.0``, ...) and,
optionally, case settings that override the case's for it (``ratio = 0.05``).
``cases_from = "quick"`` takes another suite's [[case]] tables.

A run of a suite, or of a part of one (some cases, seeds or teachers), writes
one results file (nteach.bench.results) with each run's history, its work
counted and its clock-robust time (nteach.bench.probe).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, fields, replace
from importlib.resources import files
from pathlib import Path

import torch

from nteach.bench.probe import measure_costs, robust_seconds
from nteach.bench.results import merge, provenance
from nteach.errors import UserError
from nteach.inr.experiment import SignalModelConfig, build_fit, load_signal, teacher_options
from nteach.progress import progress_bar
from nteach.runs import new_run_folder, save_figure, write_json, write_text

SUITES = Path(str(files("nteach.bench").joinpath("suites")))  # package data: a wheel carries them
SUITE_KEYS = {"name", "teachers", "seeds", "targets", "eval_every", "reference", "controls", "variants",
              "case", "cases_from"}
CASE_KEYS = {"name", "targets", "teachers", "regime"} | {f.name for f in fields(SignalModelConfig)}
# what a variant may not set: the signal is loaded once per case, and seeds come from the suite
FIXED_PER_CASE = {"image", "signal", "size", "gray", "sample_rate", "clip_seconds", "mono", "resolution",
                  "surface_points", "seed"}
VARIANT_SETTINGS = CASE_KEYS - {"name", "targets", "teachers", "regime"} - FIXED_PER_CASE
BUDGET_SHARE = "budget"  # a variant's share of each case's budget (steps or seconds), its schedule over it


def suite_path(name_or_path: str, kind: str = "inr") -> Path:
    """A suite file path, or the name of a ``kind`` suite shipped with nteach ("quick", "dev", "heldout")."""
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


def _case(path: Path, number: int, table: dict, suite: dict, defaults: dict) -> dict:
    unknown = sorted(set(table) - CASE_KEYS)
    if unknown:
        raise UserError(f"{path}: case {number} has unknown setting {unknown[0]!r}")
    settings = {**defaults, **{k: v for k, v in table.items() if k not in ("name", "targets", "teachers",
                                                                          "regime")}}
    config = SignalModelConfig(**settings)
    targets = table.get("targets", suite.get("targets"))
    return {"name": table.get("name") or f"{Path(config.image).stem}-{config.model}", "config": config,
            "teachers": list(table.get("teachers", suite.get("teachers", ["full", "uniform"]))),
            "targets": None if targets is None else sorted(float(t) for t in targets),
            "regime": table.get("regime", "")}


def load_suite(path: Path) -> dict:
    """Read and check a suite file; every case gets a full config before anything runs."""
    suite = read_suite_file(path)
    if "cases_from" in suite:
        if "case" in suite:
            raise UserError(f"{path}: give [[case]] tables or cases_from, not both")
        suite["case"] = read_suite_file(suite_path(suite["cases_from"])).get("case")
    unknown = sorted((set(suite) - SUITE_KEYS - CASE_KEYS))
    if unknown:
        raise UserError(f"{path}: unknown setting {unknown[0]!r}")
    if not suite.get("case"):
        raise UserError(f"{path}: no [[case]] tables")
    defaults = {k: v for k, v in suite.items() if k not in SUITE_KEYS}
    cases = [_case(path, n, table, suite, defaults) for n, table in enumerate(suite["case"], 1)]
    listed = {t for case in cases for t in case["teachers"]}
    reference = suite.get("reference", "uniform")
    controls = list(suite.get("controls", []))
    for key, names in (("reference", [reference]), ("controls", controls)):
        strangers = [n for n in names if n not in listed]
        if strangers and (key == "controls" or "reference" in suite):
            raise UserError(f"{path}: {key} names {strangers[0]!r}, which is not one of its teachers")
    variants = suite.get("variants", {})
    for name, table in variants.items():
        if not isinstance(table, dict) or "teacher" not in table:
            raise UserError(f"{path}: variant {name!r} needs a table with a teacher")
        fixed = sorted(set(table) & FIXED_PER_CASE)
        if fixed:
            raise UserError(f"{path}: variant {name!r} sets {fixed[0]!r}, which only a case can set")
        share = table.get(BUDGET_SHARE, 1.0)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or share <= 0:
            raise UserError(f"{path}: variant {name!r} needs a budget share > 0, got {share!r}")
    return {"name": suite.get("name", path.stem), "cases": cases, "variants": variants,
            "seeds": list(suite.get("seeds", [0])), "eval_every": suite.get("eval_every"),
            "reference": reference, "controls": controls}


def rotated(teachers: list[str], k: int) -> list[str]:
    """The teachers in the order of the k-th seed: each seed starts one teacher further on, so that
    no teacher always runs first or last (a machine's speed drifts during a suite)."""
    k %= len(teachers)
    return teachers[k:] + teachers[:k]


def split_variant(suite: dict, teacher: str) -> tuple[str, dict, dict]:
    """A teachers-list entry as (registered teacher, the case settings it overrides such as ``ratio``,
    its hyperparameters); a registered teacher's name alone has neither."""
    variant = dict(suite["variants"].get(teacher, {"teacher": teacher}))
    name = variant.pop("teacher")
    settings = {k: variant.pop(k) for k in list(variant) if k in VARIANT_SETTINGS | {BUDGET_SHARE}}
    return name, settings, variant


def teacher_setup(suite: dict, case: dict, teacher: str) -> dict:
    """What a teachers-list entry runs on ``case``, for the results file: its registered teacher, the
    case settings it overrides, and every hyperparameter it sets over that teacher's defaults (the INR
    settings of paced_sweep included)."""
    name, settings, options = split_variant(suite, teacher)
    return {"teacher": name, **settings, **teacher_options(case["config"], name, options)}


def variant_fit(suite: dict, case: dict, teacher: str, signal, seed: int | None = None,
                eval_every: float | None = None):
    """The Fit of one teachers-list entry on one case: a registered teacher, or a variant (a teacher
    with hyperparameters and, for keys that are case settings such as ``ratio``, the case's overridden)."""
    name, settings, variant = split_variant(suite, teacher)
    share = settings.pop(BUDGET_SHARE, 1.0)
    seeded = {} if seed is None else {"seed": seed}
    config = SignalModelConfig(**{**asdict(case["config"]), **settings, **seeded})
    if share != 1.0 and config.steps is not None:
        config = replace(config, steps=max(1, round(config.steps * share)))
    elif share != 1.0:
        config = replace(config, seconds=config.seconds * share)
    return build_fit(config, name, variant, signal, eval_every=eval_every)


def select_part(suite: dict, cases: list[str] | None, teachers: list[str] | None) -> None:
    """Keep only the named cases and teachers (a part of the suite); an unknown name is a UserError."""
    if cases:
        known = {c["name"] for c in suite["cases"]}
        if set(cases) - known:
            raise UserError(f"no case {sorted(set(cases) - known)[0]!r}; the suite has "
                            f"{', '.join(sorted(known))}")
        suite["cases"] = [c for c in suite["cases"] if c["name"] in cases]
    if teachers:
        for case in suite["cases"]:
            case["teachers"] = [t for t in case["teachers"] if t in teachers]
        if not any(c["teachers"] for c in suite["cases"]):
            raise UserError(f"none of the teachers {', '.join(teachers)} is in the selected cases")
        suite["cases"] = [c for c in suite["cases"] if c["teachers"]]


def run_case(suite: dict, case: dict, signal, show_progress: bool) -> dict:
    """Unit costs first, then every teacher x seed (rotated), each history with its robust seconds."""
    def fresh(teacher: str):
        return variant_fit(suite, case, teacher, signal)

    if case["config"].compile != "off":  # torch keeps 8 graphs a model; one case's teachers need fewer
        torch.compiler.reset()  # so each case starts from an empty cache (this process is the suite's)

    costs = measure_costs(fresh, case["teachers"], case["config"].ratio)
    runs: dict[str, list[dict]] = {}
    jobs = [(t, s) for k, s in enumerate(suite["seeds"]) for t in rotated(case["teachers"], k)]
    for teacher, seed in progress_bar(jobs, show=show_progress, unit="run", desc=case["name"]):
        fit = variant_fit(suite, case, teacher, signal, seed, suite["eval_every"])
        fit.run(show_progress=False)
        history = [{**r, "robust_seconds": robust_seconds(r["work"], costs, teacher)} for r in fit.history]
        runs.setdefault(teacher, []).append({
            "seed": seed, "steps": fit.step, "train_seconds": fit.clock.seconds,
            "compile_seconds": fit.compile_seconds, "history": history})
    return {"config": asdict(case["config"]), "regime": case["regime"], "metric": signal.metric,
            "points": len(signal), "targets": case["targets"], "reference": suite["reference"],
            "controls": suite["controls"], "costs": costs,
            "setups": {t: teacher_setup(suite, case, t) for t in case["teachers"]}, "runs": runs}


def run_suite(path: Path, out: Path, overwrite: bool = False, show_progress: bool = True,
              seeds: list[int] | None = None, cases: list[str] | None = None,
              teachers: list[str] | None = None, seconds: float | None = None,
              compile: str | None = None) -> dict:
    """Run the suite (or the part given by ``cases``, ``seeds`` and ``teachers``); write results.json
    after each case, then results.md and one quality-against-time plot per case. ``seconds`` replaces
    every run's budget (a smoke test: such results say so, and are not the suite's)."""
    from nteach.bench.report import suite_markdown
    from nteach.viz import quality_vs_time

    suite = load_suite(path)
    suite["seeds"] = seeds or suite["seeds"]
    select_part(suite, cases, teachers)
    if seconds is not None:
        if seconds <= 0:
            raise UserError(f"--seconds must be > 0, got {seconds}")
        for case in suite["cases"]:
            case["config"] = replace(case["config"], seconds=seconds, steps=None)
    if compile is not None:  # every case, and so every teacher of a case, compiled alike
        for case in suite["cases"]:
            case["config"] = replace(case["config"], compile=compile)
    signals = {case["name"]: load_signal(case["config"]) for case in suite["cases"]}  # fail early
    for case in suite["cases"]:
        for teacher in case["teachers"]:
            variant_fit(suite, case, teacher, signals[case["name"]])
    folder = new_run_folder(out, overwrite)
    results = {"format": 2, "suite": suite["name"], "provenance": provenance(path, "inr"),
               "seeds": suite["seeds"], "cases": {}}
    if seconds is not None:
        results["provenance"]["seconds_override"] = seconds
    for case in suite["cases"]:
        name, signal = case["name"], signals[case["name"]]
        results["cases"][name] = run_case(suite, case, signal, show_progress)
        write_json(folder / "results.json", results)  # as it goes: a cut-off suite keeps its finished cases
        first_seed = {t: r[0]["history"] for t, r in results["cases"][name]["runs"].items()}
        save_figure(folder / f"{name}.png", quality_vs_time(first_seed, metric=signal.metric, title=name,
                                                             clock="robust_seconds"))
    write_text(folder / "results.md", suite_markdown(merge([results])))
    return results
