"""`nteach train vit`: a small ViT trained from scratch on Fashion-MNIST (or any MNIST-format set), taught.

One epoch = one selection event: the teacher picks the epoch's examples
(scoring the pool without grad when it asks: on the clock), the loop
trains on them in a seeded order and reports each example's loss back.
The learning rate is a pure function of the position in the run
(epoch + batch / batches this epoch), so it reaches its end however many
steps the subsets take. Evaluation, logging and checkpoints run off the clock.

Under torchrun every rank runs this loop on a DistributedDataParallel model:
each rank scores its shard of the pool, the selection is global (the same on
every rank), each global batch of --batch-size is dealt out over the ranks
and the teacher observes all of it (nteach.attention.loop). So a K-rank run
trains as one process does, and rank 0 alone writes the run folder.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from nteach.attention.data import ImageSet, accuracy_se, load_image_data, split, subset
from nteach.attention.loop import Teaching, global_batches, new_work
from nteach.attention.losses import classification_losses
from nteach.attention.recipes import register_recipe
from nteach.attention.vit import SIZES, make_vit
from nteach.errors import UserError
from nteach.inr.experiment import resolve_device
from nteach.runs import (
    CHECKPOINT,
    HISTORY,
    save_checkpoint,
    save_figure,
    start_or_resume,
    write_json,
    write_jsonl,
)
from nteach.teaching import STRATEGIES, Teacher, make_strategy
from nteach.teaching.distributed import Ranks, agree_on_progress, process_group_from_env
from nteach.timing import TrainClock

# the teachers of datasets of examples (the others score image coordinates)
TEACHERS = ("attent_complex", "attent_simple", "infobatch", "selective_backprop", "uniform_subset", "uniform",
            "full", "paced_sweep")


OPTIONAL = {"int": int, "float": float}  # the type of a hyperparameter whose default is None


def _opt(help: str) -> dict:
    return {"help": help}


@dataclass
class ViTConfig:
    """`nteach train vit`: one teacher, one run folder."""

    data: str = field(default="fashion-mnist", metadata=_opt(
        "'fashion-mnist' (Debian's copy), 'digits' (scikit-learn's 8x8) or a folder of IDX files"))
    teacher: str = field(default="attent_complex", metadata=_opt(f"teacher: {', '.join(TEACHERS)}"))
    ratio: float | None = field(default=None, metadata=_opt(
        "subset ratio of fixed-ratio teachers (attent_simple, uniform); None: the teacher's own"))
    options: str = field(default="", metadata=_opt("teacher hyperparameters, e.g. selection=hard,cycles=3"))
    epochs: int = field(default=10, metadata=_opt("training epochs (one selection event each)"))
    batch_size: int = field(default=128, metadata=_opt("examples per step, over all ranks"))
    lr: float = field(default=1e-3, metadata=_opt("peak AdamW learning rate"))
    lr_schedule: str = field(default="cosine", metadata=_opt("decay to zero over the run: cosine or linear"))
    warmup: float = field(default=0.05, metadata=_opt("share of the run with a linear learning-rate warm-up"))
    weight_decay: float = field(default=0.05, metadata=_opt("AdamW weight decay"))
    model: str = field(default="tiny", metadata=_opt(f"ViT size: {', '.join(SIZES)}"))
    patch_size: int | None = field(default=None, metadata=_opt("patch side in pixels; None: a 4x4 grid"))
    validation: float = field(default=0.1, metadata=_opt("share of the training images held out"))
    validate_on_test: bool = field(default=False, metadata=_opt(
        "validate on the data's test set (Fashion-MNIST: 10,000 images; a tolerance of 0.3 points is "
        "about one standard error there) instead of a share of the training images"))
    max_examples: int | None = field(default=None, metadata=_opt(
        "train on a random subset of this many images (validation: a quarter as many, at least 16)"))
    seed: int = field(default=0, metadata=_opt("seed for the split, the network and the teacher"))
    device: str = field(default="auto", metadata=_opt("cpu, cuda, cuda:N or auto"))
    out: str | None = field(default=None, metadata=_opt("run folder; None: runs/vit-TEACHER-DATA"))
    overwrite: bool = field(default=False, metadata=_opt("replace an existing run folder"))
    eval_every: int = field(default=1, metadata=_opt("epochs between validation passes"))


def parse_options(teacher: str, text: str) -> dict:
    """'name=value,name=value' -> the teacher's hyperparameters, each converted to its field's type."""
    if teacher not in TEACHERS:
        what = "unknown teacher" if teacher not in STRATEGIES else "teacher of image pixels, not examples,"
        raise UserError(f"{what} {teacher!r}; choose from {', '.join(TEACHERS)}")
    kinds = {f.name: type(f.default) if f.default is not None else OPTIONAL.get(f.type.split(" |")[0], str)
             for f in fields(STRATEGIES[teacher])}
    options = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in kinds or not value:
            raise UserError(f"bad teacher option {item!r}: {teacher} takes NAME=VALUE with NAME in "
                            f"{sorted(kinds) or 'none'}")
        kind = kinds[name]
        try:
            options[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
        except ValueError:
            raise UserError(f"teacher option {name} must be {kind.__name__}, got {value!r}") from None
    return options


def learning_rate(progress: float, peak: float, schedule: str, warmup: float) -> float:
    """Linear warm-up over ``warmup`` of the run, then cosine or linear decay to 0 at progress 1."""
    if progress < warmup:
        return peak * progress / warmup
    t = min((progress - warmup) / (1.0 - warmup), 1.0)
    return peak * (0.5 * (1.0 + math.cos(math.pi * t)) if schedule == "cosine" else 1.0 - t)


def check(config: ViTConfig) -> None:
    """Everything a user can get wrong in the numbers, before any data is read or folder made."""
    for name in ("epochs", "batch_size", "eval_every"):
        if getattr(config, name) <= 0:
            raise UserError(f"{name.replace('_', ' ')} must be > 0, got {getattr(config, name)}")
    if config.max_examples is not None and config.max_examples <= 0:
        raise UserError(f"max examples must be > 0, got {config.max_examples}")
    if config.lr <= 0 or not 0.0 <= config.warmup < 1.0 or not 0.0 < config.validation < 1.0:
        raise UserError(f"need lr > 0, 0 <= warmup < 1 and 0 < validation < 1, got lr={config.lr}, "
                        f"warmup={config.warmup}, validation={config.validation}")
    if config.lr_schedule not in ("cosine", "linear") or config.model not in SIZES:
        raise UserError(f"unknown lr schedule {config.lr_schedule!r} or model {config.model!r}; "
                        f"choose cosine/linear and one of {', '.join(SIZES)}")
    make_strategy(config.teacher, **parse_options(config.teacher, config.options))


def check_inputs(config: ViTConfig) -> None:
    """check(), then that the images can be read: all of a run's input checks, nothing trained or written."""
    check(config)
    load_image_data(config.data)


