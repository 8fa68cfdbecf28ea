import json
import re
from pathlib import Path

import pytest

from nteach.bench.report import RESULTS, advice, priced_low, write_report
from nteach.bench.results import merge, read_results, suites_in
from nteach.bench.screen import confirming_teachers
from nteach.bench.summary import best_peer, ratio_to, summarize_case
from nteach.cli import main
from nteach.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_seed_paired_ratio_by_hand():
    assert ratio_to([2.0, 3.0], [4.0, 3.0]) == {"ratio": pytest.approx(5 / 7), "reached": 2, "seeds": 2,
                                                 "low": 0.5, "high": 1.0}
    assert ratio_to([2.0, None], [4.0, 3.0]) == {"ratio": None, "reached": 1, "seeds": 2}


def test_best_peer_is_fastest_on_average_over_shared_seeds_and_must_reach_every_time():
    runs = {t: [{"seed": 0}, {"seed": 1}] for t in ("ours", "a", "b", "slow")}
    times = {"ours": [2.0, 2.0], "a": [1.0, 5.0], "b": [2.5, 2.5], "slow": [9.0, None]}
    assert best_peer(times, runs, "ours", ["a", "b", "slow"]) == "b"  # means: a 3.0, b 2.5
    assert best_peer(times, runs, "ours", ["slow"]) is None


def history(values, cost):
    return [{"step": 10 * k, "seconds": 1.1 * cost * k, "robust_seconds": cost * k, "psnr": v,
             "work": {"steps": 10 * k, "trained": 0, "forwarded": 0, "ntk": 0}} for k, v in enumerate(values)]


def case(runs):
    costs = {"trained": 0.0, "forwarded": 0.0, "ntk": 0.0, "step": {t: 0.1 for t in runs},
             "measured_step": {t: 0.1 if t != "fast" else 0.13 for t in runs}}
    return {"metric": "psnr", "reference": "uniform", "controls": ["twin"], "targets": None, "costs": [costs],
            "runs": {
        t: [{"seed": s, "train_seconds": h[-1]["seconds"], "history": h} for s, h in enumerate(hs)]
        for t, hs in runs.items()}}


def test_a_case_summary_by_hand():
    summary = summarize_case(case({
        "uniform": [history([5, 20, 24, 26, 26], 1.0), history([5, 21, 25, 26.5, 26.5], 1.0)],
        "twin": [history([5, 20, 24, 26, 26], 1.0), history([5, 21, 25, 26.5, 26.5], 1.0)],
        "fast": [history([5, 24, 26, 27, 27], 1.0), history([5, 23, 26, 27, 27], 1.0)]}))
    assert summary["q_ref"] == 26.0 and summary["targets"] == [23.0, 25.0, 26.0]
    fast = summary["teachers"]["fast"]["targets"]["26"]["robust_seconds"]
    # fast: 2 + 2 s; uniform: 3 s, and 2 + 1 / 1.5 s (26 is 2/3 of the way from 25 to 26.5)
    assert fast["peer"] == "uniform" and fast["ratio"] == pytest.approx(4 / (3 + 2 + 2 / 3))
    twin = summary["teachers"]["twin"]["targets"]["26"]["robust_seconds"]
    assert twin["peer"] == "uniform" and twin["ratio"] == pytest.approx(1.0)  # a control: to the reference
    uniform = summary["teachers"]["uniform"]["targets"]["26"]["robust_seconds"]
    assert uniform["peer"] == "fast"  # never the control
    assert summary["teachers"]["fast"]["raw_over_robust"] == pytest.approx(1.1)
    assert summary["teachers"]["fast"]["probe_over_robust"] == pytest.approx(1.3)  # the probe timed 0.13
    assert summary["teachers"]["uniform"]["probe_over_robust"] == pytest.approx(1.0)
    assert summary["teachers"]["fast"]["quality_at"][2] == 27.0  # at 100 % of uniform's 4 robust s


def test_a_confirming_part_without_a_screened_out_teacher_leaves_its_probe_ratio_to_the_other_part():
    data = case({"uniform": [history([5, 20, 24, 26, 26], 1.0)], "twin": [history([5, 20, 24, 26, 26], 1.0)],
                 "fast": [history([5, 24, 26, 27, 27], 1.0)]})
    confirming = {"trained": 0.0, "forwarded": 0.0, "ntk": 0.0, "step": {"uniform": 0.1, "twin": 0.1},
                  "measured_step": {"uniform": 0.12, "twin": 0.12}}  # "fast" screened out of this part
    data["costs"].append(confirming)
    teachers = summarize_case(data)["teachers"]
    assert teachers["fast"]["probe_over_robust"] == pytest.approx(1.3)  # the first part's timing alone
    assert teachers["uniform"]["probe_over_robust"] == pytest.approx(1.1)  # both parts: (0.1 + 0.12) / 0.2


