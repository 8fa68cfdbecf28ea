"""The ViT recipe's loop: one epoch is one selection event, the learning rate a function of the position
in the run, the clock on training and scoring only; checkpoints resume exactly."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from nteach.attention.data import ImageSet, accuracy_se
from nteach.attention.loop import Teaching, global_batches, new_work
from nteach.attention.losses import classification_losses
from nteach.attention.recipes.teachers import parse_options
from nteach.attention.vit import make_vit
from nteach.compiling import compiled, mark_step, resolve_compile
from nteach.devices import resolve_device
from nteach.errors import UserError
from nteach.launch import Ranks
from nteach.progress import progress_bar, show_status
from nteach.run_state import RunState, WithRunState
from nteach.runs import CHECKPOINT, HISTORY, save_checkpoint, save_figure, write_json, write_jsonl
from nteach.seeding import seeded
from nteach.teaching import Teacher
from nteach.timing import synchronize

if TYPE_CHECKING:
    from nteach.attention.recipes.vit import ViTConfig

CHUNK = 1024  # images per no-grad forward in scoring and validation passes
# paced_sweep on the ViT: importance weights and half of the pool an epoch, where its own defaults (no
# weights, 0.7) took 1.19x InfoBatch's time; chosen on the dev suite (0.88x over four seeds,
# docs/experiments.md). A user's --options and --ratio win.
PACED_SWEEP_OPTIONS, PACED_SWEEP_RATIO = {"weighted": True}, 0.5


def teacher_settings(config: ViTConfig) -> tuple[dict, float | None]:
    """(hyperparameters, ratio) of the run's teacher: the user's, over the recipe's own for paced_sweep."""
    options = parse_options(config.teacher, config.options)
    if config.teacher != "paced_sweep":
        return options, config.ratio
    return {**PACED_SWEEP_OPTIONS, **options}, PACED_SWEEP_RATIO if config.ratio is None else config.ratio


def learning_rate(progress: float, peak: float, schedule: str, warmup: float) -> float:
    """Linear warm-up over ``warmup`` of the run, then cosine or linear decay to 0 at progress 1."""
    if progress < warmup:
        return peak * progress / warmup
    t = min((progress - warmup) / (1.0 - warmup), 1.0)
    return peak * (0.5 * (1.0 + math.cos(math.pi * t)) if schedule == "cosine" else 1.0 - t)


