"""`--compile`: a compiled fit is the eager fit up to float rounding, resumes exactly, keeps its compile
time off the training clock; `nteach bench compile` measures both and decides the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nteach.bench.compile_speed import default_on, markdown, pays, run_compile_bench
from nteach.bench.report import write_report
from nteach.compiling import COMPILE_PAYS, resolve_compile, step_work
from nteach.errors import UserError
from nteach.inr import Budget, Fit
from nteach.inr.experiment import SignalModelConfig, summarize
from nteach.inr.models import make_model
from nteach.teaching import Teacher

COMMITTED = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "results").glob("compile-cpu*.json"))


@pytest.fixture(autouse=True)
def empty_compile_cache():
    """Each test compiles from scratch, as a fresh process would (torch keeps 8 graphs a model)."""
    torch.compiler.reset()


def make_fit(signal, compile: str, steps: int = 30, teacher: str = "uniform", compile_scoring=None,
             **options) -> Fit:
    torch.manual_seed(0)
    model = make_model("siren", 2, 3, width=16, depth=2)
    return Fit(signal, model, Teacher(teacher, len(signal), ratio=0.25, seed=0, **options),
               Budget(steps=steps), lr=1e-3, eval_every=10, compile=compile, compile_scoring=compile_scoring)


def test_modes_resolve_by_device_and_architecture():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile("on", "siren", cpu) == "on" and resolve_compile("off", "siren", cpu) == "off"
    for name in ("siren", "wire"):
        assert resolve_compile("auto", name, cpu) == ("on" if name in COMPILE_PAYS else "off")
    assert resolve_compile("auto", "siren", cuda) == "off"  # not measured on a GPU yet
    assert resolve_compile("graphs", "siren", cuda) == "graphs"
    with pytest.raises(UserError, match="needs --device cuda"):
        resolve_compile("graphs", "siren", cpu)
    with pytest.raises(UserError, match="unknown compile mode"):
        resolve_compile("fast", "siren", cpu)


def test_compiled_fit_follows_the_eager_one(tiny_signal, one_thread):
    eager, fast = make_fit(tiny_signal, "off"), make_fit(tiny_signal, "on")
    eager.run(show_progress=False)
    fast.run(show_progress=False)
    assert [r["step"] for r in fast.history] == [r["step"] for r in eager.history]
    for a, b in zip(eager.history, fast.history):
        assert abs(a["psnr"] - b["psnr"]) < 1e-3, (a, b)
    for a, b in zip(eager.model.parameters(), fast.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert torch.equal(eager.counts, fast.counts)  # the same selections: no random draw was added
    assert eager.compile_seconds == 0 and fast.compile_seconds > 0
    assert summarize(fast, {})["compile_seconds"] == fast.compile_seconds


def test_an_eager_step_with_compiled_scoring_follows_the_eager_fit(tiny_signal, one_thread):
    eager = make_fit(tiny_signal, "off", teacher="nint")
    split = make_fit(tiny_signal, "off", teacher="nint", compile_scoring="on")
    eager.run(show_progress=False)
    split.run(show_progress=False)
    assert split.learner is not split.scorer and split.compile_seconds > 0  # the scorer was warmed up
    for a, b in zip(eager.history, split.history):
        assert abs(a["psnr"] - b["psnr"]) < 1e-3, (a, b)
    assert torch.equal(eager.counts, split.counts)


def test_compile_time_stays_off_the_training_clock(tiny_signal, one_thread):
    fit = make_fit(tiny_signal, "on", steps=3)
    fit.run(show_progress=False)
    # a first compile takes seconds; three steps of a 16-wide SIREN on 576 pixels take milliseconds
    assert fit.compile_seconds > 10 * fit.clock.seconds


def test_rising_ratio_runs_compiled(tiny_signal, one_thread):
    """INT's incremental interval and a linear ratio change the batch size: the warm-up's two sizes
    leave a graph for all of them, and the fit matches eager."""
    eager = make_fit(tiny_signal, "off", teacher="int", schedule="linear")
    fast = make_fit(tiny_signal, "on", teacher="int", schedule="linear")
    for fit in (eager, fast):
        fit.run(show_progress=False)
    assert abs(eager.history[-1]["psnr"] - fast.history[-1]["psnr"]) < 1e-3


def test_resume_compiled_equals_a_straight_compiled_run(tiny_signal, tmp_path, one_thread):
    straight = make_fit(tiny_signal, "on", steps=40)
    straight.run(show_progress=False)
    first_half = make_fit(tiny_signal, "on", steps=40)
    for _ in range(17):
        first_half.train_step()
    torch.save(first_half.state_dict(), tmp_path / "ck.pt")
    resumed = make_fit(tiny_signal, "on", steps=40)
    resumed.load_state_dict(torch.load(tmp_path / "ck.pt", weights_only=True))
    resumed.run(show_progress=False)
    assert resumed.step == 40
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert torch.equal(straight.counts, resumed.counts)


def test_bench_compile_measures_and_reports(tiny_png, tmp_path, one_thread):
    config = SignalModelConfig(image=str(tiny_png), size=0, width=16, depth=2)
    results = run_compile_bench(config, ["siren"], steps=20, out=tmp_path / "speed", overwrite=False,
                                show_progress=False)
    entry = results["architectures"]["siren"]
    assert set(entry["step_ms"]) == {"off", "on", "on-static"} and set(entry["score_ms"]) == {"off", "on"}
    assert all(ms > 0 for ms in entry["step_ms"].values())
    assert entry["compile_seconds"] > 0 and entry["largest_gap"] < 0.05 and entry["float_noise"] >= 0
    saved = json.loads((tmp_path / "speed" / "results.json").read_text())
    assert saved["kind"] == "compile" and "| siren |" in markdown(saved)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "speed.json").write_text(json.dumps(saved))
    assert "## Compiled steps" in write_report(tmp_path / "results")


def test_pays_needs_speed_and_the_same_fit():
    entry = {"step_ms": {"off": 5.5, "on": 4.5}, "largest_gap": 0.01, "float_noise": 0.0}
    assert pays(entry)  # 1.22x, 0.01 dB
    assert not pays({**entry, "largest_gap": 0.2})
    assert pays({**entry, "largest_gap": 0.2, "float_noise": 0.7})  # a chaotic fit: within its own noise
    assert not pays({**entry, "step_ms": {"off": 5.0, "on": 4.8}})
    assert not pays({"error": "backend failed"})


@pytest.mark.skipif(not COMMITTED, reason="no committed compile benchmark yet")
@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: path.stem)
def test_the_default_follows_the_committed_benchmarks(path):
    """At each measured size, auto compiles exactly the architectures the measurement says pay."""
    results = json.loads(path.read_text())
    config, cpu = results["config"], torch.device("cpu")
    work = step_work(round(config["ratio"] * results["points"]), config["width"])
    auto = sorted(name for name in results["architectures"]
                  if resolve_compile("auto", name, cpu, work) == "on")
    assert auto == default_on(results)


def test_small_steps_run_eagerly():
    cpu = torch.device("cpu")
    assert step_work(288, 128) == 288 * 128 * 128
    assert resolve_compile("auto", "siren", cpu, COMPILE_PAYS["siren"]) == "on"
    assert resolve_compile("auto", "siren", cpu, COMPILE_PAYS["siren"] - 1) == "off"
    assert resolve_compile("on", "siren", cpu, 1.0) == "on"  # asked for: compiled at any size


def test_full_batch_steps_count_the_whole_pool():
    assert Teacher("full", 1000, ratio=0.2).step_size() == 1000
    assert Teacher("uniform", 1000, ratio=0.2).step_size() == 200


def test_auto_compiles_the_passes_large_enough_to_gain():
    from nteach.inr.experiment import build_fit, load_signal
    config = SignalModelConfig(image="astronaut", size=32, width=128, depth=2, ratio=0.2, device="cpu",
                               steps=5)
    signal = load_signal(config)  # 1,024 pixels: the whole pool is large enough at width 128, a fifth is not
    assert step_work(len(signal), 128) >= COMPILE_PAYS["siren"] > step_work(round(0.2 * len(signal)), 128)
    small = build_fit(config, "nint", {}, signal)
    assert (small.compile, small.compile_scoring) == ("off", "on")
    full = build_fit(config, "full", {}, signal)
    assert (full.compile, full.compile_scoring) == ("on", "on")


def test_bench_compile_refuses_an_unknown_model_before_making_its_folder(tmp_path, capsys):
    from nteach.cli import main
    out = tmp_path / "speed"
    assert main(["bench", "compile", "--models", "siren,mlp", "--out", str(out), "--quiet"]) == 2
    assert "unknown architecture 'mlp'" in capsys.readouterr().err and not out.exists()


@pytest.mark.skipif(len(COMMITTED) < 2, reason="needs two committed compile benchmarks")
def test_files_measured_at_one_size_share_one_table():
    first = json.loads(COMMITTED[0].read_text())
    second = {**first, "architectures": {"other": first["architectures"][next(iter(first["architectures"]))]}}
    text = markdown(first, second, json.loads(COMMITTED[1].read_text()))
    assert text.count("### ") == 2  # two sizes measured, whatever the number of files
    table = text.split("### ")[1]
    assert "| other |" in table and all(f"| {name} |" in table for name in first["architectures"])
