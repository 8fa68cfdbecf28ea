import json
import math
import random
import statistics

import pytest

from nteach.bench.attention import load_attention_suite, run_attention_suite
from nteach.bench.attention_clock import robust_seconds
from nteach.bench.attention_report import summarize_case
from nteach.bench.suite import suite_path
from nteach.cli import main
from nteach.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = """
name = "tiny"
teachers = ["full", "attent_simple", "uniform_subset", "paced_sweep"]
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
    assert results["format"] == 2 and results["kind"] == "attention" and results["suite"] == "tiny"
    provenance = results["provenance"]
    assert provenance["suite_file"] == "tiny.toml" and provenance["machine"]["cores"] >= 1
    assert set(results["cases"]) == {"vit-digits", "lm-tiny"}
    for name, teachers in (("vit-digits", {"full", "attent_simple", "uniform_subset", "paced_sweep"}),
                           ("lm-tiny", {"full", "attent_simple"})):
        case = results["cases"][name]
        costs = case["costs"]
        assert costs["unit"] == ("example" if name == "vit-digits" else "token")
        assert costs["forwarded"] > 0  # the probe's
        fitted = costs["fitted"]  # the clock's: every run's stretches, every teacher scoring or not
        assert fitted["unit"] == costs["unit"] and min(fitted["trained"], fitted["loop"]) >= 0
        assert fitted["trained"] + fitted["loop"] > 0
        assert fitted["segments"] == sum(len(r["history"]) - (r["history"][0]["steps"] == 0)
                                         for runs in case["runs"].values() for r in runs)
        medians = costs["medians"]  # a tiny model's half batch can time as long as its whole one:
        assert (costs["trained"] > 0) == (medians["train_all"] > medians["train_half"])  # then 0, not < 0
        assert set(case["runs"]) == teachers
        for runs in case["runs"].values():
            (run,) = runs
            assert run["seed"] == 0 and math.isfinite(run["train_seconds"]) and run["train_seconds"] > 0
            last = run["history"][-1]
            assert last["robust_seconds"] == pytest.approx(robust_seconds(last["work"], fitted))
            assert last["work"]["trained"] == run["examples"] and last["work"]["steps"] == last["steps"]
        assert case["runs"]["full"][0]["history"][-1]["work"]["forwarded"] == 0  # full scores nothing
    vit = results["cases"]["vit-digits"]["runs"]
    epochs, pool = 3, vit["full"][0]["examples"] // 3
    assert vit["full"][0]["examples"] == epochs * pool  # every epoch the whole pool
    assert vit["attent_simple"][0]["examples"] == pool + 2 * round(0.7 * pool)  # then the hardest 70 %
    markdown = (out / "results.md").read_text()
    assert "### vit-digits" in markdown and "| attent_simple |" in markdown and "plus 0.05" in markdown
    assert (out / "vit-digits.png").stat().st_size > 1000 and (out / "lm-tiny.png").is_file()
    assert "results, tables and plots" in capsys.readouterr().out


def test_a_part_runs_only_its_cases_and_teachers(tmp_path, suite_file):
    results = run_attention_suite(suite_file, tmp_path / "out", show_progress=False, cases=["vit-digits"],
                                  teachers=["full", "uniform_subset"])
    assert list(results["cases"]) == ["vit-digits"]
    assert set(results["cases"]["vit-digits"]["runs"]) == {"full", "uniform_subset"}
    with pytest.raises(UserError, match="no case 'nope'"):
        run_attention_suite(suite_file, tmp_path / "other", cases=["nope"])


def record(seconds, value, steps=0, trained=0):
    return {"seconds": seconds, "robust_seconds": seconds / 2, "val_accuracy": value,
            "work": {"steps": steps, "trained": trained, "forwarded": 0}}


def run(seed, examples, *points):
    return {"seed": seed, "examples": examples, "train_seconds": points[-1][0],
            "history": [record(*p) for p in points]}


def test_compile_applies_to_every_case_of_a_part(tmp_path, suite_file):
    out = tmp_path / "out"
    assert main(["bench", "attention", "--suite", str(suite_file), "--cases", "lm-tiny", "--teachers", "full",
                 "--compile", "on", "--out", str(out), "--quiet"]) == 0
    case = json.loads((out / "results.json").read_text())["cases"]["lm-tiny"]
    assert case["settings"]["compile"] == "on" and case["runs"]["full"][0]["compile_seconds"] > 0


def test_times_to_full_within_tolerance_over_full_and_the_best_peer():
    case = {"metric": "val_accuracy", "tolerance": 0.003, "runs": {
        "full": [run(0, 300, (0, 0.1), (10, 0.80), (20, 0.85), (30, 0.90)),
                 run(1, 300, (0, 0.1), (10, 0.8), (20, 0.903))],
        "fast": [run(0, 200, (0, 0.1), (6, 0.86), (12, 0.898), (18, 0.899)),
                 run(1, 200, (0, 0.1), (5, 0.9))],
        "never": [run(0, 100, (0, 0.1), (5, 0.5)), run(1, 100, (0, 0.1), (5, 0.5))]}}
    summary = summarize_case(case)
    assert summary["targets"] == {0: pytest.approx(0.897), 1: pytest.approx(0.9)}
    # interpolated between evaluations: 6 + 6 * 0.037 / 0.038 and 20 + 10 * 0.047 / 0.05 on seed 0;
    # 0 + 5 * 0.8 / 0.8 and 10 + 10 * 0.1 / 0.103 on seed 1
    fast_s0, full_s0, fast_s1, full_s1 = 6 + 6 * 37 / 38, 29.4, 5.0, 10 + 10 * 0.1 / 0.103
    fast = summary["teachers"]["fast"]
    assert fast["seconds"]["full"]["ratio"] == pytest.approx((fast_s0 + fast_s1) / (full_s0 + full_s1))
    assert fast["seconds"]["full"]["low"] == pytest.approx(fast_s1 / full_s1)
    assert fast["robust_seconds"]["full"]["ratio"] == pytest.approx(fast["seconds"]["full"]["ratio"])
    assert fast["peer"] == "full" and fast["examples"] == pytest.approx(2 / 3)
    assert summary["teachers"]["full"]["peer"] == "fast"
    never = summary["teachers"]["never"]
    assert never["reached"] == 0 and never["seconds"]["full"]["ratio"] is None
    assert summary["gain"] == pytest.approx(statistics.median([0.05, 0.103]))


def test_loss_targets_come_from_above():
    history = [{"seconds": s, "robust_seconds": s, "val_loss": v, "work": {}}
               for s, v in ((0, 4.0), (10, 2.0), (20, 1.5))]
    slower = [{"seconds": s, "robust_seconds": s, "val_loss": v, "work": {}}
              for s, v in ((0, 4.0), (10, 1.56), (20, 1.52), (30, 1.40))]
    case = {"metric": "val_loss", "tolerance": 0.01, "runs": {
        "full": [{"seed": 0, "examples": 1, "history": history}],
        "slow": [{"seed": 0, "examples": 1, "history": slower}]}}
    summary = summarize_case(case)
    assert summary["targets"][0] == pytest.approx(1.51) and summary["gain"] == pytest.approx(0.25)
    # 20 + 10 * (1.51 - 1.52) / (1.40 - 1.52) against full's 10 + 10 * 0.49 / 0.5
    assert summary["teachers"]["slow"]["seconds"]["full"]["ratio"] == pytest.approx((20 + 10 / 12) / 19.8)


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
    for name in ("quick", "full", "dev", "heldout", "device"):
        suite = load_attention_suite(suite_path(name, "attention"))
        assert "full" in suite["teachers"] and {case.recipe for case in suite["cases"]} >= {"vit", "lm"}
    for name in ("dev", "heldout"):  # the three regimes, every dataset teacher, three seeds
        suite = load_attention_suite(suite_path(name, "attention"))
        assert [case.recipe for case in suite["cases"]] == ["lm", "vit", "encoder"]
        assert len(suite["seeds"]) >= 3
        assert set(suite["teachers"]) == {"full", "uniform_subset", "attent_simple", "attent_complex",
                                          "infobatch", "selective_backprop", "paced_sweep"}


def test_the_report_states_each_claim_against_its_own_case():
    from nteach.bench.attention_report import attention_markdown

    def lm_run(seed, seconds, losses, examples):
        history = [{"seconds": s, "robust_seconds": s / 2, "val_loss": v, "val_loss_se": 0.04,
                    "work": {"steps": 1}} for s, v in zip(seconds, losses)]
        return {"seed": seed, "examples": examples, "train_seconds": seconds[-1], "history": history}

    case = {"recipe": "lm", "settings": {"data": "jargon"}, "options": "", "metric": "val_loss",
            "tolerance": 0.05, "costs": [{"unit": "token", "trained": 1e-3, "forwarded": 5e-4, "fitted": {
                "unit": "token", "loop": 0.01, "trained": 2e-3, "forwarded": 6e-4, "segments": 6,
                "median_error": 0.031}}],
            "runs": {
                "full": [lm_run(0, (0, 10, 20, 30), (4.0, 3.5, 3.2, 3.15), 300),
                         lm_run(1, (0, 10, 20, 30), (4.0, 3.6, 3.3, 3.25), 300)],
                "attent_simple": [lm_run(0, (0, 10, 16, 22), (4.0, 3.5, 3.2, 3.16), 240),
                                  lm_run(1, (0, 10, 16, 22), (4.0, 3.6, 3.3, 3.27), 240)]}}
    merged = {"suite": "attention-heldout", "kind": "attention", "cases": {"lm-case": case},
              "provenance": [{"code": "abc", "machine": {"cpu": "cpu", "torch_threads": 2, "torch": "2"}}]}
    text = attention_markdown(merged)
    # targets 3.20 and 3.30: full reaches them at 20 s, attent_simple at 16 s, on both seeds
    assert "`attent_simple` on LoRA fine-tuning of pretrained LLMs: the paper reports 13 % less time; " \
           "`lm-case` measured 0.80x full's time to its target, 20.0 % less" in text
    assert "| attent_simple | 2 | 0.80 (0.80–0.80) | 0.80 (0.80–0.80) |" in text
    assert "| 0.80 | 3.2150 ± 0.0778 |" in text  # examples over full's, final loss
    assert "Full's last epoch gained +1.54 % (not flat yet)" in text  # the median of 1.56 % and 1.52 %
    assert ("Prices (one per part): 2 ms a token trained, 0.6 ms a token scored, 10 ms a step besides "
            "(fitted to 6 stretches of the runs, median error 3.1 %; the probe: 1 ms trained, 0.5 ms scored)"
            in text)
