"""`nteach bench compile`: steps per second eager against compiled, per architecture, and whether
compiling changes the fit.

For each architecture, on one signal (the astronaut at 128 px by default, ratio 0.2, uniform's steps):

- the time of a training step on a step's batch (selection, forward, backward, Adam, feedback) and of a
  no-grad scoring pass over the whole pool, eager and compiled, measured alternately in a shuffled order
  (nteach.bench.probe.alternate), median per repetition; compiled twice: warmed up as runs warm up (on a
  step's batch and on the whole pool, so that every size runs one dynamic-shape graph) and compiled for
  the step's size alone (a static graph, which a teacher whose batch size changes would recompile);
- the compile seconds of a first fit and of a second, fresh one in the same process (the cache at work);
- a fit of ``steps`` steps eager and compiled from the same seed: the largest gap in quality at equal
  steps, against the gap between two eager fits that differ only in their float rounding (another
  number of threads): whether compiling changes a result beyond float noise.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from nteach.bench.compare import machine
from nteach.bench.probe import alternate
from nteach.bench.results import git_commit, training_code_hash
from nteach.compiling import step_work
from nteach.devices import resolve_device
from nteach.errors import UserError
from nteach.inr.experiment import SignalModelConfig, build_fit, load_signal
from nteach.inr.models import MODELS
from nteach.progress import progress_bar
from nteach.runs import new_run_folder, write_json, write_text
from nteach.teaching import predict

STEPS_PER_ACTION = 10
REPETITIONS = 15
PAYS = 1.10  # compiled steps must be at least this much faster to be on by default
SAME = 0.05  # and the quality curve within this many dB (or IoU) of eager's at equal steps, or within
# eager's own float noise where that is larger


def _steps(fit) -> Callable[[], None]:
    def run() -> None:
        for _ in range(STEPS_PER_ACTION):
            fit.train_step()
    return run


def step_times(config: SignalModelConfig, signal, device: torch.device) -> dict:
    """Median seconds of a training step and a scoring pass, eager and compiled; compile seconds.

    Two blocks, each from an empty compile cache (torch.compiler.reset: this process's caches, which a
    benchmark command owns): the static graph against eager, then the dynamic one (warmed up as runs
    are) against eager; each compiled time is read as a ratio to the eager steps of its own block."""
    def fit(mode: str):  # a long budget: the timed steps stay at its start, as the runs' early steps
        return build_fit(replace(config, compile=mode, steps=10**6, seconds=None), "uniform", {}, signal,
                         device=device)

    torch.compiler.reset()
    static, eager = fit("on"), fit("off")
    static.warmed_up = True  # no warm-up: its first (untimed) steps compile for the step's size alone
    static_samples, static_paired = alternate({"off": _steps(eager), "static": _steps(static)}, device,
                                              REPETITIONS)
    static_ratio = static_paired(static_samples["static"]) / static_paired(static_samples["off"])
    torch.compiler.reset()
    modes = ["off", "on"] + (["graphs"] if device.type == "cuda" else [])
    fits = {mode: fit(mode) for mode in modes}
    for each in fits.values():
        each.warm_up()
    again = fit("on")  # a second fit of the same model in the same process: the cache at work
    again.warm_up()
    actions = {f"step:{mode}": _steps(each) for mode, each in fits.items()}
    actions.update({f"score:{mode}": (lambda each=each: predict(each.scorer, each.coords, each.chunk))
                    for mode, each in fits.items()})
    samples, paired = alternate(actions, device, REPETITIONS)
    seconds = {name: paired(values) for name, values in samples.items()}
    step_ms = {mode: 1e3 * seconds[f"step:{mode}"] / STEPS_PER_ACTION for mode in modes}
    step_ms["on-static"] = step_ms["off"] * static_ratio
    return {"step_ms": step_ms, "score_ms": {mode: 1e3 * seconds[f"score:{mode}"] for mode in modes},
            "compile_seconds": fits["on"].compile_seconds, "compile_seconds_again": again.compile_seconds,
            **({"compile_seconds_graphs": fits["graphs"].compile_seconds} if "graphs" in fits else {})}


def _curve(config: SignalModelConfig, signal, device: torch.device, steps: int, mode: str) -> dict:
    fit = build_fit(replace(config, compile=mode, steps=steps, seconds=None), "uniform", {}, signal,
                    eval_every=max(steps // 10, 1), device=device)
    fit.run(show_progress=False)
    return {r["step"]: r[signal.metric] for r in fit.history}


def _largest_gap(a: dict, b: dict) -> float:
    return max(abs(a[step] - b[step]) for step in a if step in b)


def quality_gap(config: SignalModelConfig, signal, device: torch.device, steps: int) -> dict:
    """Fits of ``steps`` steps from one seed, eager and compiled, and eager again with another number of
    CPU threads (the same arithmetic, rounded differently): the largest gap between eager and compiled,
    and between eager and itself, the float noise of that fit (large where training is chaotic)."""
    curves = {mode: _curve(config, signal, device, steps, mode) for mode in ("off", "on")}
    threads = torch.get_num_threads()
    try:  # this benchmark's process is its own: its thread count is set back at once
        torch.set_num_threads(1 if threads > 1 else 2)
        rounded = _curve(config, signal, device, steps, "off")
    finally:
        torch.set_num_threads(threads)
    return {"metric": signal.metric, "final": {mode: c[max(c)] for mode, c in curves.items()},
            "largest_gap": _largest_gap(curves["on"], curves["off"]),
            "float_noise": _largest_gap(rounded, curves["off"]), "steps": steps}


def measure(config: SignalModelConfig, architectures: list[str], steps: int, show_progress: bool) -> dict:
    """Every architecture's times and quality gap; one that fails to compile is recorded, not fatal."""
    device = resolve_device(config.device)
    signal = load_signal(config)
    results = {}
    for name in progress_bar(architectures, show=show_progress, unit="model", desc="compile"):
        case = replace(config, model=name)
        try:
            results[name] = {**step_times(case, signal, device), **quality_gap(case, signal, device, steps)}
        except Exception as error:  # a backend that cannot compile a model is a finding, not a crash
            results[name] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    return results