def test_parts_merge_per_case_and_teacher_and_refuse_a_seed_twice():
    part = {"suite": "s", "provenance": {"code": "x"}, "cases": {"c": {"metric": "psnr", "costs": {"k": 1},
            "runs": {"uniform": [{"seed": 0}]}}}}
    other = {"suite": "s", "provenance": {"code": "x"}, "cases": {"c": {"metric": "psnr", "costs": {"k": 2},
             "runs": {"uniform": [{"seed": 1}], "sweep": [{"seed": 1}]}}}}
    merged = merge([other, part])
    assert [r["seed"] for r in merged["cases"]["c"]["runs"]["uniform"]] == [0, 1]
    assert merged["cases"]["c"]["costs"] == [{"k": 2}, {"k": 1}] and len(merged["provenance"]) == 2
    with pytest.raises(UserError, match="seed 0 in two parts"):
        merge([part, part])


def test_cases_only_an_earlier_version_measured_stay_with_its_code(tmp_path):
    def part(code, written, cases, seed=0):
        provenance = {"suite_hash": code, "code": code, "written": written}
        return {"format": 2, "suite": "s", "provenance": provenance,
                "cases": {c: {"metric": "psnr", "costs": {}, "runs": {"uniform": [{"seed": seed}]}}
                          for c in cases}}

    for name, results in {"a": part("old", "1", ["kept", "redone"]), "b": part("new", "2", ["redone"]),
                          "c": part("new", "3", ["redone"], seed=1)}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(results))
    [suite] = suites_in(tmp_path)
    assert list(suite["cases"]) == ["redone", "kept"]
    assert [r["seed"] for r in suite["cases"]["redone"]["runs"]["uniform"]] == [0, 1]  # the new parts only
    assert "earlier_code" not in suite["cases"]["redone"] and suite["cases"]["kept"]["earlier_code"] == "old"
    assert [p["code"] for p in suite["provenance"]] == ["new", "new", "old"]


def test_the_committed_page_is_what_the_report_generates():
    assert (ROOT / "docs" / "benchmarks.md").read_text() == write_report(RESULTS)


def test_every_figure_the_readme_quotes_is_in_the_report():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## What the benchmarks say", 1)[1].split("\n## ", 1)[0]
    figures = re.findall(r"\d+\.\d+", section)
    assert figures, "the README quotes no figure from the report"
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert [f for f in figures if f not in page] == []


def test_a_gpu_comparison_by_hand(tmp_path):
    from nteach.bench.device_report import device_markdown, device_results

    def run(steps, seconds, to_low, to_high):
        return {"steps": steps, "train_seconds": seconds, "time_to_target": {"30": to_low, "33": to_high}}
    comparison = {
        "config": {"image": "cat", "size": 0, "model": "siren", "width": 256, "depth": 5, "ratio": 0.2,
                   "seconds": 20.0, "seed": 0},
        "machine": {"gpu": "Some GPU", "torch": "2.x"},
        "signal": {"name": "cat", "points": 1000, "metric": "psnr"},
        "results": {"uniform": run(5000, 20.0, 10.0, 16.0), "sweep": run(4000, 20.0, 8.0, None),
                    "paced_sweep": run(6000, 18.0, 6.0, 12.0)}}
    (tmp_path / "device-x-cat-abc.json").write_text(json.dumps(comparison))
    (tmp_path / "heldout-a.json").write_text("{}")  # not a GPU comparison
    text = device_markdown(device_results(tmp_path))
    assert "### `device-x-cat-abc`" in text and "1,000 points" in text and "siren 5x256" in text
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["uniform"] == "| uniform | 5000 | 4.00 | 10.0 | 1.25 | 16.0 | 1.00 |"  # sweep missed 33
    assert rows["sweep"] == "| sweep | 4000 | 5.00 | 8.0 | 1.00 | not reached | – |"
    assert rows["paced_sweep"] == "| paced_sweep | 6000 | 3.00 | 6.0 | 0.75 | 12.0 | 0.75 |"


