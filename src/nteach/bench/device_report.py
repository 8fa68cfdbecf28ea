"""The GPU section of docs/benchmarks.md: `nteach compare` runs on a GPU, one results file each.

`scripts/device-check.sh` writes them when a session is lent a GPU; a run's file is committed as
``benchmarks/results/device-<gpu>-<case>-<commit>.json``, the commit whose training code it ran.
"""

from __future__ import annotations

import json
from pathlib import Path

from nteach.bench.report import UNITS

PEERS = ("uniform", "sweep")  # the strongest alternatives: a teacher is read against the faster of them

INTRO = """
## On a GPU

`nteach compare` on a GPU (`scripts/device-check.sh`): each teacher trains for the same seconds from the
same initial network, one seed, one teacher after another. Targets come from the run (uniform's quality
at the end of its budget, and 3 and 1 dB below it). "× peer" is a teacher's time to a target over the
faster of uniform and sweep (below 1: faster than both). A single seed: read differences under about
10 % as noise (uniform's step cost, the same code, moved by that much between two machines).
"""


def device_results(results: Path) -> list[tuple[str, dict]]:
    """(file stem, contents) of every GPU comparison in ``results``, by name."""
    return [(path.stem, json.loads(path.read_text())) for path in sorted(results.glob("device-*.json"))]


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f}"


def _ratio(value: float | None, peer: float | None) -> str:
    if value is None or peer is None:
        return "–"
    return f"{value / peer:.2f}"


def faster_peer(runs: dict, target: str) -> float | None:
    """The faster of uniform's and sweep's times to ``target``; None if neither reached it."""
    times = [runs[p]["time_to_target"][target] for p in PEERS if p in runs]
    reached = [t for t in times if t is not None]
    return min(reached) if reached else None


def comparison_markdown(name: str, comparison: dict) -> str:
    """One comparison's table: steps, milliseconds a step, time to each target and its ratio to the peer."""
    config, machine, runs = comparison["config"], comparison["machine"], comparison["results"]
    unit = UNITS[comparison["signal"]["metric"]]
    targets = list(next(iter(runs.values()))["time_to_target"])
    size = "its own size" if not config["size"] else f"{config['size']} px"
    network = (f"{config['model']}" if config["model"] == "hashgrid"
               else f"{config['model']} {config['depth']}x{config['width']}")
    header = (f"\n### `{name}`\n\n{config['image']} ({comparison['signal']['points']:,} points) at {size}, "
              f"{network}, ratio {config['ratio']}, "
              f"{config['seconds']:g} s a teacher, seed {config['seed']}; {machine['gpu']}, torch "
              f"{machine['torch']}.\n\n")
    columns = ["teacher", "steps", "ms a step"]
    for target in targets:
        columns += [f"time to {target} {unit} (s)", "× peer"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for teacher, run in runs.items():
        cells = [teacher, str(run["steps"]), f"{1e3 * run['train_seconds'] / run['steps']:.2f}"]
        for target in targets:
            seconds = run["time_to_target"][target]
            cells += [_seconds(seconds), _ratio(seconds, faster_peer(runs, target))]
        lines.append("| " + " | ".join(cells) + " |")
    return header + "\n".join(lines) + "\n"


def device_markdown(comparisons: list[tuple[str, dict]]) -> str:
    """The section: its notes, then one table per comparison."""
    return INTRO + "".join(comparison_markdown(name, c) for name, c in comparisons)
