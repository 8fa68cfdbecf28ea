"""Pictures of runs: quality against training time, and where the teacher looked.

Figures are built as ``matplotlib.figure.Figure`` objects, outside pyplot: the caller's backend and
open figures are never touched (``nteach.runs.save_figure`` writes them).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

CLOCK_LABELS = {"seconds": "training time (s): steps + scoring, no evaluation",
                "robust_seconds": "clock-robust training time (s): work done x unit costs"}


def quality_vs_time(runs: dict[str, list[dict]], metric: str = "psnr",
                    targets: tuple[float, ...] = (), title: str = "", clock: str = "seconds"):
    """One line per run: ``metric`` against training seconds (scoring included, evaluation excluded)."""
    figure = Figure(figsize=(7, 4.5))
    axis = figure.subplots()
    for label, history in runs.items():
        axis.plot([r[clock] for r in history], [r[metric] for r in history], label=label, lw=1.8)
    for target in targets:
        axis.axhline(target, color="grey", lw=0.8, ls=":")
    axis.set_xlabel(CLOCK_LABELS[clock])
    axis.set_ylabel(f"{metric.upper()} (dB)" if metric in ("psnr", "si_snr") else metric.upper())
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    return figure


def selection_heatmap(frequency: np.ndarray, title: str = ""):
    """How often each example was trained on, as a fraction of steps, laid out as the signal is."""
    figure = Figure(figsize=(5.5, 5))
    axis = figure.subplots()
    shown = axis.imshow(frequency, cmap="magma", vmin=0, vmax=max(float(frequency.max()), 1e-9),
                        aspect="auto" if frequency.shape[0] * 8 < frequency.shape[1] else "equal")
    axis.set_title(title)
    axis.axis("off")
    figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04, label="fraction of steps selected")
    return figure


def reconstructions(target: np.ndarray, pictures: dict[str, tuple[np.ndarray, float]], metric: str = "psnr"):
    """The target and each run's reconstruction side by side, titled with its quality."""
    panels = [("target", target, None)] + [(name, image, value) for name, (image, value) in pictures.items()]
    figure = Figure(figsize=(3 * len(panels), 3.3))
    axes = figure.subplots(1, len(panels))
    for axis, (name, image, value) in zip(np.atleast_1d(axes), panels):
        gray = image.shape[2] == 1
        axis.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None, vmin=0, vmax=1)
        if value is not None:
            name += f": {value:.2f} dB" if metric == "psnr" else f": {metric} {value:.3f}"
        axis.set_title(name)
        axis.axis("off")
    return figure
