"""One TeachingTrainer run of a text recipe in its run folder: progress bar, validation after every
epoch (off the clock), history, summary, plot, checkpoints (teacher state included), stop and resume.

Under torchrun or accelerate launch every rank runs it (the Trainer's DDP); rank 0 alone writes.
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from huggingface_hub.errors import StrictDataclassError
from tqdm.auto import tqdm
from transformers import PrinterCallback, TrainerCallback, TrainingArguments
from transformers.utils import logging as hf_logging

from nteach.attention.recipes.text_common import CHECKPOINTS, TextConfig
from nteach.compiling import resolve_compile
from nteach.devices import resolve_device
from nteach.errors import UserError
from nteach.hf import TeachingTrainer
from nteach.launch import Ranks, agree_on_progress
from nteach.progress import progress_bar, show_status
from nteach.runs import HISTORY, save_figure, write_json, write_jsonl

Evaluate = Callable[[], dict]  # validation metrics of the model as it is now


def load_model(load: Callable, what: str):
    """``load()``, with a model or tokenizer that does not load reported on one line."""
    try:
        return load()
    except (OSError, ValueError, KeyError, TypeError, StrictDataclassError) as error:
        message = " ".join(str(error).split())[:200] or type(error).__name__  # one line
        raise UserError(f"cannot load {what}: {message}") from None


PEFT_NOISE = (".*is_gradient_checkpointing.*", "Could not find a config file")  # peft's, nothing to act on


@contextmanager
def hf_quiet(show_bars: bool, show_logs: bool = True):
    """Inside the block: transformers' own progress bars (loading, converting, writing a model) hidden
    unless ``show_bars``, its log below errors (a model's load report) hidden unless ``show_logs``, and
    peft's warnings that ask nothing of a user hidden; after it, as they were."""
    was_shown, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    if not show_bars:
        hf_logging.disable_progress_bar()
    if not show_logs:
        hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            for noise in PEFT_NOISE:
                warnings.filterwarnings("ignore", message=noise)
            yield
    finally:
        if was_shown:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)


def training_arguments(config: TextConfig, folder: Path) -> TrainingArguments:
    schedule = "constant_with_warmup" if config.lr_schedule == "constant" else config.lr_schedule
    device = resolve_device(config.device)
    compile = resolve_compile(config.compile, "text", device)
    return TrainingArguments(
        output_dir=str(folder / CHECKPOINTS), num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.lr, lr_scheduler_type=schedule,
        warmup_steps=config.warmup, weight_decay=config.weight_decay, save_strategy="epoch",
        save_total_limit=1, eval_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
        seed=config.seed, use_cpu=device.type == "cpu", dataloader_num_workers=0,
        log_level="error", ddp_find_unused_parameters=False, torch_compile=compile != "off",
        torch_compile_mode="reduce-overhead" if compile == "graphs" else None)  # warm-up: nteach.hf.compiled


class RunCallback(TrainerCallback):
    """Progress bar, stop on request, and validation after each complete epoch, written to the history.

    Every rank validates (the same model, the same history); rank 0 writes. A stop asked on any
    rank stops every rank after the same step.
    """

    def __init__(self, trainer: TeachingTrainer, evaluate: Evaluate, history: list[dict], folder: Path,
                 bar: tqdm, stop: threading.Event | None, first_eval: bool = True) -> None:
        self.trainer, self.evaluate, self.history = trainer, evaluate, history
        self.folder, self.bar, self.stop, self.first_eval = folder, bar, stop, first_eval
        self.ranks = Ranks.current()

    def record(self, state) -> None:
        t = self.trainer.teaching
        metrics = self.evaluate()
        self.history.append({
            "epoch": t.round, "steps": state.global_step, "seconds": t.clock.seconds, "examples": t.examples,
            "work": dict(t.work),
            "trained": t.round_examples if t.round else 0,
            "train_loss": t.loss_sum / t.round_examples if t.round and t.round_examples else None, **metrics})
        if self.ranks.is_main:
            write_jsonl(self.folder / HISTORY, self.history)
        show_status(self.bar, ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()))

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.history and self.first_eval:
            self.record(state)

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.n = self.trainer.teaching.progress()
        self.bar.update(0)
        if agree_on_progress(0.0, self.stop is not None and self.stop.is_set(), self.ranks)[1]:
            control.should_save = control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        teaching = self.trainer.teaching
        if teaching.steps == 0 and teaching.round > (self.history[-1]["epoch"] if self.history else 0):
            self.record(state)


def run_training(trainer: TeachingTrainer, config: TextConfig, folder: Path, history: list[dict],
                 checkpoint: str | None, evaluate: Evaluate, metric: str, title: str, show_progress: bool,
                 stop: threading.Event | None) -> dict:
    """Train (or resume) with a progress bar; write summary.json and the metric-vs-time plot."""
    from nteach.viz import quality_vs_time

    trainer.remove_callback(PrinterCallback)
    bar_format = "{l_bar}{bar}| {n:.2f}/{total} epochs [{elapsed}<{remaining}{postfix}]"
    is_main = Ranks.current().is_main
    bar = progress_bar(total=config.epochs, show=show_progress and is_main, bar_format=bar_format)
    try:  # transformers' own bars (writing checkpoints) would break ours
        with hf_quiet(show_bars=False):
            trainer.add_callback(RunCallback(trainer, evaluate, history, folder, bar, stop,
                                             first_eval=not config.skip_first_eval))
            trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        bar.close()
    best = max if metric == "val_accuracy" else min
    teaching = trainer.teaching
    summary = {"finished": teaching.round >= config.epochs, "teacher": config.teacher,
               "epochs": teaching.round,
               "steps": trainer.state.global_step, "examples_trained": teaching.examples,
               "train_seconds": teaching.clock.seconds, "compile_seconds": teaching.compile_seconds,
               f"final_{metric}": history[-1][metric],
               f"best_{metric}": best(r[metric] for r in history), "config": asdict(config)}
    if is_main:
        figure = quality_vs_time({config.teacher: history}, metric=metric, title=title)
        figure.axes[0].set_ylabel(metric.replace("_", " "))
        save_figure(folder / f"{metric}_vs_time.png", figure)
        write_jsonl(folder / HISTORY, history)
        write_json(folder / "summary.json", summary)
    return summary
