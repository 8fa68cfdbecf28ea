"""Small statistics and table cells shared by the INR and attention suites."""

from __future__ import annotations

import statistics
from pathlib import Path

from nteach.runs import write_json, write_text


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def cell(pair: tuple[float | None, float | None], digits: int = 1) -> str:
    """"mean ± std" (or "–" for nothing) for a table."""
    mean, std = pair
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"


def seed_ratios(times: dict[str, list[float | None]], teacher: str, others: list[str]) -> list[dict]:
    """Seed by seed: ``teacher``'s time to a target / the fastest of ``others`` on that seed (``times``:
    each teacher's times to the target, one per seed, None where missed). A miss counts as inf."""
    ratios = []
    for k, mine in enumerate(times[teacher]):
        theirs = {t: times[t][k] for t in others if t in times and times[t][k] is not None}
        if not theirs or (mine is not None and min(theirs.values()) == 0):
            ratios.append({"ratio": None if mine is None else 0.0, "fastest": None})
            continue
        fastest = min(theirs, key=theirs.get)
        ratios.append({"ratio": float("inf") if mine is None else mine / theirs[fastest], "fastest": fastest})
    return ratios


def ratio_cell(ratios: list[dict]) -> str:
    """Mean (min–max) of seed ratios, for a table."""
    values = [r["ratio"] for r in ratios if r["ratio"] is not None]
    if not values:
        return "–"
    mean = statistics.fmean(values)
    spread = f" ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else ""
    return f"{mean:.2f}{spread}"


def write_results(folder: Path, results: dict, report: list[str]) -> dict:
    """results.json (its runs now stored per case) and results.md, the report's parts joined."""
    del results["runs"]
    write_json(folder / "results.json", results)
    write_text(folder / "results.md", "".join(report))
    return results
