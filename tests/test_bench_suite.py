import json

import pytest

from nteach.bench.suite import aggregate, load_suite, run_suite
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


def test_aggregate_by_hand():
    runs = [{"final": {"psnr": 20.0}, "best": 21.0, "time_to_target": {"20": 2.0}},
            {"final": {"psnr": 22.0}, "best": 23.0, "time_to_target": {"20": 4.0}},
            {"final": {"psnr": 24.0}, "best": 24.0, "time_to_target": {"20": None}}]
    summary = aggregate(runs, [20.0], "psnr")
    assert summary["final"] == (22.0, 2.0)
    assert summary["time_to_target"]["20"]["reached"] == 2
    assert summary["time_to_target"]["20"]["mean_std"][0] == pytest.approx(3.0)


@pytest.mark.parametrize("change,message", [
    (("teachers = [\"full\", \"uniform\"]", "teachers = [\"full\", \"magic\"]"), "unknown teacher 'magic'"),
    (("image = \"camera\"", "image = \"camera\"\nmodel = \"kan\""), "unknown model 'kan'"),
    (("image = \"camera\"", "image = \"missing.png\""), "no such image"),
    (("image = \"camera\"", "image = \"camera\"\ncolour = 3"), "unknown setting 'colour'"),
    (("targets = [10, 99]", ""), "no targets"),
])
def test_bad_suites_fail_before_running(tmp_path, capsys, change, message):
    (tmp_path / "bad.toml").write_text(TINY.replace(*change))
    assert main(["bench", "inr", "--suite", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bundled_suites_parse():
    for name in ("quick", "full"):
        suite = load_suite(__import__("nteach.bench.suite", fromlist=["suite_path"]).suite_path(name))
        assert len(suite["teachers"]) == 8 and suite["cases"]


def test_missing_suite_file(tmp_path):
    with pytest.raises(UserError, match="no suite file"):
        run_suite(tmp_path / "none.toml", tmp_path / "out")


def test_speedup_of_a_target_reached_before_training_is_not_a_division_by_zero():
    from nteach.bench.suite import _speedup

    def summary(time):
        return {"seeds": 1, "time_to_target": {"30": {"reached": 1, "mean_std": (time, 0.0)}}}

    assert _speedup(summary(0.0), summary(0.0), "30") == "–"
    assert _speedup(summary(2.0), summary(5.0), "30") == "2.50x"
