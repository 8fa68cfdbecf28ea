import json
import math
import random

import pytest

from nteach.bench.attention import (
    load_attention_suite,
    run_attention_suite,
    summarize,
    versus_full,
)
from nteach.bench.suite import suite_path
from nteach.cli import main
from nteach.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = """
name = "tiny"
teachers = ["full", "attent_simple", "uniform_subset", "paced_sweep"]
challenger = "paced_sweep"
seeds = [0]

[[case]]
name = "vit-digits"
recipe = "vit"
data = "digits"
model = "micro"
epochs = 3
batch_size = 64
lr = 3e-3
tolerance = 0.02
options = { uniform_subset = "cycles=1,k0=1,k_max=1" }

[[case]]
name = "lm-tiny"
recipe = "lm"
data = "TEXT"
from_scratch = true
seq_len = 16
batch_size = 4
epochs = 2
layers = 1
width = 16
heads = 2
max_examples = 24
lr = 1e-3
tolerance = 0.05
teachers = ["full", "attent_simple"]
"""


@pytest.fixture
def suite_file(tmp_path):
    rng = random.Random(0)
    words = "the king and fool sing of love and death in the night".split()
    text = tmp_path / "tiny.txt"
    text.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(60)))
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("TEXT", str(text)))
    return path


def test_tiny_suite_writes_every_run(tmp_path, suite_file, capsys):
    out = tmp_path / "out"
    assert main(["bench", "attention", "--suite", str(suite_file), "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["cases"]) == {"vit-digits", "lm-tiny"} and results["machine"]["cores"] >= 1
    for name, teachers in (("vit-digits", {"full", "attent_simple", "uniform_subset", "paced_sweep"}),
                           ("lm-tiny", {"full", "attent_simple"})):
        case = results["cases"][name]
        assert set(case["runs"]) == teachers == set(case["summary"])
        for runs in case["runs"].values():
            (run,) = runs
            assert run["seed"] == 0 and (out / run["folder"] / "history.jsonl").is_file()
            assert math.isfinite(run["train_seconds"]) and run["train_seconds"] > 0
            assert math.isfinite(run["final"]) and run["history"][-1][case["metric"]] == run["final"]
        full = case["runs"]["full"][0]
        assert full["ratio"] == 1.0 and full["time_to_target"] <= full["train_seconds"]
    assert results["cases"]["lm-tiny"]["metric"] == "val_loss"
    runs = results["cases"]["vit-digits"]["runs"]
    theirs = [runs[t][0]["time_to_target"] for t in ("full", "attent_simple", "uniform_subset")]
    mine, theirs = runs["paced_sweep"][0]["time_to_target"], [t for t in theirs if t is not None]
    (entry,) = results["challenger"]["cases"]["vit-digits"]
    assert entry["ratio"] == (float("inf") if mine is None else pytest.approx(mine / min(theirs)))
    assert "lm-tiny" not in results["challenger"]["cases"]  # paced_sweep did not run there
    assert "`paced_sweep` against the fastest other teacher" in (out / "results.md").read_text()
    markdown = (out / "results.md").read_text()
    assert "## vit-digits" in markdown and "| attent_simple |" in markdown and "tolerance 0.02" in markdown
    assert (out / "vit-digits.png").stat().st_size > 1000 and (out / "lm-tiny.png").is_file()
    assert "results, tables and plots" in capsys.readouterr().out


def history(*points):
    return [{"seconds": seconds, "val_accuracy": value, "val_loss": value} for seconds, value in points]


def test_time_to_full_accuracy_within_tolerance():
    full = history((0, 0.1), (10, 0.80), (20, 0.85), (30, 0.90))
    faster = history((0, 0.1), (6, 0.86), (12, 0.898), (18, 0.899))
    result = versus_full(faster, full, "val_accuracy", 0.003)
    assert result["target"] == pytest.approx(0.897)
    # interpolated between the evaluations around the crossing: 6 + 6 * 0.037 / 0.038, 20 + 10 * 0.047 / 0.05
    assert result["time_to_target"] == pytest.approx(6 + 6 * 37 / 38)
    assert result["full_time_to_target"] == pytest.approx(29.4)
    assert result["ratio"] == pytest.approx((6 + 6 * 37 / 38) / 29.4)
    assert result["saved_percent"] == pytest.approx(100 * (1 - (6 + 6 * 37 / 38) / 29.4))
    never = versus_full(history((0, 0.1), (5, 0.5)), full, "val_accuracy", 0.003)
    assert never["time_to_target"] is None and never["ratio"] is None and never["saved_percent"] is None
    assert versus_full(full, full, "val_accuracy", 0.0)["ratio"] == 1.0


def test_time_to_full_loss_goes_down_to_it():
    full = history((0, 4.0), (10, 2.0), (20, 1.50))
    slower = history((0, 4.0), (10, 1.56), (20, 1.52), (30, 1.40))
    result = versus_full(slower, full, "val_loss", 0.01)
    assert result["target"] == pytest.approx(1.51)
    # a loss crosses from above: 20 + 10 * (1.51 - 1.52) / (1.40 - 1.52); full 10 + 10 * 0.49 / 0.5
    assert result["time_to_target"] == pytest.approx(20 + 10 / 12)
    assert result["full_time_to_target"] == pytest.approx(19.8)
    assert result["ratio"] == pytest.approx((20 + 10 / 12) / 19.8)
    reached_at_start = versus_full(full, history((0, 0.9), (5, 0.905)), "val_loss", 0.01)
    assert reached_at_start["full_time_to_target"] == 0 and reached_at_start["ratio"] is None


def test_summary_over_seeds_counts_what_was_reached():
    runs = [{"train_seconds": 10.0, "final": 0.8, "best": 0.8, "time_to_target": 4.0, "ratio": 0.5,
             "saved_percent": 50.0},
            {"train_seconds": 12.0, "final": 0.9, "best": 0.9, "time_to_target": None, "ratio": None,
             "saved_percent": None}]
    summary = summarize(runs)
    assert summary["seeds"] == 2 and summary["reached"] == 1
    assert summary["train_seconds"] == (11.0, pytest.approx(math.sqrt(2)))
    assert summary["time_to_target"] == (4.0, 0.0) and summary["saved_percent"] == (50.0, 0.0)


@pytest.mark.parametrize("change,message", [
    (("epochs = 3", "epochs = 3\ncolour = 3"), "case 1: unknown setting 'colour' for recipe vit"),
    (("recipe = \"vit\"", "recipe = \"cnn\""), "recipe must be one of"),
    (("seeds = [0]", "seeds = [0]\nbudget = 3"), "unknown setting 'budget'"),
    (("\"attent_simple\", \"uniform_subset\"", "\"magic\", \"uniform_subset\""), "unknown teacher 'magic'"),
    (("[\"full\", \"attent_simple\"]", "[\"attent_simple\"]"), "case 2: its teachers need 'full'"),
    (("data = \"digits\"", "data = \"nowhere\""), "no such dataset folder: nowhere"),
    (("epochs = 3", "epochs = \"3\""), "epochs must be int, got '3'"),
    (("epochs = 3", "epochs = 3\nseed = 4"), "'seed' is set by the bench"),
    (("tolerance = 0.02", ""), "tolerance must be a number >= 0"),
    (("uniform_subset = ", "infobatch = "), "options for 'infobatch', which is not one of its teachers"),
    (("batch_size = 64", "batch_size = 0"), "batch size must be > 0"),
])
def test_bad_suites_fail_before_running(tmp_path, suite_file, capsys, change, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(suite_file.read_text().replace(*change))
    assert main(["bench", "attention", "--suite", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("nteach: error:") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_missing_suite_file(tmp_path, capsys):
    with pytest.raises(UserError, match="no suite file"):
        run_attention_suite(tmp_path / "none.toml", tmp_path / "out")
    assert main(["bench", "attention", "--suite", str(tmp_path / "none.toml")]) == 2


def test_bundled_suites_parse():
    for name in ("quick", "full"):
        suite = load_attention_suite(suite_path(name, "attention"))
        assert "full" in suite["teachers"] and {case.recipe for case in suite["cases"]} >= {"vit", "lm"}
