import json

import pytest

from nteach.bench.compare import time_to_target
from nteach.bench.suite import (
    aggregate,
    best_peer_ratio,
    challenger_report,
    load_suite,
    rotated,
    run_suite,
    suite_path,
)
from nteach.cli import main
from nteach.errors import UserError

TINY = """
name = "tiny"
teachers = ["full", "uniform"]
seeds = [0, 1]
ratio = 0.25
steps = 12
width = 16
depth = 2
size = 16
eval_every = 4

[[case]]
name = "camera-siren"
image = "camera"
targets = [10, 99]
"""


def test_tiny_suite_writes_complete_results(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    assert main(["bench", "inr", "--suite", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    case = results["cases"]["camera-siren"]
    assert set(case["summary"]) == {"full", "uniform"} and results["machine"]["cores"] >= 1
    for teacher, runs in case["runs"].items():
        assert [r["seed"] for r in runs] == [0, 1] and all(r["steps"] == 12 for r in runs)
        summary = case["summary"][teacher]
        assert summary["time_to_target"]["99"]["reached"] == 0
        finals = [r["final"]["psnr"] for r in runs]
        assert summary["final"][0] == pytest.approx(sum(finals) / 2)
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "## camera-siren" in markdown and "| uniform |" in markdown and "(0/2 reached)" in markdown
    assert (tmp_path / "out" / "camera-siren.png").stat().st_size > 1000
    assert "results, tables and plots" in capsys.readouterr().out


def test_seeds_option_and_challenger_section(tmp_path):
    suite = TINY.replace('teachers = ["full", "uniform"]',
                         'teachers = ["full", "uniform", "paced_sweep", "sweep"]\n'
                         'challenger = "paced_sweep"').replace("steps = 12", "steps = 40\nlr = 0.003")
    suite += '\n[variants.sweep]\nteacher = "paced_sweep"\ntemperature = 0.0\n'  # a teacher with options
    (tmp_path / "tiny.toml").write_text(suite)
    assert main(["bench", "inr", "--suite", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "out"),
                 "--quiet", "--seeds", "3"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["seeds"] == [3] and set(results["cases"]["camera-siren"]["runs"]) == {
        "full", "uniform", "paced_sweep", "sweep"}
    runs = results["cases"]["camera-siren"]["runs"]
    mine, others = runs["paced_sweep"][0]["time_to_target"]["10"], [
        runs[t][0]["time_to_target"]["10"] for t in ("full", "uniform", "sweep")]
    entry = results["challenger"]["cases"]["camera-siren"]["10"]["fastest_other"][0]
    assert entry["ratio"] == pytest.approx(mine / min(others))
    for teacher, teacher_runs in runs.items():  # steps to the target: within the run, as its seconds are
        steps, seconds = teacher_runs[0]["steps_to_target"]["10"], teacher_runs[0]["time_to_target"]["10"]
        assert (steps is None) == (seconds is None) and (steps is None or 0 <= steps <= 40)
    assert "`paced_sweep` against the fastest other teacher" in (tmp_path / "out" / "results.md").read_text()
    assert main(["bench", "inr", "--suite", str(tmp_path / "tiny.toml"), "--seeds", "0,x"]) == 2


def test_a_variant_may_set_the_ratio(tmp_path):
    suite = TINY.replace('teachers = ["full", "uniform"]', 'teachers = ["uniform", "uniform_half"]')
    suite += '\n[variants.uniform_half]\nteacher = "uniform"\nratio = 0.5\n'
    (tmp_path / "tiny.toml").write_text(suite)
    assert main(["bench", "inr", "--suite", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    runs = json.loads((tmp_path / "out" / "results.json").read_text())["cases"]["camera-siren"]["runs"]
    # 16 x 16 = 256 pixels: the case's ratio 0.25 trains on 64 a step, the variant's 0.5 on 128
    assert {r["history"][-1]["selected"] for r in runs["uniform"]} == {64}
    assert {r["history"][-1]["selected"] for r in runs["uniform_half"]} == {128}


def test_the_uniform_key_names_the_vs_uniform_reference(tmp_path):
    suite = TINY.replace('teachers = ["full", "uniform"]', 'teachers = ["full", "uniform_half"]\n'
                         'uniform = "uniform_half"\nseeds = [0]').replace("seeds = [0, 1]\n", "").replace(
                         "steps = 12", "steps = 40\nlr = 0.003")
    suite += '\n[variants.uniform_half]\nteacher = "uniform"\nratio = 0.5\n'
    (tmp_path / "tiny.toml").write_text(suite)
    assert main(["bench", "inr", "--suite", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())["cases"]["camera-siren"]["summary"]
    full, half = (results[t]["time_to_target"]["10"]["mean_std"][0] for t in ("full", "uniform_half"))
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")
            for line in (tmp_path / "out" / "results.md").read_text().splitlines() if line.startswith("| ")}
    vs_uniform = rows["teacher"].index("vs uniform")
    assert rows["uniform_half"][vs_uniform] == "1.00x" and rows["full"][vs_uniform] == f"{half / full:.2f}x"


def test_each_seed_starts_one_teacher_further_on():
    assert [rotated(["a", "b", "c"], k) for k in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def test_challenger_ratios_by_hand():
    def run(*times):
        return {"time_to_target": {"1": times[0], "2": times[1]}}
    cases = {"a": {"targets": [1.0, 2.0], "runs": {
        "ours": [run(2.0, 6.0), run(3.0, None)],
        "uniform": [run(4.0, 8.0), run(3.0, 9.0)],
        "nint": [run(1.0, 12.0), run(6.0, None)]}}}
    table, text = challenger_report("ours", cases)
    best = table["cases"]["a"]["1"]["fastest_other"]
    assert [r["ratio"] for r in best] == [2.0, 1.0] and [r["fastest"] for r in best] == ["nint", "uniform"]
    assert [r["ratio"] for r in table["cases"]["a"]["2"]["uniform"]] == [0.75, float("inf")]
    assert table["median_at_middle_target"] == float("inf")  # the middle of [1, 2] is 2: one seed missed
    # best peer by mean: target 1, uniform 3.5 and nint 3.5 (the first listed wins a tie): 2.5 / 3.5;
    # target 2, nint missed a seed, so uniform (8.5), and ours missed one: inf
    assert table["cases"]["a"]["1"]["best_peer"] == {"ratio": pytest.approx(2.5 / 3.5), "peer": "uniform"}
    assert table["cases"]["a"]["2"]["best_peer"] == {"ratio": float("inf"), "peer": "uniform"}
    assert table["median_at_middle_target_best_peer"] == float("inf")
    assert "| a | 1 | 1.50 (1.00–2.00) | nint, uniform | 0.71 | uniform | 0.75 (0.50–1.00) |" in text
    # against uniform alone (peers): 2 / 4 and 3 / 3 on the two seeds at target 1
    table, _ = challenger_report("ours", cases, peers=["uniform"])
    assert [r["ratio"] for r in table["cases"]["a"]["1"]["fastest_other"]] == [0.5, 1.0]
    assert table["cases"]["a"]["1"]["best_peer"] == {"ratio": pytest.approx(2.5 / 3.5), "peer": "uniform"}


def test_aggregate_by_hand():
    runs = [{"final": {"psnr": 20.0}, "best": 21.0, "time_to_target": {"20": 2.0}, "steps": 100,
             "train_seconds": 1.0},
            {"final": {"psnr": 22.0}, "best": 23.0, "time_to_target": {"20": 4.0}, "steps": 100,
             "train_seconds": 2.0},
            {"final": {"psnr": 24.0}, "best": 24.0, "time_to_target": {"20": None}, "steps": 200,
             "train_seconds": 6.0}]
    summary = aggregate(runs, [20.0], "psnr")
    assert summary["final"] == (22.0, 2.0)
    assert summary["ms_per_step"][0] == pytest.approx(20.0)  # 10, 20 and 30 ms
    assert summary["time_to_target"]["20"]["reached"] == 2
    assert summary["time_to_target"]["20"]["mean_std"][0] == pytest.approx(3.0)


@pytest.mark.parametrize("change,message", [
    (("teachers = [\"full\", \"uniform\"]", "teachers = [\"full\", \"magic\"]"), "unknown teacher 'magic'"),
    (("image = \"camera\"", "image = \"camera\"\nmodel = \"kan\""), "unknown model 'kan'"),
    (("image = \"camera\"", "image = \"missing.png\""), "no such image"),
    (("image = \"camera\"", "image = \"camera\"\ncolour = 3"), "unknown setting 'colour'"),
    (("targets = [10, 99]", ""), "no targets"),
    (('"uniform"]', '"uniform", "hot"]\nvariants = { hot = { teacher = "paced_sweep", heat = 2 } }'),
     "has no option 'heat'"),
    (('"uniform"]', '"uniform"]\ncases_from = "quick"'), "give [[case]] tables or cases_from, not both"),
    (('"uniform"]', '"uniform"]\nchallenger = "uniform"\npeers = ["nint"]'), "'nint' is not one"),
    (('"uniform"]', '"uniform"]\npeers = ["full"]'), "peers need a challenger"),
    (('"uniform"]', '"uniform", "big"]\nvariants = { big = { teacher = "uniform", size = 64 } }'),
     "variant 'big' sets 'size', which only a case can set"),
    (('"uniform"]', '"uniform"]\nuniform = "uniform_01"'), "uniform = 'uniform_01' is not one of"),
])
def test_bad_suites_fail_before_running(tmp_path, capsys, change, message):
    (tmp_path / "bad.toml").write_text(TINY.replace(*change))
    assert main(["bench", "inr", "--suite", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bundled_suites_parse():
    for name in ("quick", "full", "ablation"):
        suite = load_suite(suite_path(name))
        assert "paced_sweep" in suite["teachers"] and suite["cases"]
        assert len(suite["teachers"]) == (6 if name == "ablation" else 9)
    variants = load_suite(suite_path("ablation"))["variants"]
    assert set(variants) == {"sweep", "unspaced", "weighted", "half_mix"}
    noise = load_suite(suite_path("noise"))  # the control: uniform twice, under two names
    assert noise["variants"] == {"uniform_twin": {"teacher": "uniform"}}
    assert noise["challenger"] == "uniform_twin"
    ratios = load_suite(suite_path("ratios"))  # the batch-size sweep: variants that set the ratio
    assert ratios["challenger"] == "paced_sweep_005" and len(ratios["peers"]) == 10
    assert sorted(v["ratio"] for v in ratios["variants"].values()) == [0.05] * 4 + [0.1] * 4 + [0.4]
    quick = load_suite(suite_path("quick"))
    assert [c["name"] for c in noise["cases"]] == [c["name"] for c in quick["cases"]]


def test_missing_suite_file(tmp_path):
    with pytest.raises(UserError, match="no suite file"):
        run_suite(tmp_path / "none.toml", tmp_path / "out")


def test_speedup_of_a_target_reached_before_training_is_not_a_division_by_zero():
    from nteach.bench.suite import _speedup

    def summary(time):
        return {"seeds": 1, "time_to_target": {"30": {"reached": 1, "mean_std": (time, 0.0)}}}

    assert _speedup(summary(0.0), summary(0.0), "30") == "–"
    assert _speedup(summary(2.0), summary(5.0), "30") == "2.50x"


def test_time_to_target_interpolates_between_evaluations():
    history = [{"seconds": 0.16 * k, "psnr": psnr} for k, psnr in enumerate([10.0, 19.0, 23.0, 19.5, 26.0])]
    assert time_to_target(history, 20.0) == pytest.approx(0.16 + 0.16 / 4)  # 19 -> 23 dB crosses 20 at 1/4
    assert time_to_target(history, 23.0) == pytest.approx(0.32)  # reached exactly at an evaluation
    assert time_to_target(history, 25.0) == pytest.approx(0.48 + 0.16 * 5.5 / 6.5)  # the first crossing
    assert time_to_target(history, 5.0) == 0.0 and time_to_target(history, 30.0) is None
    losses = [{"seconds": 0.0, "loss": 4.0}, {"seconds": 2.0, "loss": 2.0}]
    assert time_to_target(losses, 3.5, "loss", higher_is_better=False) == pytest.approx(0.5)
    steps = [{"step": 74 * k, "seconds": 0.1 + k, "psnr": p} for k, p in enumerate([10.0, 19.0, 23.0])]
    assert time_to_target(steps, 20.0, clock="step") == pytest.approx(74 + 74 / 4)  # that crossing, in steps


def test_steps_median_uses_the_time_best_peer():
    def run(seconds, steps):
        return {"time_to_target": {"1": seconds}, "steps_to_target": {"1": steps}}
    # by time the best peer is fast (1.0 s on average), though slow needs fewer steps (50): the steps
    # ratio is taken against fast, the peer the time ratio names: 150 / 300
    cases = {"a": {"targets": [1.0], "runs": {"ours": [run(1.5, 100), run(1.5, 200)],
                                               "fast": [run(1.0, 300), run(1.0, 300)],
                                               "slow": [run(4.0, 50), run(4.0, 50)]}},
             "b": {"targets": [1.0], "runs": {"ours": [run(2.0, 90), run(None, None)],
                                               "fast": [run(1.0, 60), run(1.0, 60)],
                                               "slow": [run(5.0, 40), run(5.0, 40)]}}}
    table, text = challenger_report("ours", cases)
    assert table["median_at_middle_target_best_peer"] == float("inf")  # median of [1.5, inf]
    assert table["median_at_middle_target_best_peer_steps"] == float("inf")  # of [0.5, inf]: b missed
    del cases["b"]
    table, text = challenger_report("ours", cases)
    assert table["median_at_middle_target_best_peer_steps"] == pytest.approx(0.5)
    assert "0.50x the same best peer's steps to it" in text
    for run_ in cases["a"]["runs"]["fast"]:
        del run_["steps_to_target"]  # results from before steps were recorded: no steps line
    table, text = challenger_report("ours", cases)
    assert table["median_at_middle_target_best_peer_steps"] is None and "steps to it" not in text


def test_best_peer_is_chosen_on_means_not_seed_by_seed():
    times = {"ours": [2.0, 2.0], "a": [1.0, 5.0], "b": [2.5, 2.5], "slow": [9.0, None]}
    # seed by seed the fastest other is a (1.0), then b (2.5); on average b (2.5) beats a (3.0)
    assert best_peer_ratio(times, "ours", ["a", "b", "slow"]) == {"ratio": pytest.approx(0.8), "peer": "b"}
    assert best_peer_ratio(times, "ours", ["slow"]) == {"ratio": None, "peer": None}
