"""Results files: what a suite run measured, with where and from what it was measured.

A suite may run in parts (some cases, seeds or teachers at a time); each part
writes one file. The report merges the files of one suite file (the hash of its
text) run by one version of the training code (the hash of the code that trains
and times that kind of suite: the engine, the INR package or the attention
recipes and Trainer, the suite runner and the probe), so that committing a
results file, changing the report, or changing the other kind's code does not
split a suite.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
from pathlib import Path

import nteach
from nteach.bench.attention_clock import price_results
from nteach.bench.compare import machine
from nteach.bench.probe import price_inr_results
from nteach.errors import UserError

PACKAGE = Path(nteach.__file__).resolve().parent
ENGINE = ("teaching", "bench/suite.py", "bench/probe.py", "timing.py", "run_state.py", "launch.py",
          "seeding.py", "compiling.py")
TRAINING_CODE = {"inr": ENGINE + ("inr",),
                 "attention": ENGINE + ("attention", "hf", "bench/attention.py", "bench/attention_probe.py")}


def _digest(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def training_code_hash(kind: str) -> str:
    """A hash of the source files that decide what a suite of ``kind`` ("inr", "attention") measures."""
    files = []
    for part in TRAINING_CODE[kind]:
        path = PACKAGE / part
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return _digest(files, PACKAGE)


def git_commit() -> str | None:
    """The checkout's commit, when the package runs from one."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance(suite_file: Path, kind: str) -> dict:
    """Where, when and from what a results file of a ``kind`` of suite was measured."""
    text = Path(suite_file).read_bytes()
    return {"suite_file": Path(suite_file).name, "suite_hash": hashlib.sha256(text).hexdigest()[:12],
            "code": training_code_hash(kind), "commit": git_commit(), "machine": machine(),
            "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def read_results(path: Path) -> dict:
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read results file {path}: {error}") from None
    if results.get("format") != 2:
        raise UserError(f"{path} is not a results file of this nteach (format 2)")
    return results


def merge(parts: list[dict]) -> dict:
    """One suite's parts as one: each case's runs per teacher, seeds in order, costs per part."""
    first = parts[0]
    merged = {"suite": first["suite"], "kind": first.get("kind", "inr"),
              "provenance": [p["provenance"] for p in parts], "cases": {}}
    for part in parts:
        for name, case in part["cases"].items():
            into = merged["cases"].setdefault(name, {**{k: v for k, v in case.items() if k != "runs"},
                                                     "runs": {}, "costs": []})
            into["costs"].append(case["costs"])
            into["setups"] = {**into.get("setups", {}), **case.get("setups", {})}
            for teacher, runs in case["runs"].items():
                into["runs"].setdefault(teacher, []).extend(runs)
    for case in merged["cases"].values():
        for teacher, runs in case["runs"].items():
            seeds = [r["seed"] for r in runs]
            if len(set(seeds)) < len(seeds):
                raise UserError(f"suite {merged['suite']!r}: teacher {teacher!r} has seed "
                                f"{max(seeds, key=seeds.count)} in two parts")
            runs.sort(key=lambda r: r["seed"])
    return merged


def describe(merged: dict) -> str:
    """"N results file(s), seeds [...], training code ...; machines": where a merged suite comes from."""
    seeds = sorted({r["seed"] for case in merged["cases"].values() for runs in case["runs"].values()
                    for r in runs})
    machines = sorted({p["machine"]["cpu"] + f", {p['machine']['torch_threads']} threads, torch "
                       + p["machine"]["torch"] for p in merged["provenance"]})
    codes = sorted({p["code"] for p in merged["provenance"]})
    return (f"{len(merged['provenance'])} results file(s), seeds {seeds}, training code {', '.join(codes)}; "
            f"{'; '.join(machines)}")


DEVICE_PREFIX = "device-"  # the names of the GPU comparisons' files (nteach.bench.device_report)


def results_files(folder: Path) -> list[Path]:
    """The suites' and `nteach bench compile`'s results files under ``folder``; not the GPU comparisons
    (``device-*.json``, `nteach compare` runs that nteach.bench.device_report reads)."""
    return [path for path in sorted(Path(folder).glob("*.json")) if not path.name.startswith(DEVICE_PREFIX)]


def suites_in(folder: Path) -> list[dict]:
    """The results files under ``folder`` merged per suite: for each suite name, the parts that share
    the suite file and training code of its newest part; then each case that only earlier versions
    measured, from the newest of them, marked with the training code that measured it (so that re-running
    part of a suite after a change does not hide the cases it left alone)."""
    by_suite: dict[str, list[dict]] = {}
    for path in results_files(folder):
        results = read_results(path)
        if results.get("kind") == "attention":
            price_results(results)  # robust seconds at prices fitted to the file's own runs
        elif results.get("kind", "inr") == "inr":
            price_inr_results(results)  # under today's cost model, from the file's own probe
        if results.get("kind") != "compile":  # step timings, not a suite of runs (compile_results)
            by_suite.setdefault(results["suite"], []).append(results)
    merged = []
    for name in sorted(by_suite):
        groups: dict[tuple[str, str], list[dict]] = {}
        for part in sorted(by_suite[name], key=lambda r: r["provenance"]["written"], reverse=True):
            groups.setdefault((part["provenance"]["suite_hash"], part["provenance"]["code"]), []).append(part)
        newest, *earlier = groups.values()
        suite = merge(newest)
        for group in earlier:
            for case, data in merge(group)["cases"].items():
                if case not in suite["cases"]:
                    suite["cases"][case] = {**data, "earlier_code": group[0]["provenance"]["code"]}
                    suite["provenance"] += [p["provenance"] for p in group if case in p["cases"]]
        merged.append(suite)
    return merged


def compile_results(folder: Path) -> list[dict]:
    """The results files of `nteach bench compile` under ``folder``, oldest first."""
    found = [read_results(path) for path in results_files(folder)]
    return sorted((r for r in found if r.get("kind") == "compile"), key=lambda r: r["provenance"]["written"])
