"""`nteach fit` under torchrun: two gloo ranks on the CPU fit as one process does, resume on one, and stop
on SIGTERM with a checkpoint that resumes exactly (also in one process)."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from skimage import io

from helpers import ENV, TORCHRUN, terminate_after_first_checkpoint
from nteach.inr.experiment import FitConfig, run_fit


def write_tiny_png(path: Path) -> Path:
    y, x = np.mgrid[0:16, 0:16] / 15
    image = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], axis=-1)
    io.imsave(path, (image * 255).astype(np.uint8), check_contrast=False)
    return path


def fit_config(image: Path, out: Path, steps: int) -> FitConfig:
    return FitConfig(image=str(image), size=0, width=16, depth=2, lr=1e-3, steps=steps, teacher="nint",
                     device="cpu", checkpoint_every=0, out=str(out))


def fit_args(image: Path, out: Path, steps: int) -> list[str]:
    return ["-m", "nteach", "fit", str(image), "--size", "0", "--width", "16", "--depth", "2", "--lr", "1e-3",
            "--steps", str(steps), "--teacher", "nint", "--device", "cpu", "--quiet", "--out", str(out)]


def assert_same_weights(model: torch.nn.Module, checkpoint: dict, tolerance: float) -> None:
    for name, value in model.state_dict().items():
        assert torch.allclose(value, checkpoint["model"][name], atol=tolerance, rtol=0), name


def test_two_rank_fit_learns_writes_on_rank_0_and_resumes_on_one(tmp_path, one_thread):
    image = write_tiny_png(tmp_path / "tiny.png")
    straight, _ = run_fit(fit_config(image, tmp_path / "straight", steps=30), show_progress=False)

    out = tmp_path / "two"
    done = subprocess.run(TORCHRUN + fit_args(image, out, steps=20), capture_output=True, text=True, env=ENV,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # each file written once, whole
    summary = json.loads((out / "summary.json").read_text())
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert summary["world_size"] == 2 and summary["finished"] and summary["steps"] == 20
    assert summary["final_psnr"] > history[0]["psnr"] + 2
    assert summary["communication"]["score_bytes_largest_event"] == 2 * 2 * 128 * 4  # residual + NTK
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 20 and checkpoint["teacher"]["events"] == 20

    config = fit_config(image, out, steps=30)  # continue the two-rank run on one process, to 30 steps
    resumed, _ = run_fit(config, resume_folder=out, show_progress=False)
    assert resumed.step == 30 and resumed.teacher.events == 30
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)  # two ranks train as one process does


def test_two_ranks_compiled_train_as_one_eager_process(tmp_path, one_thread):
    """`--compile on` under torchrun: DDP's module compiled on each rank, the same fit as eager."""
    image = write_tiny_png(tmp_path / "tiny.png")
    eager, _ = run_fit(replace(fit_config(image, tmp_path / "eager", steps=20), compile="off"),
                       show_progress=False)
    out = tmp_path / "compiled"
    args = [*fit_args(image, out, steps=20), "--compile", "on"]
    done = subprocess.run(TORCHRUN + args, capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["compile_seconds"] > 0
    assert_same_weights(eager.model, torch.load(out / "checkpoint.pt", weights_only=True), 1e-4)


STEPS = 400  # the first checkpoint comes at step 20; SIGTERM lands long before the end


def test_sigterm_midway_then_resume_ends_as_an_uninterrupted_fit(tmp_path, one_thread):
    image = write_tiny_png(tmp_path / "tiny.png")
    straight, _ = run_fit(fit_config(image, tmp_path / "straight", steps=STEPS), show_progress=False)

    out = tmp_path / "cut"
    done = terminate_after_first_checkpoint(
        [sys.executable, *fit_args(image, out, STEPS), "--checkpoint-every", "20"], out)
    assert done.returncode == 130 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"nteach fit --resume {out}" in done.stderr and done.stdout == ""
    stopped = torch.load(out / "checkpoint.pt", weights_only=True)
    assert 20 <= stopped["step"] < STEPS and stopped["history"][-1]["step"] <= stopped["step"]

    resumed = subprocess.run([sys.executable, "-m", "nteach", "fit", "--resume", str(out), "--quiet"],
                             capture_output=True, text=True, env=ENV, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(out / "checkpoint.pt", weights_only=True)
    assert final["step"] == STEPS and final["teacher"]["events"] == straight.teacher.events
    assert_same_weights(straight.model, final, 1e-6)


def test_sigterm_to_torchrun_stops_both_ranks_and_the_run_resumes_exactly(tmp_path):
    image = write_tiny_png(tmp_path / "tiny.png")
    straight = subprocess.run(TORCHRUN + fit_args(image, tmp_path / "straight", STEPS), capture_output=True,
                              text=True, env=ENV, timeout=120)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert straight.stdout.count(f"-> {tmp_path / 'straight'}") == 1  # the last line, printed by rank 0 alone

    out = tmp_path / "cut"
    command = TORCHRUN + fit_args(image, out, STEPS) + ["--checkpoint-every", "20"]
    done = terminate_after_first_checkpoint(command, out)
    assert done.returncode != 0  # torchrun reports the signal it got
    assert done.stderr.count(f"nteach fit --resume {out}") == 1  # rank 0 alone says it
    stopped = torch.load(out / "checkpoint.pt", weights_only=True)
    assert 20 <= stopped["step"] < STEPS

    resumed = subprocess.run(TORCHRUN + ["-m", "nteach", "fit", "--resume", str(out), "--quiet"],
                             capture_output=True, text=True, env=ENV, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(out / "checkpoint.pt", weights_only=True)
    expected = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    assert final["step"] == STEPS and final["teacher"]["events"] == expected["teacher"]["events"]
    for name, value in expected["model"].items():  # two gloo ranks are deterministic too
        assert torch.allclose(value, final["model"][name], atol=1e-6, rtol=0), name
