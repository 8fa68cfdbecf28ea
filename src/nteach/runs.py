"""Run folders: every file is written to a temporary name and then renamed, so none is ever half-written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from nteach.errors import UserError

if TYPE_CHECKING:
    from nteach.launch import Ranks

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
HISTORY = "history.jsonl"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, value) -> None:
    write_text(path, json.dumps(value, indent=2, default=str) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict:
    if not Path(path).is_file():
        raise UserError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated zip, a pickle error, foreign bytes: all one message
        raise UserError(f"cannot read the checkpoint {path} (corrupted or truncated?): "
                        f"{type(error).__name__}") from None


def save_figure(path: Path, figure) -> None:
    """Save a matplotlib figure atomically (a ``Figure`` made outside pyplot: nothing to close)."""
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=120, bbox_inches="tight"))


def new_run_folder(out: Path, overwrite: bool) -> Path:
    """Create ``out`` for a new run; an existing folder needs ``overwrite`` (or --resume)."""
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise UserError(f"run folder {out} already exists; pass --resume {out} to continue it "
                            "or --overwrite to start again")
        if not out.is_dir():
            raise UserError(f"{out} exists and is not a folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def start_or_resume(folder: Path, config: dict, overwrite: bool, resume: bool, ranks: Ranks) -> dict | None:
    """Rank 0 makes ``folder`` with its config.json (None), or reads the checkpoint to resume from;
    every rank gets the outcome, or the UserError it raised."""
    from nteach.launch import on_main

    if resume:
        return on_main(lambda: load_checkpoint(folder / CHECKPOINT), ranks)

    def make_folder() -> None:
        write_json(new_run_folder(folder, overwrite) / CONFIG, config)

    return on_main(make_folder, ranks)
