"""What the text recipes (`nteach train encoder`, `nteach train lm`) share: their settings, the checks
of them, and the run folder. Light on purpose: the CLI imports it at start; transformers loads later.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nteach.attention.recipes.teachers import TEACHERS, parse_options
from nteach.compiling import resolve_compile
from nteach.devices import resolve_device
from nteach.errors import UserError
from nteach.launch import Ranks, on_main
from nteach.options import option
from nteach.runs import CONFIG, HISTORY, new_run_folder, write_json
from nteach.teaching import Teacher, make_strategy

CHECKPOINTS = "checkpoints"



@dataclass
class TextConfig:
    """Settings both text recipes take."""

    teacher: str = field(default="infobatch", metadata=option(  # the dev text cases' choice (README)
        f"teacher: {', '.join(TEACHERS)}"))
    ratio: float | None = field(default=None, metadata=option(
        "subset ratio of fixed-ratio teachers (attent_simple: 0.7, uniform); None: the teacher's own"))
    options: str = field(default="", metadata=option("teacher hyperparameters, e.g. warmup=2 or cycles=3"))
    epochs: int = field(default=3, metadata=option("training epochs (one selection event each)"))
    batch_size: int = field(default=8, metadata=option("examples per step and device"))
    grad_accum: int = field(default=1, metadata=option("micro-batches accumulated per optimizer step"))
    seq_len: int = field(default=128, metadata=option("tokens per example"))
    lr: float = field(default=5e-5, metadata=option("peak AdamW learning rate"))
    lr_schedule: str = field(default="cosine", metadata=option(
        "linear, cosine or constant after the warm-up"))
    warmup: float = field(default=0.05, metadata=option(
        "share of the run with a linear learning-rate warm-up"))
    weight_decay: float = field(default=0.01, metadata=option("AdamW weight decay"))
    max_examples: int | None = field(default=None, metadata=option(
        "train on a random subset of this many examples (validation: a quarter as many, at least 16)"))
    validation: float = field(default=0.1, metadata=option("share of the data held out for validation"))
    seed: int = field(default=0, metadata=option("seed for the split, the model and the teacher"))
    device: str = field(default="auto", metadata=option("cpu, cuda or auto"))
    compile: str = field(default="auto", metadata=option(
        "torch.compile the model (the Trainer's torch_compile): on, off, graphs (CUDA graphs, for a GPU) "
        "or auto (off: not measured to pay here yet); compiling runs before the clock starts"))
    out: str | None = field(default=None, metadata=option("run folder; None: runs/RECIPE-TEACHER-DATA"))
    overwrite: bool = field(default=False, metadata=option("replace an existing run folder"))
    skip_first_eval: bool = field(default=False, metadata=option(
        "no validation before training: the curve starts after the first epoch (benchmarks)"))


def check(config: TextConfig) -> None:
    """The numbers and names a user can get wrong, before anything is loaded or written."""
    for name in ("epochs", "batch_size", "grad_accum", "seq_len"):
        if getattr(config, name) <= 0:
            raise UserError(f"{name.replace('_', ' ')} must be > 0, got {getattr(config, name)}")
    if config.max_examples is not None and config.max_examples <= 0:
        raise UserError(f"max examples must be > 0, got {config.max_examples}")
    if config.lr <= 0 or not 0.0 <= config.warmup < 1.0 or not 0.0 < config.validation < 1.0:
        raise UserError(f"need lr > 0, 0 <= warmup < 1 and 0 < validation < 1, got lr={config.lr}, "
                        f"warmup={config.warmup}, validation={config.validation}")
    if config.lr_schedule not in ("linear", "cosine", "constant"):
        raise UserError(f"unknown lr schedule {config.lr_schedule!r}; choose linear, cosine or constant")
    make_strategy(config.teacher, **parse_options(config.teacher, config.options))
    device = resolve_device(config.device)
    resolve_compile(config.compile, "text", device)
    if device.type == "cuda" and device.index not in (None, 0):
        raise UserError("pick the GPU with CUDA_VISIBLE_DEVICES and pass --device cuda")


def make_teacher(config: TextConfig, pool_size: int) -> Teacher:
    return Teacher(config.teacher, pool_size, ratio=config.ratio, seed=config.seed, total_steps=config.epochs,
                   **parse_options(config.teacher, config.options))


def start_folder(config: TextConfig, recipe: str, data_name: str, resume_folder: Path | None
                 ) -> tuple[Path, list[dict], str | None]:
    """(run folder, history so far, checkpoint to resume from or None): made or read by rank 0 alone."""
    return on_main(lambda: _start_folder(config, recipe, data_name, resume_folder), Ranks.current())


def _start_folder(config: TextConfig, recipe: str, data_name: str, resume_folder: Path | None
                  ) -> tuple[Path, list[dict], str | None]:
    if resume_folder is None:
        out = Path(config.out or f"runs/{recipe}-{config.teacher}-{data_name}")
        folder = new_run_folder(out, config.overwrite)
        write_json(folder / CONFIG, asdict(config))
        return folder, [], None
    folder = Path(resume_folder)
    checkpoints = sorted(folder.glob(f"{CHECKPOINTS}/checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if not checkpoints:
        raise UserError(f"{folder} holds no checkpoint to resume from")
    checkpoint = str(checkpoints[-1])
    steps = json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"]
    lines = (folder / HISTORY).read_text().splitlines() if (folder / HISTORY).is_file() else []
    history = [r for r in map(json.loads, lines) if r["steps"] <= steps]
    return folder, history, checkpoint