def pays(entry: dict) -> bool:
    """Whether compiling this architecture is on by default: fast enough, and the same fit."""
    return ("error" not in entry and entry["step_ms"]["off"] / entry["step_ms"]["on"] >= PAYS
            and entry["largest_gap"] <= max(SAME, entry["float_noise"]))


COMPILE_INTRO = (
    "\n## Compiled steps (`nteach bench compile`)\n\nEager against compiled, uniform's steps, one table per "
    "measured size. Step: selection, forward, backward, Adam; static: compiled for the step's size alone. "
    "Gap: the largest difference in quality at equal steps, compiled against eager; noise: the same for "
    "eager against eager on another number of threads (only the rounding differs). Default: on where a step "
    f"is at least {PAYS:.2f}x faster and the gap at most {SAME} or within the noise; `--compile auto` "
    "compiles an architecture from the smallest step, in points times the hidden width squared, measured "
    "to pay.\n")


def _head(results: dict) -> str:
    """The heading of one results file's table: its size, and where and how long it was measured."""
    where, config = results["provenance"]["machine"], results["config"]
    points = round(config["ratio"] * results["points"])
    work = f"{step_work(points, config['width']):.1e}".replace("e+0", "e")  # 5.4e7
    return (f"\n### {results['signal']}: {points} of {results['points']} points a step, width "
            f"{config['width']}: {work} multiply-adds a hidden layer\n\n"
            f"Depth {config['depth']}, ratio {config['ratio']}, {results['steps']} steps; {where['cpu']}, "
            f"{where['torch_threads']} threads, torch {where['torch']}.\n\n"
            "| model | step eager ms | step compiled ms | speed-up | static ms | scoring eager ms | "
            "scoring compiled ms | speed-up | compile s (again) | gap | noise | default |\n"
            + "|---" * 12 + "|\n")


def _rows(results: dict) -> list[str]:
    """A table row per architecture of one results file."""
    rows = []
    for name, e in results["architectures"].items():
        if "error" in e:
            rows.append(f"| {name} | {e['error']} |" + " |" * 10 + " off |")
            continue
        step, score = e["step_ms"], e["score_ms"]
        rows.append(f"| {name} | {step['off']:.2f} | {step['on']:.2f} | {step['off'] / step['on']:.2f}x | "
                    f"{step['on-static']:.2f} | {score['off']:.2f} | {score['on']:.2f} | "
                    f"{score['off'] / score['on']:.2f}x | {e['compile_seconds']:.1f} "
                    f"({e['compile_seconds_again']:.1f}) | {e['largest_gap']:.3f} | {e['float_noise']:.3f} | "
                    f"{'on' if pays(e) else 'off'} |")
    return rows


def markdown(*results: dict) -> str:
    """One section for results files of `nteach bench compile`: the protocol once, then a table per
    measured size, holding the rows of every file measured at that size (say, one per architecture)."""
    tables: dict[str, list[str]] = {}
    for one in results:
        tables.setdefault(_head(one), []).extend(_rows(one))
    return COMPILE_INTRO + "".join(head + "\n".join(rows) + "\n" for head, rows in tables.items())


def run_compile_bench(config: SignalModelConfig, architectures: list[str], steps: int, out: Path,
                      overwrite: bool, show_progress: bool = True) -> dict:
    """Measure, then write results.json and results.md into ``out``."""
    if steps <= 0:
        raise UserError(f"--steps must be > 0, got {steps}")
    unknown = sorted(set(architectures) - set(MODELS))
    if unknown:
        raise UserError(f"unknown architecture {unknown[0]!r}; use some of {', '.join(MODELS)}")
    folder = new_run_folder(out, overwrite)  # after every check: bad input leaves no folder behind
    start = time.perf_counter()
    signal = load_signal(config)
    results = {"format": 2, "kind": "compile", "suite": "compile", "signal": signal.name,
               "points": len(signal), "config": {"width": config.width, "depth": config.depth,
                                                 "ratio": config.ratio, "size": config.size},
               "steps": steps,
               "provenance": {"code": training_code_hash("inr"), "commit": git_commit(), "machine": machine(),
                              "written": datetime.datetime.now(datetime.timezone.utc).isoformat(
                                  timespec="seconds")},
               "architectures": measure(config, architectures, steps, show_progress)}
    results["seconds"] = round(time.perf_counter() - start, 1)
    write_json(folder / "results.json", results)
    write_text(folder / "results.md", markdown(results))
    return results


def default_on(results: dict) -> list[str]:
    """The architectures a results file says compiling pays for, sorted."""
    return sorted(name for name, entry in results["architectures"].items() if pays(entry))

