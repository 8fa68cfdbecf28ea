"""The GPU section of docs/benchmarks.md: `nteach compare` runs on a GPU, one results file each.

`scripts/device-check.sh` writes them when a session is lent a GPU; a run's file is committed as
``benchmarks/results/device-<gpu>-<case>-<commit>[-seed<N>].json``, the commit whose training code it
ran. Files that differ only in their seed suffix are one comparison over several seeds.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from nteach.bench.report import UNITS
from nteach.bench.results import DEVICE_PREFIX

PEERS = ("uniform", "sweep")  # the strongest alternatives: a teacher is read against the faster of them

INTRO = """
## On a GPU

`nteach compare` on a GPU (`scripts/device-check.sh`): each teacher trains for the same seconds from the
same initial network, one seed, one teacher after another. Targets come from the run (uniform's quality
at the end of its budget, and 3 and 1 dB below it). "× peer" is a teacher's time to a target over the
faster of uniform and sweep (below 1: faster than both). A single seed: read differences under about
10 % as noise (uniform's step cost, the same code, moved by that much between two machines). Over
several seeds, a row gives the median over the seeds and, in brackets, their range; each seed's targets
come from its own uniform run.
"""


def device_results(results: Path) -> list[tuple[str, dict]]:
    """(file stem, contents) of every GPU comparison in ``results``, by name."""
    paths = sorted(results.glob(f"{DEVICE_PREFIX}*.json"))
    return [(path.stem, json.loads(path.read_text())) for path in paths]


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


def _network(config: dict) -> str:
    """"siren 5x256", "hashgrid", ... and the learning-rate schedule, as the headers give them."""
    model = config["model"]
    if model != "hashgrid":
        model += f" {config['depth']}x{config['width']}"
    return f"{model}, ratio {config['ratio']}, lr schedule {config.get('lr_schedule', 'constant')}"


def comparison_markdown(name: str, comparison: dict) -> str:
    """One comparison's table: steps, milliseconds a step, time to each target and its ratio to the peer."""
    config, machine, runs = comparison["config"], comparison["machine"], comparison["results"]
    unit = UNITS[comparison["signal"]["metric"]]
    targets = list(next(iter(runs.values()))["time_to_target"])
    size = "its own size" if not config["size"] else f"{config['size']} px"
    header = (f"\n### `{name}`\n\n{config['image']} ({comparison['signal']['points']:,} points) at {size}, "
              f"{_network(config)}, {config['seconds']:g} s a teacher, seed {config['seed']}; "
              f"{machine['gpu']}, torch {machine['torch']}.\n\n")
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


def by_seeds(comparisons: list[tuple[str, dict]]) -> dict[str, list[dict]]:
    """The comparisons grouped by file stem without its ``-seed<N>`` suffix, each group in seed order."""
    groups: dict[str, list[dict]] = {}
    for name, comparison in comparisons:
        groups.setdefault(re.sub(r"-seed\d+$", "", name), []).append(comparison)
    return {name: sorted(group, key=lambda c: c["config"]["seed"]) for name, group in groups.items()}


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def _over_peer(group: list[dict], teacher: str, k: int) -> str:
    """``teacher``'s time to each seed's k-th target over the faster peer's, as one cell: median and range
    over the seeds where both reached it, then how often the teacher, or both peers, missed it."""
    ratios, missed, peers_missed = [], 0, 0
    for results in (c["results"] for c in group if teacher in c["results"]):
        target = list(results[teacher]["time_to_target"])[k]
        mine, peer = results[teacher]["time_to_target"][target], faster_peer(results, target)
        if mine is None:
            missed += 1
        elif peer is None:
            peers_missed += 1
        else:
            ratios.append(mine / peer)
    counts = (("missed", missed), ("peers missed", peers_missed))
    notes = [f"{who} on {count}" for who, count in counts if count]
    return ", ".join(([_spread(ratios)] if ratios else ["–"]) + notes)


def seeds_markdown(name: str, group: list[dict]) -> str:
    """A comparison over several seeds: per teacher, the median and range over seeds of the cost a step
    and of the time over the faster peer's at each target (targets by position: each seed has its own)."""
    first = group[0]
    config, machine = first["config"], first["machine"]
    seeds = ", ".join(str(c["config"]["seed"]) for c in group)
    unit = UNITS[first["signal"]["metric"]]
    header = (f"\n### `{name}`\n\n{config['image']} ({first['signal']['points']:,} points), "
              f"{_network(config)}, {config['seconds']:g} s a teacher, seeds {seeds}; {machine['gpu']}, "
              f"torch {machine['torch']}. Targets: each seed's uniform quality at the end, and 3 and 1 "
              f"{unit} below it (lowest first).\n\n")
    count = len(next(iter(first["results"].values()))["time_to_target"])
    columns = ["teacher", "seeds", "ms a step"] + [f"× peer, target {k + 1}" for k in range(count)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for teacher in first["results"]:
        runs = [c["results"][teacher] for c in group if teacher in c["results"]]
        cells = [teacher, str(len(runs)),
                 _spread([1e3 * r["train_seconds"] / r["steps"] for r in runs])]
        cells += [_over_peer(group, teacher, k) for k in range(count)]
        lines.append("| " + " | ".join(cells) + " |")
    return header + "\n".join(lines) + "\n"


def device_markdown(comparisons: list[tuple[str, dict]]) -> str:
    """The section: its notes, then one table per comparison (one per group of seeds)."""
    parts = [comparison_markdown(name, group[0]) if len(group) == 1 else seeds_markdown(name, group)
             for name, group in by_seeds(comparisons).items()]
    return INTRO + "".join(parts)