class Training(WithRunState):
    """Model, AdamW, teaching, clock, history and position (epoch, batch): checkpointable between steps.

    ``ranks``: this process's place in a process group (default: the initialised one, if any); under
    one, ``device`` is this rank's. Everything but the model's wrapper is global: the same on every rank.
    """

    def __init__(self, config: ViTConfig, train: ImageSet, validation: ImageSet, num_classes: int,
                 device: torch.device | None = None, ranks: Ranks | None = None) -> None:
        self.config, self.device = config, device or resolve_device(config.device)
        self.run_state = RunState(self.device, new_work(), ranks, seed=config.seed)  # clock, work, RNG stream
        self.ranks = self.run_state.ranks
        size = train.images.shape[-1]
        patch = config.patch_size or max(1, size // 4)
        if size % patch:
            raise UserError(f"patch size {patch} does not divide the image size {size}")
        with seeded(config.seed):  # the network's initialisation, as the INR side does
            self.model = make_vit(config.model, size, patch, num_classes, train.images.shape[1])
        self.model = self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        options, ratio = teacher_settings(config)
        teacher = Teacher(config.teacher, len(train), ratio=ratio, seed=config.seed,
                          total_steps=config.epochs, **options)
        self.teaching = Teaching(teacher, seed=config.seed, ranks=self.ranks)
        self.train = ImageSet(train.images.to(self.device), train.labels.to(self.device))
        self.validation = ImageSet(validation.images.to(self.device), validation.labels.to(self.device))
        self.epoch = self.batch = self.steps = self.examples = 0
        self.epoch_examples, self.loss_sum = 0, 0.0  # this epoch's, for its mean training loss
        self.history: list[dict] = []
        self.compile = resolve_compile(config.compile, "vit", self.device)
        self.scorer = compiled(self.model, self.compile)  # no-grad passes: scoring, filtering, evaluation
        self.learner = self.scorer if self.ranks.size == 1 else compiled(self._data_parallel(), self.compile)
        self.compile_seconds = 0.0  # the warm-up's, off the training clock
        self.warmed_up = self.compile == "off"

    def _data_parallel(self) -> DistributedDataParallel:
        """The model under DDP, for the training forward (scoring and evaluation use the bare model)."""
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=device_ids)

    def score(self, name: str) -> torch.Tensor:
        """A per-example score of this rank's shard of the pool (all of it in one process): the no-grad
        loss (on the clock)."""
        if name != "loss":
            raise UserError(f"the ViT recipe cannot compute the score {name!r}")
        shard = self.teaching.shard
        self.work["forwarded"] += len(range(len(self.train))[shard])
        return self.losses(ImageSet(self.train.images[shard], self.train.labels[shard]))

    @torch.no_grad()
    def losses(self, data: ImageSet, chunk: int = CHUNK) -> torch.Tensor:
        self.model.eval()
        out = torch.cat([classification_losses(self.scorer(data.images[i:i + chunk]),
                                               data.labels[i:i + chunk]) for i in range(0, len(data), chunk)])
        self.model.train()
        return out

    def step(self, index: torch.Tensor, batches: int) -> None:
        """One AdamW step on the batch ``index`` (this rank's share of the ``self.batch``-th global batch
        of ``batches`` this epoch)."""
        progress = (self.epoch + self.batch / batches) / self.config.epochs
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(progress, self.config.lr, self.config.lr_schedule, self.config.warmup)
        images, labels = self.train.images[index], self.train.labels[index]
        keep = self.teaching.keep(lambda: classification_losses(self.scorer(images), labels))
        if self.teaching.teacher.filters_batches:
            self.work["forwarded"] += len(images)
        images, labels, index = images[keep], labels[keep], index[keep]
        self.work["trained"] += len(images)
        self.work["steps"] += 1
        mark_step(self.compile)
        losses = classification_losses(self.learner(images), labels)
        loss = self.teaching.loss(index, losses)
        observed = self.teaching.observed  # every rank's losses of this global batch: the same everywhere
        total = float(observed.sum())
        if not math.isfinite(total):  # every rank sees it, so every rank stops
            raise UserError(f"the loss became {total / len(observed)} at epoch {self.epoch}; "
                            "lower the learning rate")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.loss_sum += total
        self.epoch_examples += len(observed)
        self.examples += len(observed)
        self.steps += 1

    def train_epoch(self, bar: tqdm, stop: threading.Event | None) -> bool:
        """Train (the rest of) this epoch; False if ``stop`` was set (on any rank) before it ended."""
        size = self.config.batch_size
        if self.batch == 0:
            self.epoch_examples, self.loss_sum = 0, 0.0
        with self.clock.running():
            selection = self.teaching.start_epoch(self.epoch, self.score, skip=self.batch * size)
        batches = len(global_batches(selection.size(len(self.train)), size, self.ranks.size))
        for index in self.teaching.batches(size):
            if self.run_state.agree(stop):
                return False
            with self.clock.running():
                self.step(torch.tensor(index, device=self.device), batches)
            self.batch += 1
            bar.n = self.epoch + self.batch / batches  # exact, so the bar never overshoots
            bar.update(0)
        self.run_state.agree(None)  # rank 0's clock for the epoch's record; a stop is agreed at the next step
        self.epoch, self.batch = self.epoch + 1, 0
        return True

    def warm_up(self) -> None:
        """Compile before the clock runs (once; nothing when not compiling): a training forward and
        backward on a batch of this rank's share and on one of half as many, so that smaller batches
        (an epoch's last, a filtered one) run the dynamic-shape graph compiled here; then the no-grad
        passes at two sizes. No optimizer step, no random draw: the run's path is unchanged."""
        if self.warmed_up:
            return
        start = time.perf_counter()
        share = max(2, self.config.batch_size // self.ranks.size)
        for size in (share, max(2, share // 2)):  # as many backwards on every rank (DDP)
            images, labels = self.train.images[:size], self.train.labels[:size]
            classification_losses(self.learner(images), labels).mean().backward()
            if self.teaching.teacher.filters_batches:  # Selective Backprop's no-grad filter
                with torch.no_grad():
                    classification_losses(self.scorer(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        chunk = min(len(self.train), CHUNK)  # the passes' chunk, and a smaller one: their last
        for size in (chunk, max(2, chunk // 2)):
            self.losses(ImageSet(self.train.images[:size], self.train.labels[:size]), chunk)
        synchronize(self.device)
        self.compile_seconds += time.perf_counter() - start
        self.warmed_up = True

    @torch.no_grad()
    def accuracy(self, data: ImageSet, chunk: int = CHUNK) -> tuple[float, float]:
        """(accuracy, mean loss) of the model on ``data``."""
        self.model.eval()
        correct, loss = 0, 0.0
        for i in range(0, len(data), chunk):
            logits, labels = self.scorer(data.images[i:i + chunk]), data.labels[i:i + chunk]
            correct += int((logits.argmax(1) == labels).sum())
            loss += float(classification_losses(logits, labels).sum())
        self.model.train()
        return correct / len(data), loss / len(data)

    def evaluate(self) -> dict:
        """Validation accuracy and loss, appended to the history (off the clock)."""
        accuracy, loss = self.accuracy(self.validation)
        record = {"epoch": self.epoch, "steps": self.steps, "seconds": self.clock.seconds,
                  "examples": self.examples, "trained": self.epoch_examples,
                  "train_loss": self.loss_sum / self.epoch_examples if self.epoch_examples else None,
                  "work": dict(self.work), "val_loss": loss, "val_accuracy": accuracy,
                  "val_accuracy_se": accuracy_se(accuracy, len(self.validation))}
        self.history.append(record)
        return record

    def state_dict(self) -> dict:
        """Everything an exact resume needs, on any number of ranks (the position is in global batches)."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "teacher": self.teaching.teacher.state_dict(), "epoch": self.epoch, "batch": self.batch,
                 "steps": self.steps, "examples": self.examples, "epoch_examples": self.epoch_examples,
                 "loss_sum": self.loss_sum, "history": self.history}
        return {**state, **self.run_state.state_dict()}  # seconds, work, the random stream

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.teaching.teacher.load_state_dict(state["teacher"])
        self.epoch, self.batch, self.steps = state["epoch"], state["batch"], state["steps"]
        self.examples = state["examples"]
        self.run_state.load_state_dict(state)
        self.epoch_examples, self.loss_sum = state["epoch_examples"], state["loss_sum"]
        self.history = list(state["history"])


def summarize(training: Training, test: ImageSet | None, config: ViTConfig) -> dict:
    """Final and best validation accuracy, training seconds (scoring included), epochs and examples."""
    history, finished = training.history, training.epoch == config.epochs
    summary = {
        "finished": finished, "teacher": config.teacher, "epochs": training.epoch, "steps": training.steps,
        "examples_trained": training.examples, "train_seconds": training.clock.seconds,
        "compile_seconds": training.compile_seconds,
        "final_val_accuracy": history[-1]["val_accuracy"],
        "best_val_accuracy": max(r["val_accuracy"] for r in history),
    }
    if test is not None and finished:
        device_test = ImageSet(test.images.to(training.device), test.labels.to(training.device))
        summary["test_accuracy"] = training.accuracy(device_test)[0]
    return {**summary, "config": asdict(config)}


def write_outputs(training: Training, folder: Path, summary: dict) -> None:
    from nteach.viz import quality_vs_time

    figure = quality_vs_time({summary["teacher"]: training.history}, metric="val_accuracy",
                             title=f"ViT on {Path(training.config.data).name}: {summary['teacher']}")
    figure.axes[0].set_ylabel("validation accuracy")
    save_figure(folder / "val_accuracy_vs_time.png", figure)
    write_jsonl(folder / HISTORY, training.history)
    write_json(folder / "summary.json", summary)


def train(training: Training, folder: Path, show_progress: bool, stop: threading.Event | None) -> None:
    """The epochs left, with a progress bar (rank 0's); checkpoint after every epoch and on stop."""
    config = training.config

    def checkpoint() -> None:
        if training.ranks.is_main:
            save_checkpoint(folder / CHECKPOINT, training.state_dict())

    bar_format = "{l_bar}{bar}| {n:.2f}/{total} epochs [{elapsed}<{remaining}{postfix}]"
    with progress_bar(total=config.epochs, show=show_progress and training.ranks.is_main,
                      bar_format=bar_format) as bar, training.run_state.random_stream():
        training.warm_up()
        bar.update(training.epoch)
        while training.epoch < config.epochs:
            if not training.train_epoch(bar, stop):
                break
            if training.epoch % config.eval_every == 0 or training.epoch == config.epochs:
                record = training.evaluate()
                show_status(bar, f"val acc {record['val_accuracy']:.4f}, train {record['seconds']:.1f} s")
            checkpoint()
    if training.epoch < config.epochs:  # stopped: keep the exact position
        checkpoint()
