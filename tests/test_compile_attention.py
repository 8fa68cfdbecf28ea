"""`--compile` for attention learners (`nteach train vit`, the text recipes, a Trainer with
``torch_compile``): the compiled run is the eager run up to float rounding, resumes exactly, and keeps
its compile time off the training clock."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from transformers import Trainer, TrainingArguments

from nteach.attention.recipes.lm import LMConfig
from nteach.attention.recipes.lm import run as run_lm
from nteach.attention.recipes.vit import ViTConfig, run
from nteach.cli import main
from nteach.hf import TeachingCallback
from nteach.teaching import Teacher
from test_hf import POOL, collate, pool, tiny_gpt2
from test_hf_callback import SETTINGS
from test_text_recipes import text_file  # noqa: F401 (a fixture)
from test_vit_recipe import StopAfter

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def empty_compile_cache():
    torch.compiler.reset()


def config(tmp_path, name: str, compile: str, teacher: str = "attent_complex", epochs: int = 3) -> ViTConfig:
    options = "cycles=2,k0=1,k_max=2" if teacher == "attent_complex" else ""
    return ViTConfig(data="digits", model="micro", teacher=teacher, options=options, epochs=epochs,
                     batch_size=64, max_examples=300, compile=compile, out=str(tmp_path / name))


def model_state(folder) -> dict:
    return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.parametrize("teacher", ["attent_complex", "selective_backprop"])
def test_compiled_vit_follows_the_eager_one(tmp_path, teacher):
    """A teacher that scores the pool (AtteNT-Complex) and one that filters each batch to a size of its
    own (Selective Backprop): the same selections, the same weights up to float rounding."""
    eager, eager_folder = run(config(tmp_path, "eager", "off", teacher), show_progress=False)
    fast, fast_folder = run(config(tmp_path, "fast", "on", teacher), show_progress=False)
    assert fast["examples_trained"] == eager["examples_trained"] and fast["steps"] == eager["steps"]
    a, b = model_state(eager_folder), model_state(fast_folder)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4)
    histories = [[json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
                 for folder in (eager_folder, fast_folder)]
    for x, y in zip(*histories):
        assert x["trained"] == y["trained"] and abs(x["val_loss"] - y["val_loss"]) < 1e-3
    assert eager["compile_seconds"] == 0 and fast["compile_seconds"] > 0


def test_resume_compiled_equals_a_straight_compiled_run(tmp_path):
    straight, _ = run(config(tmp_path, "straight", "on"), show_progress=False)
    cut, folder = run(config(tmp_path, "cut", "on"), show_progress=False, stop=StopAfter(7))
    assert not cut["finished"]
    resumed, _ = run(config(tmp_path, "cut", "on"), resume_folder=folder, show_progress=False)
    assert resumed["finished"] and resumed["examples_trained"] == straight["examples_trained"]
    a, b = model_state(tmp_path / "straight"), model_state(folder)
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)


def test_graphs_on_a_cpu_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "vit", "--data", "digits", "--compile", "graphs", "--device", "cpu",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs --device cuda" in err and len(err.splitlines()) == 1 and not out.exists()


def test_a_trainer_with_torch_compile_follows_the_eager_one_and_compiles_off_the_clock(tmp_path):
    """AtteNT's loss scoring (round 1) runs on the compiled model too; the warm-up compiles before the
    first round, so the teaching clock holds the steps alone."""
    def teacher():
        return Teacher("attent_simple", POOL, total_steps=3, seed=0, ratio=0.5)

    def trained(folder, **options):
        model = tiny_gpt2()
        args = TrainingArguments(output_dir=str(folder), num_train_epochs=3, **{**SETTINGS, **options})
        trainer = Trainer(model=model, args=args, train_dataset=pool(), data_collator=collate)
        return model, TeachingCallback(teacher()).attach(trainer)

    eager_model, eager_teaching = trained(tmp_path / "eager")
    fast_model, teaching = trained(tmp_path / "fast", torch_compile=True)
    for model, callback in ((eager_model, eager_teaching), (fast_model, teaching)):
        callback.trainer.train()
    for a, b in zip(eager_model.parameters(), fast_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    assert eager_teaching.compile_seconds == 0
    assert teaching.compile_seconds > 5 * teaching.clock.seconds  # seconds compiling, milliseconds stepping
    subsets = [t.teacher.state["subset"].tolist() for t in (teaching, eager_teaching)]
    assert subsets[0] == subsets[1]  # the same selection from the compiled scoring pass


def test_lm_recipe_compiled_resumes_to_the_same_end(tmp_path, text_file):  # noqa: F811
    settings = dict(data=str(text_file), from_scratch=True, seq_len=16, batch_size=4, epochs=2, layers=1,
                    width=16, heads=2, max_examples=24, lr=1e-3)
    eager, _ = run_lm(LMConfig(**settings, compile="off", out=str(tmp_path / "eager")), show_progress=False)
    whole, _ = run_lm(LMConfig(**settings, compile="on", out=str(tmp_path / "a")), show_progress=False)
    assert whole["compile_seconds"] > 0 and eager["compile_seconds"] == 0
    assert whole["final_val_loss"] == pytest.approx(eager["final_val_loss"], rel=1e-3)
    stop = threading.Event()
    stop.set()  # stops after the first step, with a checkpoint
    first, folder = run_lm(LMConfig(**settings, compile="on", out=str(tmp_path / "b")), show_progress=False,
                           stop=stop)
    assert not first["finished"]
    resumed, _ = run_lm(LMConfig(**settings, compile="on", out=str(tmp_path / "b")), resume_folder=folder,
                        show_progress=False)
    assert resumed["finished"] and resumed["steps"] == whole["steps"]
    assert resumed["final_val_loss"] == pytest.approx(whole["final_val_loss"], rel=1e-4)


def test_lm_graphs_on_a_cpu_is_one_line_and_exit_2(tmp_path, text_file, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert main(["train", "lm", "--data", str(text_file), "--from-scratch", "--compile", "graphs",
                 "--device", "cpu", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs --device cuda" in err and len(err.splitlines()) == 1 and not out.exists()
