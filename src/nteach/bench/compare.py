"""`nteach compare`: several teachers on the same signal, network and seed, one after another."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from nteach.errors import UserError
from nteach.inr.experiment import SignalModelConfig, build_fit, load_signal
from nteach.inr.fit import Fit
from nteach.runs import new_run_folder, save_figure, write_json, write_text

DEFAULT_TARGETS = {"psnr": "22,25,28", "iou": "0.8,0.9,0.95"}  # by the signal's metric

@dataclass
class CompareConfig(SignalModelConfig):
    """`nteach compare`: each teacher fits the same signal from the same initial network."""

    teachers: str = field(default="full,uniform,nint,paced_sweep",
                          metadata={"help": "comma-separated teachers"})
    targets: str | None = field(default=None, metadata={"help": (
        "comma-separated targets of the signal's metric (default: 22,25,28 dB for PSNR, 0.8,0.9,0.95 "
        "for IoU)")})
    out: str | None = field(default=None, metadata={"help": "results folder (default runs/compare-IMAGE)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing results folder"})

    def teacher_names(self) -> list[str]:
        names = [name.strip() for name in self.teachers.split(",") if name.strip()]
        if not names:
            raise UserError("give at least one teacher")
        return names

    def target_values(self, metric: str = "psnr") -> list[float]:
        text = self.targets if self.targets is not None else DEFAULT_TARGETS[metric]
        try:
            return sorted(float(t) for t in text.split(",") if t.strip())
        except ValueError:
            raise UserError(f"targets must be numbers separated by commas, got {text!r}") from None


def time_to_target(history: list[dict], target: float, metric: str = "psnr",
                   higher_is_better: bool = True, clock: str = "seconds") -> float | None:
    """Training seconds at which ``target`` was first reached (None if never): linearly interpolated
    between the evaluation that first reached it and the one before, so that a time is not rounded up
    to the next evaluation (at 50 evaluations a run, that rounding alone moved ratios by up to 30 %).
    ``clock="step"``: the same in training steps, which the machine's timing noise does not move."""
    sign = 1.0 if higher_is_better else -1.0  # a loss reaches its target from above
    for k, record in enumerate(history):
        if sign * record[metric] >= sign * target:
            if k == 0:
                return record[clock]
            before = history[k - 1]
            share = (target - before[metric]) / (record[metric] - before[metric])
            return before[clock] + share * (record[clock] - before[clock])
    return None


def run_result(fit: Fit, targets: list[float]) -> dict:
    """What a finished run contributes to a comparison: times to targets, final and best quality."""
    metric, last = fit.signal.metric, fit.history[-1]
    return {
        "steps": fit.step, "train_seconds": fit.clock.seconds,
        "final": {k: v for k, v in last.items() if k not in ("step", "seconds", "selected")},
        "best": max(r[metric] for r in fit.history),
        "time_to_target": {f"{t:g}": time_to_target(fit.history, t, metric) for t in targets},
        "steps_to_target": {f"{t:g}": time_to_target(fit.history, t, metric, clock="step") for t in targets},
        "history": fit.history,
    }


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
    unit = " dB" if metric == "psnr" else ""
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
        row += [f"{final:.2f}" if metric == "psnr" else f"{final:.3f}", delta]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def run_compare(config: CompareConfig, show_progress: bool = True) -> tuple[dict, Path]:
    """Run every teacher, then write results.json, table.md and the plots into one folder."""
    from nteach.viz import quality_vs_time, reconstructions

    names = config.teacher_names()
    signal = load_signal(config)
    metric = signal.metric
    targets = config.target_values(metric)
    fits = {name: build_fit(config, name, {}, signal) for name in names}  # validates all before running
    folder = new_run_folder(Path(config.out or f"runs/compare-{signal.name}"), config.overwrite)
    results, pictures = {}, {}
    for name, fit in fits.items():
        if show_progress:
            print(f"== {name}")
        fit.run(show_progress=show_progress)
        results[name] = run_result(fit, targets)
        pictures[name] = (signal.preview(fit.predictions()), fit.history[-1][metric])
        fits[name] = None  # free the network before the next teacher
    markdown = table(results, targets, metric)
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


