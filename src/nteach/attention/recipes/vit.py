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

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from nteach.attention.data import ImageSet, load_image_data, split, subset
from nteach.attention.recipes import register_recipe
from nteach.attention.recipes.teachers import TEACHERS, parse_options
from nteach.attention.recipes.vit_training import Training, summarize, train, write_outputs
from nteach.attention.vit import SIZES
from nteach.compiling import resolve_compile
from nteach.devices import resolve_device
from nteach.errors import UserError
from nteach.launch import process_group_from_env
from nteach.options import option
from nteach.runs import start_or_resume
from nteach.teaching import make_strategy


@dataclass
class ViTConfig:
    """`nteach train vit`: one teacher, one run folder."""

    data: str = field(default="fashion-mnist", metadata=option(
        "'fashion-mnist' (Debian's copy), 'digits' (scikit-learn's 8x8) or a folder of IDX files"))
    teacher: str = field(default="paced_sweep", metadata=option(  # dev suite's choice, held-out confirmed
        f"teacher: {', '.join(TEACHERS)}"))
    ratio: float | None = field(default=None, metadata=option(
        "subset ratio of fixed-ratio teachers (attent_simple, uniform, paced_sweep); None: the teacher's own "
        "(paced_sweep: 0.5 here, with importance weights)"))
    options: str = field(default="", metadata=option("teacher hyperparameters, e.g. selection=hard,cycles=3"))
    epochs: int = field(default=10, metadata=option("training epochs (one selection event each)"))
    batch_size: int = field(default=128, metadata=option("examples per step, over all ranks"))
    lr: float = field(default=1e-3, metadata=option("peak AdamW learning rate"))
    lr_schedule: str = field(default="cosine", metadata=option(
        "decay to zero over the run: cosine or linear"))
    warmup: float = field(default=0.05, metadata=option(
        "share of the run with a linear learning-rate warm-up"))
    weight_decay: float = field(default=0.05, metadata=option("AdamW weight decay"))
    model: str = field(default="tiny", metadata=option(f"ViT size: {', '.join(SIZES)}"))
    patch_size: int | None = field(default=None, metadata=option("patch side in pixels; None: a 4x4 grid"))
    validation: float = field(default=0.1, metadata=option("share of the training images held out"))
    validate_on_test: bool = field(default=False, metadata=option(
        "validate on the data's test set (Fashion-MNIST: 10,000 images; a tolerance of 0.3 points is "
        "about one standard error there) instead of a share of the training images"))
    max_examples: int | None = field(default=None, metadata=option(
        "train on a random subset of this many images (validation: a quarter as many, at least 16)"))
    seed: int = field(default=0, metadata=option("seed for the split, the network and the teacher"))
    device: str = field(default="auto", metadata=option("cpu, cuda, cuda:N or auto"))
    compile: str = field(default="auto", metadata=option(
        "torch.compile the ViT: on, off, graphs (CUDA graphs, for a GPU) or auto (off: not measured to "
        "pay for the ViT yet); compiling runs before the clock starts"))
    out: str | None = field(default=None, metadata=option("run folder; None: runs/vit-TEACHER-DATA"))
    overwrite: bool = field(default=False, metadata=option("replace an existing run folder"))
    eval_every: int = field(default=1, metadata=option("epochs between validation passes"))
    skip_first_eval: bool = field(default=False, metadata=option(
        "no validation before training: the curve starts after the first epoch (benchmarks)"))


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
    resolve_compile(config.compile, "vit", resolve_device(config.device))


def check_inputs(config: ViTConfig) -> None:
    """check(), then that the images can be read: all of a run's input checks, nothing trained or written."""
    check(config)
    load_image_data(config.data)


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
        elif not config.skip_first_eval:
            training.evaluate()
        train(training, folder, show_progress, stop)
        summary = summarize(training, images.test, config)
        if ranks.is_main:
            write_outputs(training, folder, summary)
    return summary, folder


register_recipe("vit", ViTConfig, run, "a small ViT from scratch on Fashion-MNIST (or IDX images), taught",
                check_inputs, "val_accuracy")
