"""`nteach compare`: several teachers on the same signal, network and seed, one after another."""

from __future__ import annotations

import os
import platform
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from nteach.bench.targets import derive_targets, reference_quality, start_quality, time_to_target
from nteach.errors import UserError
from nteach.inr.experiment import SignalModelConfig, build_fit, load_signal
from nteach.inr.fit import quality
from nteach.runs import new_run_folder, save_figure, write_json, write_text

REFERENCES = ("uniform", "full")  # whose end-of-budget quality sets the targets, the first one run


@dataclass
class CompareConfig(SignalModelConfig):
    """`nteach compare`: each teacher fits the same signal from the same initial network."""

    teachers: str = field(default="full,uniform,sweep,nint,paced_sweep",
                          metadata={"help": "comma-separated teachers"})
    targets: str | None = field(default=None, metadata={"help": (
        "comma-separated targets of the signal's metric (PSNR for images, SI-SNR for audio, IoU for "
        "shapes); default: from the runs, uniform's (else full's) quality at the end of its budget and "
        "3 and 1 dB (0.03 and 0.01 IoU) below it")})
    out: str | None = field(default=None, metadata={"help": "results folder (default runs/compare-IMAGE)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing results folder"})

    def teacher_names(self) -> list[str]:
        names = [name.strip() for name in self.teachers.split(",") if name.strip()]
        if not names:
            raise UserError("give at least one teacher")
        return names

    def target_values(self) -> list[float] | None:
        """The targets the user gave, sorted; None: derive them from the runs."""
        if self.targets is None:
            return None
        try:
            return sorted(float(t) for t in self.targets.split(",") if t.strip())
        except ValueError:
            raise UserError(f"targets must be numbers separated by commas, got {self.targets!r}") from None


def run_result(history: list[dict], steps: int, seconds: float, metric: str, targets: list[float]) -> dict:
    """What a finished run contributes to a comparison: times to targets, final and best quality."""
    return {
        "steps": steps, "train_seconds": seconds,
        "final": quality(history[-1]),
        "best": max(r[metric] for r in history),
        "time_to_target": {f"{t:g}": time_to_target(history, t, metric) for t in targets},
        "steps_to_target": {f"{t:g}": time_to_target(history, t, metric, clock="step") for t in targets},
        "history": history,
    }


def comparison_targets(given: list[float] | None, histories: dict[str, list[dict]],
                       metric: str) -> list[float]:
    """The user's targets less those some run met at step 0 (with a warning), or targets from the runs."""
    start = start_quality(list(histories.values()), metric)
    if given is None:
        reference = next((t for t in REFERENCES if t in histories), next(iter(histories)))
        targets = derive_targets(reference_quality([histories[reference]], metric), metric, start)
    else:
        targets = [t for t in given if t > start]
        if len(targets) < len(given):
            warnings.warn(f"targets met before training ({metric} {start:.3g} at step 0) dropped: "
                          f"{', '.join(f'{t:g}' for t in given if t <= start)}", stacklevel=2)
    if not targets:
        warnings.warn(f"no target above the quality at step 0 ({metric} {start:.3g}): nothing to time; "
                      "give --targets or a longer budget", stacklevel=2)
    return targets


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the timings were measured on."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": gpu, "torch": torch.__version__, "python": platform.python_version()}


def _ratio(value: float | None, reference: dict | None, key: str) -> str:
    """value / full's time; when full never reached the target, a bound from full's whole budget."""
    if value is None or reference is None:
        return "–"
    full_time = reference["time_to_target"][key]
    if full_time is None:
        return f"< {value / reference['train_seconds']:.2f}"
    return f"{value / full_time:.2f}" if full_time > 0 else "–"


def table(results: dict[str, dict], targets: list[float], metric: str = "psnr") -> str:
    """Markdown: time to each target and final quality, with ratios to `full` when it ran."""
    reference = results.get("full")
    unit = " dB" if metric in ("psnr", "si_snr") else ""
    header = ["teacher", "steps"]
    for target in targets:
        header += [f"time to {target:g}{unit} (s)", "× full"]
    header += [f"{metric.upper()} at budget", "Δ full"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in results.items():
        row = [name, str(result["steps"])]
        for target in targets:
            seconds = result["time_to_target"][f"{target:g}"]
            row += ["not reached" if seconds is None else f"{seconds:.1f}",
                    _ratio(seconds, reference, f"{target:g}")]
        final = result["final"][metric]
        delta = f"{final - reference['final'][metric]:+.2f}" if reference else "–"
        row += [f"{final:.3f}" if metric == "iou" else f"{final:.2f}", delta]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def run_compare(config: CompareConfig, show_progress: bool = True) -> tuple[dict, Path]:
    """Run every teacher, then write results.json, table.md and the plots into one folder."""
    from nteach.viz import quality_vs_time, reconstructions

    names = config.teacher_names()
    signal = load_signal(config)
    metric = signal.metric
    given = config.target_values()
    fits = {name: build_fit(config, name, {}, signal) for name in names}  # validates all before running
    folder = new_run_folder(Path(config.out or f"runs/compare-{signal.name}"), config.overwrite)
    runs, pictures, compiling = {}, {}, {}
    for name, fit in fits.items():
        if show_progress:
            print(f"== {name}")
        fit.run(show_progress=show_progress)
        runs[name] = (fit.history, fit.step, fit.clock.seconds)
        compiling[name] = fit.compile_seconds
        pictures[name] = (signal.preview(fit.predictions()), fit.history[-1][metric])
        fits[name] = None  # free the network before the next teacher
    targets = comparison_targets(given, {name: run[0] for name, run in runs.items()}, metric)
    results = {name: {**run_result(*run, metric, targets), "compile_seconds": compiling[name]}
               for name, run in runs.items()}
    markdown = table(results, targets, metric)
    if any(compiling.values()):
        seconds = ", ".join(f"{name} {value:.1f} s" for name, value in compiling.items())
        markdown += f"\nCompiled (torch.compile) before each clock started: {seconds}; not in the times.\n"
    write_json(folder / "results.json", {"machine": machine(), "config": asdict(config),
                                         "signal": {"name": signal.name, "points": len(signal),
                                                    "metric": metric},
                                         "results": results})
    write_text(folder / "table.md", markdown)
    save_figure(folder / "quality_vs_time.png", quality_vs_time(
        {n: r["history"] for n, r in results.items()}, metric=metric, targets=tuple(targets),
        title=f"{signal.name} ({len(signal)} points), {config.model} {config.depth}x{config.width}, "
              f"ratio {config.ratio}"))
    save_figure(folder / "reconstructions.png",
                reconstructions(signal.preview(signal.targets), pictures, metric))
    return results, folder


