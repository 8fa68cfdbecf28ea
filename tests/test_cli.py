import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers import StopAfter
from nteach.cli import main
from nteach.inr.experiment import FitConfig, run_fit

SMALL = ["--size", "24", "--width", "16", "--depth", "2", "--quiet"]


COMMANDS = [(), ("fit",), ("compare",), ("bench",), ("bench", "inr"), ("bench", "attention"),
            ("bench", "compile"), ("bench", "report"), ("train",), ("train", "vit"), ("train", "encoder"),
            ("train", "lm")]


@pytest.mark.parametrize("words", COMMANDS)
def test_every_command_prints_its_help(capsys, words):
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0 and "usage: nteach" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["fit", "MISSING.png"], "no such image: MISSING.png"),
    (["fit", "camera", "--ratio", "0"], "ratio must be in (0, 1], got 0.0"),
    (["fit", "camera", "--ratio", "1.5"], "ratio must be in (0, 1], got 1.5"),
    (["fit", "camera", "--steps", "0"], "budget must be > 0"),
    (["fit", "camera", "--seconds", "-2"], "budget must be > 0"),
    (["fit", "camera", "--teacher", "magic"], "unknown teacher 'magic'"),
    (["fit", "camera", "--steps", "ten"], "argument --steps: invalid int value: 'ten'"),
    (["compare", "camera", "--teachers", "full,magic"], "unknown teacher 'magic'"),
    (["fit", "camera", "--lr-schedule", "step"], "unknown lr schedule 'step'"),
    (["compare", "camera", "--lr-schedule", "linear"], "unknown lr schedule 'linear'"),
    (["fit", "--resume", "nowhere"], "nowhere is not a run folder"),
    (["fit", "camera", "--options", "speed=2"], "bad teacher option 'speed=2': paced_sweep takes NAME=VALUE"),
    (["fit", "camera", "--options", "mix=lots"], "teacher option mix must be float, got 'lots'"),
    (["fit", "camera", "--options", "mix=2"], "paced_sweep needs temperature >= 0, 0 < mix <= 1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(main(args + ["--out", str(tmp_path / "run")] + SMALL if "--resume" not in args else args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("nteach: error:")
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_not_an_image_and_existing_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["fit", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "a")] + SMALL) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "b").mkdir()
    assert main(["fit", "camera", "--steps", "3", "--out", str(tmp_path / "b")] + SMALL) == 2
    assert "already exists; pass --resume" in capsys.readouterr().err


def test_fit_writes_a_complete_run_folder(tmp_path, tiny_png, capsys):
    out = tmp_path / "run"
    assert main(["fit", str(tiny_png), "--teacher", "nint", "--steps", "30", "--out", str(out)] + SMALL) == 0
    names = {p.name for p in out.iterdir()}
    assert {"reconstruction.png", "quality_vs_time.png", "selection_heatmap.png", "history.jsonl",
            "summary.json", "config.json", "checkpoint.pt"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temporary files left behind
    summary = json.loads((out / "summary.json").read_text())
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert summary["steps"] == 30 and summary["finished"] and summary["config"]["teacher"] == "nint"
    assert summary["final_psnr"] == history[-1]["psnr"] > history[0]["psnr"] and summary["metric"] == "psnr"
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 30 and "generator" in checkpoint["teacher"]
    assert "psnr " in capsys.readouterr().out



def test_cli_resume_reaches_the_uninterrupted_result(tmp_path):
    """With the default teacher (paced_sweep), cut inside a round (rounds of about 5 steps here)."""
    args = ["fit", "camera", "--steps", "40", "--checkpoint-every", "0"] + SMALL
    assert main(args + ["--out", str(tmp_path / "straight")]) == 0
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert summary["config"]["teacher"] == "paced_sweep" and summary["config"]["ratio"] == 0.2

    config = FitConfig(image="camera", steps=40, size=24, width=16, depth=2,
                       checkpoint_every=0, out=str(tmp_path / "cut"))
    fit, folder = run_fit(config, show_progress=False, stop=StopAfter(13))
    assert fit.step == 13 and not json.loads((folder / "summary.json").read_text())["finished"]
    assert main(["fit", "--resume", str(folder), "--quiet"]) == 0

    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert resumed["step"] == 40
    for name, value in straight["model"].items():
        assert torch.allclose(value, resumed["model"][name], atol=1e-6, rtol=0)


def test_teacher_options_reach_the_teacher_and_survive_a_resume(tmp_path):
    """--options over the teacher's INR defaults (rounds of 4 passes, jitter 0.5): the user's win, the
    rest stay; a resumed run rebuilds the same teacher from its saved settings."""
    config = FitConfig(image="camera", steps=20, size=24, width=16, depth=2, checkpoint_every=0,
                       options="temperature=0, passes=2,spaced=false", out=str(tmp_path / "run"))
    fit, folder = run_fit(config, show_progress=False, stop=StopAfter(5))
    strategy = fit.teacher.strategy
    assert (strategy.temperature, strategy.passes, strategy.spaced, strategy.jitter) == (0.0, 2, False, 0.5)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["options"] == "temperature=0, passes=2,spaced=false"
    resumed, _ = run_fit(FitConfig(**saved), resume_folder=folder, show_progress=False)
    assert resumed.step == 20 and resumed.teacher.strategy == strategy


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_damaged_checkpoint_is_one_line_and_exit_2(tmp_path, capsys, damage):
    folder = tmp_path / "run"
    assert main(["fit", "camera", "--steps", "3", "--out", str(folder)] + SMALL) == 0
    checkpoint = folder / "checkpoint.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a checkpoint" * 10)
    capsys.readouterr()
    assert main(["fit", "--resume", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot read the checkpoint" in err and "Traceback" not in err


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "nteach", "fit", "camera", "--steps", "1000000", "--out", str(out),
         "--compile", "off"] + SMALL,  # eager: a signal during a compile's warm-up stops at step 0
        stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "config.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err and f"nteach fit --resume {out}" in err
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] > 0
    assert json.loads((out / "summary.json").read_text())["steps"] == checkpoint["step"]


def test_compare_writes_table_and_plots(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "camera", "--teachers", "full,uniform", "--steps", "20", "--targets", "15,99",
                 "--out", str(out)] + SMALL)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) == {"full", "uniform"}
    assert results["results"]["full"]["time_to_target"]["99"] is None
    assert results["machine"]["torch"] == torch.__version__
    table = (out / "table.md").read_text()
    assert "| full | 20 |" in table and "not reached" in table
    for name in ("quality_vs_time.png", "reconstructions.png"):
        assert (out / name).stat().st_size > 1000
    assert "time to 15 dB" in capsys.readouterr().out


def test_module_entry_point_has_no_traceback_on_bad_input(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nteach", "fit", str(tmp_path / "none.png")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2 and done.stderr.strip().startswith("nteach: error: no such image")
