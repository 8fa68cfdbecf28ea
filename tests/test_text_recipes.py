"""`nteach train lm` and `nteach train encoder` end to end, on text and tiny models the tests make."""

from __future__ import annotations

import json
import logging
import random
import threading
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from helpers import StopAfter  # noqa: E402
from nteach.attention.recipes.lm import LMConfig, run  # noqa: E402
from nteach.attention.text import passages  # noqa: E402
from nteach.cli import main  # noqa: E402

WORDS = {"comedy": "fool sings love jest wedding merry dance wit".split(),
         "history": "king crown battle england france lord war throne".split(),
         "tragedy": "death blood grave ghost murder poison tears night".split()}
COMMON = "the and of to a my is that in you".split()
TINY_LM = ["--from-scratch", "--seq-len", "16", "--batch-size", "4", "--epochs", "2", "--layers", "1",
           "--width", "16", "--heads", "2", "--max-examples", "24", "--lr", "1e-3", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")


def prose(words: list[str], count: int, seed: int) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(words + COMMON) for _ in range(10)) for _ in range(count // 10))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(prose(sum(WORDS.values(), []), 600, seed=0), encoding="utf-8")
    return path


def test_passages_cut_whole_word_runs():
    assert passages("a b c d e f g", 3) == ["a b c", "d e f"]
    assert passages("a b", 3) == ["a b"]


def test_lm_from_scratch_writes_a_complete_run_folder(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    teacher = ["--teacher", "attent_simple"]  # its schedule is known in advance
    assert main(["train", "lm", "--data", str(text_file), "--out", str(out), *teacher, *TINY_LM]) == 0
    summary = json.loads((out / "summary.json").read_text())
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert summary["finished"] and summary["epochs"] == 2
    assert summary["steps"] == 6 + 5  # 24 examples, then 17 cycled up to 20
    assert [r["epoch"] for r in history] == [0, 1, 2] and all(r["val_perplexity"] > 1 for r in history)
    assert json.loads((out / "config.json").read_text())["teacher"] == "attent_simple"
    assert (out / "val_loss_vs_time.png").is_file()
    checkpoint = out / "checkpoints" / "checkpoint-11"
    assert {"teaching.pt", "model.safetensors", "optimizer.pt", "scheduler.pt"} <= {
        p.name for p in checkpoint.iterdir()}
    assert f"run folder: {out}" in capsys.readouterr().out


def test_lm_stopped_run_resumes_to_the_same_end(tmp_path, text_file):
    config = dict(data=str(text_file), from_scratch=True, seq_len=16, batch_size=4, epochs=2, layers=1,
                  width=16, heads=2, max_examples=24, lr=1e-3)
    whole, _ = run(LMConfig(**config, out=str(tmp_path / "a")), show_progress=False)
    stop = threading.Event()
    stop.set()  # stops after the first step, with a checkpoint
    first, folder = run(LMConfig(**config, out=str(tmp_path / "b")), show_progress=False, stop=stop)
    assert not first["finished"] and first["steps"] == 1
    resumed, _ = run(LMConfig(**config, out=str(tmp_path / "b")), resume_folder=folder, show_progress=False)
    assert resumed["finished"] and resumed["steps"] == whole["steps"]
    assert resumed["examples_trained"] == whole["examples_trained"]
    assert resumed["final_val_loss"] == pytest.approx(whole["final_val_loss"], rel=1e-4)


@pytest.mark.parametrize("teacher, steps", [("attent_simple", 12 + 9), ("infobatch", None)])  # None: unknown
def test_lm_resumed_mid_round_with_dropout_ends_as_the_uninterrupted_run(tmp_path, one_thread, teacher,
                                                                          steps):
    from safetensors.torch import load_file

    text = tmp_path / "text.txt"
    generator = torch.Generator().manual_seed(0)
    text.write_text("".join("abcdefgh ."[i] for i in torch.randint(0, 10, (4000,), generator=generator)))
    settings = dict(data=str(text), from_scratch=True, seq_len=16, batch_size=4, epochs=2, layers=1, width=16,
                    heads=2, max_examples=48, lr=1e-3, device="cpu",  # GPT-2's dropout of 0.1 is on
                    teacher=teacher)

    def weights(folder: Path) -> dict:
        last = max(folder.glob("checkpoints/checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
        return load_file(last / "model.safetensors")

    whole, _ = run(LMConfig(**settings, out=str(tmp_path / "whole")), show_progress=False)
    config = LMConfig(**settings, out=str(tmp_path / "cut"))
    cut, folder = run(config, show_progress=False, stop=StopAfter(14))
    assert cut["steps"] == 15 and not cut["finished"]  # the first round's 12 steps, then 3 of the second
    resumed, _ = run(config, resume_folder=folder, show_progress=False)
    assert resumed["steps"] == whole["steps"] == (steps or whole["steps"]) > 15
    assert resumed["examples_trained"] == whole["examples_trained"]
    expected, got = weights(tmp_path / "whole"), weights(folder)
    assert all(torch.equal(expected[name], got[name]) for name in expected)  # the same dropout masks


def tokenizer_folder(tmp_path):
    """A word-level BERT tokenizer over the test vocabulary, saved like a downloaded model's."""
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sum(WORDS.values(), []), *COMMON]
    return BertTokenizerFast(vocab={word: i for i, word in enumerate(words)})


def test_lm_lora_on_a_local_model_folder(tmp_path, text_file, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer, folder = tokenizer_folder(tmp_path), tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=1, n_head=2,
                               bos_token_id=2, eos_token_id=3)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    args = ["train", "lm", "--data", str(text_file), "--model", str(folder), "--lora-rank", "2",
            "--seq-len", "8", "--batch-size", "4", "--epochs", "2", "--max-examples", "16",
            "--out", str(tmp_path / "r"), "--quiet"]
    capsys.readouterr()
    assert main(args) == 0
    assert (tmp_path / "r" / "checkpoints" / "checkpoint-7" / "adapter_model.safetensors").is_file()
    assert "Loading weights" not in capsys.readouterr().err  # --quiet: transformers' own bars too


def test_hf_quiet_hides_transformers_bars_inside_and_leaves_a_users_choice():
    from transformers.utils import logging as hf_logging

    from nteach.attention.recipes.text_training import hf_quiet

    hf_logging.enable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    with hf_quiet(show_bars=False, show_logs=False):
        assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == hf_logging.ERROR
    assert hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == verbosity
    hf_logging.disable_progress_bar()  # as a user's HF_HUB_DISABLE_PROGRESS_BARS would
    try:
        with hf_quiet(show_bars=True):
            assert not hf_logging.is_progress_bar_enabled()
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()


class Recorded(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_encoder_classifies_passages_from_class_folders(tmp_path):
    from transformers import BertConfig, BertModel

    tokenizer, model_folder = tokenizer_folder(tmp_path), tmp_path / "bert"
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=64)).save_pretrained(model_folder)
    tokenizer.save_pretrained(model_folder)
    data = tmp_path / "genres"
    for seed, (genre, words) in enumerate(WORDS.items()):
        (data / genre).mkdir(parents=True)
        for part in range(2):
            (data / genre / f"{part}.txt").write_text(prose(words, 200, seed * 10 + part), encoding="utf-8")
    out = tmp_path / "run"
    args = ["train", "encoder", "--data", str(data), "--model", str(model_folder), "--passage-words", "10",
            "--seq-len", "16", "--batch-size", "4", "--epochs", "2", "--lr", "1e-3", "--teacher", "infobatch",
            "--out", str(out), "--quiet"]
    reports, verbosity = Recorded(), transformers.logging.get_verbosity()
    logging.getLogger("transformers").addHandler(reports)  # transformers' log does not reach capsys
    try:
        transformers.logging.set_verbosity_warning()
        assert main(args) == 0
        quiet = "".join(reports.messages)
        transformers.logging.set_verbosity_warning()  # a Trainer leaves it at its log_level, error
        loud = [*args[:-3], "--out", str(tmp_path / "loud"), "--epochs", "1"]
        assert main(loud) == 0
    finally:
        logging.getLogger("transformers").removeHandler(reports)
        transformers.logging.set_verbosity(verbosity)
    assert "LOAD REPORT" not in quiet and "LOAD REPORT" in "".join(reports.messages)  # not under --quiet
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and 0.0 <= summary["final_val_accuracy"] <= 1.0
    assert (out / "val_accuracy_vs_time.png").is_file()


@pytest.mark.parametrize("case", ["empty", "not utf-8", "seq len", "batch size", "model", "teacher"])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, text_file, capsys, case):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"" if case == "empty" else b"\xff\xfe not text")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    data = str(bad) if case in ("empty", "not utf-8") else str(text_file)
    extra = {"seq len": ["--seq-len", "0"], "batch size": ["--batch-size", "-2"],
             "model": ["--model", str(broken)], "teacher": ["--teacher", "nint_please"]}.get(case, [])
    options = TINY_LM[1:] if case == "model" else TINY_LM  # --model needs a pretrained model
    assert main(["train", "lm", "--data", data, "--out", str(tmp_path / "r"), *options, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nteach: error:") and "\n" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("teacher", ["attent_complex", "infobatch", "selective_backprop", "uniform_subset",
                                     "uniform", "full"])
def test_lm_runs_with_every_teacher(tmp_path, text_file, teacher):
    options = "cycles=1,k0=1,k_max=1" if teacher in ("attent_complex", "uniform_subset") else ""
    summary, _ = run(LMConfig(data=str(text_file), from_scratch=True, seq_len=16, batch_size=4, epochs=2,
                              layers=1, width=16, heads=2, max_examples=24, teacher=teacher, options=options,
                              out=str(tmp_path / "r")), show_progress=False)
    assert summary["finished"] and summary["steps"] > 0 and summary["final_val_loss"] < 10


def test_skip_first_eval_the_default_teacher_and_the_callers_verbosity(tmp_path, text_file):
    transformers.logging.set_verbosity_warning()
    _, folder = run(LMConfig(data=str(text_file), from_scratch=True, seq_len=16, batch_size=4, epochs=2,
                             layers=1, width=16, heads=2, max_examples=24, skip_first_eval=True,
                             out=str(tmp_path / "r")), show_progress=False)
    epochs = [json.loads(line)["epoch"] for line in (folder / "history.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    assert json.loads((folder / "config.json").read_text())["teacher"] == "infobatch"
    assert transformers.logging.get_verbosity() == transformers.logging.WARNING  # the Trainer's is put back