class Training:
    """Model, AdamW, teaching, clock, history and position (epoch, batch): checkpointable between steps.

    ``ranks``: this process's place in a process group (default: the initialised one, if any); under
    one, ``device`` is this rank's. Everything but the model's wrapper is global: the same on every rank.
    """

    def __init__(self, config: ViTConfig, train: ImageSet, validation: ImageSet, num_classes: int,
                 device: torch.device | None = None, ranks: Ranks | None = None) -> None:
        self.config, self.device = config, device or resolve_device(config.device)
        self.ranks = ranks or Ranks.current()
        size = train.images.shape[-1]
        patch = config.patch_size or max(1, size // 4)
        if size % patch:
            raise UserError(f"patch size {patch} does not divide the image size {size}")
        torch.manual_seed(config.seed)  # the network's initialisation, as the INR side does
        self.model = make_vit(config.model, size, patch, num_classes, train.images.shape[1]).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        teacher = Teacher(config.teacher, len(train), ratio=config.ratio, seed=config.seed,
                          total_steps=config.epochs, **parse_options(config.teacher, config.options))
        self.teaching = Teaching(teacher, seed=config.seed, ranks=self.ranks)
        self.train = ImageSet(train.images.to(self.device), train.labels.to(self.device))
        self.validation = ImageSet(validation.images.to(self.device), validation.labels.to(self.device))
        self.clock = TrainClock(self.device)
        self.epoch = self.batch = self.steps = self.examples = 0
        self.epoch_examples, self.loss_sum = 0, 0.0  # this epoch's, for its mean training loss
        self.work = new_work()  # this process's, for clock-robust time (nteach.bench.attention_probe)
        self.history: list[dict] = []
        self.learner = self.model if self.ranks.size == 1 else self._data_parallel()

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
    def losses(self, data: ImageSet, chunk: int = 1024) -> torch.Tensor:
        self.model.eval()
        out = torch.cat([classification_losses(self.model(data.images[i:i + chunk]), data.labels[i:i + chunk])
                         for i in range(0, len(data), chunk)])
        self.model.train()
        return out

    def step(self, index: torch.Tensor, batches: int) -> None:
        """One AdamW step on the batch ``index`` (this rank's share of the ``self.batch``-th global batch
        of ``batches`` this epoch)."""
        progress = (self.epoch + self.batch / batches) / self.config.epochs
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(progress, self.config.lr, self.config.lr_schedule, self.config.warmup)
        images, labels = self.train.images[index], self.train.labels[index]
        keep = self.teaching.keep(lambda: classification_losses(self.model(images), labels))
        if self.teaching.teacher.filters_batches:
            self.work["forwarded"] += len(images)
        images, labels, index = images[keep], labels[keep], index[keep]
        self.work["trained"] += len(images)
        self.work["steps"] += 1
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
            if self._agree(stop):
                return False
            with self.clock.running():
                self.step(torch.tensor(index, device=self.device), batches)
            self.batch += 1
            bar.n = self.epoch + self.batch / batches  # exact, so the bar never overshoots
            bar.update(0)
        self._agree(None)  # rank 0's clock, for the epoch's record; a stop is agreed on at the next step
        self.epoch, self.batch = self.epoch + 1, 0
        return True

    def _agree(self, stop: threading.Event | None) -> bool:
        """Whether to stop now (any rank asked); under DDP, also takes rank 0's training seconds."""
        self.clock.seconds, stopping = agree_on_progress(
            self.clock.seconds, stop is not None and stop.is_set(), self.ranks)
        return stopping

    @torch.no_grad()
    def accuracy(self, data: ImageSet, chunk: int = 1024) -> tuple[float, float]:
        """(accuracy, mean loss) of the model on ``data``."""
        self.model.eval()
        correct, loss = 0, 0.0
        for i in range(0, len(data), chunk):
            logits, labels = self.model(data.images[i:i + chunk]), data.labels[i:i + chunk]
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
                 "steps": self.steps, "examples": self.examples, "seconds": self.clock.seconds,
                 "work": dict(self.work), "epoch_examples": self.epoch_examples, "loss_sum": self.loss_sum,
                 "history": self.history,
                 "torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.teaching.teacher.load_state_dict(state["teacher"])
        self.epoch, self.batch, self.steps = state["epoch"], state["batch"], state["steps"]
        self.examples, self.clock.seconds = state["examples"], state["seconds"]
        self.work = dict(state.get("work", new_work()))
        self.epoch_examples, self.loss_sum = state["epoch_examples"], state["loss_sum"]
        self.history = list(state["history"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)


def summarize(training: Training, test: ImageSet | None, config: ViTConfig) -> dict:
    """Final and best validation accuracy, training seconds (scoring included), epochs and examples."""
    history, finished = training.history, training.epoch == config.epochs
    summary = {
        "finished": finished, "teacher": config.teacher, "epochs": training.epoch, "steps": training.steps,
        "examples_trained": training.examples, "train_seconds": training.clock.seconds,
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


def split_indices(config: ViTConfig, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) indices of ``count`` training images: a seeded split, then --max-examples."""
    generator = torch.Generator().manual_seed(config.seed)
    train, validation = split(count, round(config.validation * count), generator)
    if config.max_examples is not None:  # as the text recipes do
        train = train[subset(len(train), config.max_examples, config.seed)]
        validation = validation[subset(len(validation), max(16, config.max_examples // 4), config.seed + 1)]
    return train, validation


class ImageSplit(NamedTuple):
    train: ImageSet
    validation: ImageSet
    test: ImageSet | None  # None when it validates
    num_classes: int
    name: str


def image_sets(config: ViTConfig) -> ImageSplit:
    """The images a run trains, validates and tests on."""
    data = load_image_data(config.data)
    train_indices, val_indices = split_indices(config, len(data.train))
    if not config.validate_on_test:
        return ImageSplit(data.train.subset(train_indices), data.train.subset(val_indices), data.test,
                          data.num_classes, data.name)
    if data.test is None:
        raise UserError(f"{config.data} has no test set to validate on")
    train_indices = subset(len(data.train), config.max_examples, config.seed)
    return ImageSplit(data.train.subset(train_indices), data.test, None, data.num_classes, data.name)


def train(training: Training, folder: Path, show_progress: bool, stop: threading.Event | None) -> None:
    """The epochs left, with a progress bar (rank 0's); checkpoint after every epoch and on stop."""
    config = training.config

    def checkpoint() -> None:
        if training.ranks.is_main:
            save_checkpoint(folder / CHECKPOINT, training.state_dict())

    bar_format = "{l_bar}{bar}| {n:.2f}/{total} epochs [{elapsed}<{remaining}{postfix}]"
    with tqdm(total=config.epochs, disable=not (show_progress and training.ranks.is_main), dynamic_ncols=True,
              bar_format=bar_format) as bar:
        bar.update(training.epoch)
        while training.epoch < config.epochs:
            if not training.train_epoch(bar, stop):
                break
            if training.epoch % config.eval_every == 0 or training.epoch == config.epochs:
                record = training.evaluate()
                bar.set_postfix_str(f"val acc {record['val_accuracy']:.4f}, train {record['seconds']:.1f} s")
            checkpoint()
    if training.epoch < config.epochs:  # stopped: keep the exact position
        checkpoint()


def run(config: ViTConfig, resume_folder: Path | None = None, show_progress: bool = True,
        stop: threading.Event | None = None) -> tuple[dict, Path]:
    """Train into a new run folder (or resume the one given); checkpoint after every epoch and on stop.

    Everything a user can get wrong is checked before the folder is created. Under torchrun
    (WORLD_SIZE > 1) every rank trains under DDP and rank 0 alone reads and writes the folder.
    """
    check(config)
    images = image_sets(config)
    with process_group_from_env(resolve_device(config.device)) as (ranks, device):
        training = Training(config, images.train, images.validation, images.num_classes, device, ranks)
        folder = Path(resume_folder or config.out or f"runs/vit-{config.teacher}-{images.name}")
        state = start_or_resume(folder, asdict(config), config.overwrite, resume_folder is not None, ranks)
        if state is not None:
            training.load_state_dict(state)
        else:
            training.evaluate()
        train(training, folder, show_progress, stop)
        summary = summarize(training, images.test, config)
        if ranks.is_main:
            write_outputs(training, folder, summary)
    return summary, folder


register_recipe("vit", ViTConfig, run, "a small ViT from scratch on Fashion-MNIST (or IDX images), taught",
                check_inputs, "val_accuracy")