def test_a_gpu_comparison_over_seeds_by_hand(tmp_path):
    from nteach.bench.device_report import device_markdown, device_results

    def run(steps, seconds, to_low, to_high):
        return {"steps": steps, "train_seconds": seconds, "time_to_target": {"30": to_low, "33": to_high}}

    def comparison(seed, results):
        return {"config": {"image": "cat", "size": 0, "model": "hashgrid", "width": 64, "depth": 3,
                           "ratio": 0.2, "lr_schedule": "cosine", "seconds": 10.0, "seed": seed},
                "machine": {"gpu": "Some GPU", "torch": "2.x"},
                "signal": {"name": "cat", "points": 1000, "metric": "psnr"}, "results": results}
    seeds = [comparison(0, {"uniform": run(5000, 20.0, 10.0, 16.0), "sweep": run(4000, 20.0, 8.0, None),
                            "paced_sweep": run(6000, 18.0, 6.0, 12.0)}),
             comparison(1, {"uniform": run(4000, 20.0, 10.0, None), "sweep": run(4000, 20.0, 5.0, None),
                            "paced_sweep": run(5000, 20.0, 6.0, 15.0)}),
             comparison(2, {"uniform": run(4000, 20.0, 10.0, 14.0), "sweep": run(5000, 20.0, 9.0, 20.0),
                            "paced_sweep": run(4000, 20.0, 4.5, 7.0)})]
    for item in seeds:
        name = f"device-x-cat-hashgrid-abc-seed{item['config']['seed']}.json"
        (tmp_path / name).write_text(json.dumps(item))
    (tmp_path / "device-x-cat-abc.json").write_text(json.dumps(seeds[0]))  # another comparison, one seed
    text = device_markdown(device_results(tmp_path))
    assert "seeds 0, 1, 2" in text and "### `device-x-cat-abc`" in text
    group = text.split("### `device-x-cat-hashgrid-abc`")[1]
    rows = [line for line in group.splitlines() if line.startswith("| ")]
    by_teacher = {row.split(" | ")[0].strip("| "): row for row in rows}
    # paced_sweep's ms a step: 3.00, 4.00, 5.00; over the faster peer at target 1: 6/8, 6/5, 4.5/9; at
    # target 2: 12/16, neither peer reached it on seed 1, 7/14
    assert by_teacher["paced_sweep"] == ("| paced_sweep | 3 | 4.00 (3.00–5.00) | 0.75 (0.50–1.20) | "
                                         "0.62 (0.50–0.75), peers missed on 1 |")
    assert by_teacher["sweep"] == "| sweep | 3 | 5.00 (4.00–5.00) | 1.00 (1.00–1.00) | 1.43, missed on 2 |"
    assert by_teacher["uniform"].endswith("| 1.00 (1.00–1.00), missed on 1 |")


def test_only_a_leader_the_cost_model_prices_low_is_warned_about():
    rows = {"cheap": {"probe_over_robust": 1.2}, "dear": {"probe_over_robust": 0.85},
            "fair": {"probe_over_robust": 1.05}}
    flagged = priced_low({"c": {"teachers": rows}}, {"c": {"regime": "shape"}})
    assert flagged == {"shape": {"cheap"}}  # priced high ('dear'), a robust time only wrongs a teacher
    warning = "priced low by the cost model here"
    assert warning in advice({"shape": {"cheap": [0.8], "dear": [1.2]}}, flagged)
    assert warning not in advice({"shape": {"cheap": [1.2], "dear": [0.8]}}, flagged)


def test_the_screen_keeps_what_the_confirming_parts_ran(capsys):
    """The committed held-out shape parts: seeds 0-1 with every teacher, 2-4 with the teachers the screen
    kept; the rule in code gives the same set as each confirming part ran."""
    for case in ("camel-occupancy-siren", "armadillo-sdf-siren", "elephant-sdf-hashgrid"):
        screen, confirm = (read_results(RESULTS / f"heldout-v9-{part}-{case}.json") for part in "ab")
        kept = confirming_teachers(merge([screen])["cases"][case])
        assert set(kept) == set(confirm["cases"][case]["runs"])
        assert {"uniform", "sweep", "uniform_twin", "paced_sweep"} <= set(kept) and "nint" not in kept
    assert main(["bench", "screen", str(RESULTS / "heldout-v9-a-camel-occupancy-siren.json")]) == 0
    assert capsys.readouterr().out == (
        "camel-occupancy-siren: uniform,sweep,expansive,soft_mining,paced_sweep,uniform_twin\n")
    assert main(["bench", "screen", "no-such-file.json"]) == 2
