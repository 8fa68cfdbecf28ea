"""Supersense classification of WordNet glosses, from Debian's `wordnet-base` (WordNet 3.0).

Every synset of WordNet sits in one of 45 lexicographer files ("supersenses" such as
noun.animal or verb.motion). The task: read a synset's definition, without its own
words and usage examples, and name its supersense. File format: `man 5 wndb`.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from pathlib import Path

import torch

from nteach.errors import UserError

WORDNET = Path("/usr/share/wordnet")
PARTS = ("noun", "verb", "adj", "adv")
MIN_WORDS = 4

# Lexicographer file numbers to names, as listed in `man 5 lexnames`.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
)

# Usage examples start with a quote after ';' (a few after ':' or ',') and run to the end.
EXAMPLES = re.compile(r'[;:,]\s*".*$')


def clean_gloss(gloss: str) -> str:
    """The definition alone: quoted usage examples and trailing punctuation dropped."""
    return EXAMPLES.sub("", gloss.strip()).strip(" ;:,")


def synsets(part: str = "noun") -> list[tuple[str, str, str]]:
    """(offset, supersense, cleaned gloss) of every synset in data.PART, in file order."""
    if part not in PARTS:
        raise UserError(f"unknown part of speech {part!r}: choose one of {', '.join(PARTS)}")
    path = WORDNET / f"data.{part}"
    if not path.is_file():
        raise UserError("WordNet is missing: apt-get install wordnet-base")
    return list(_read(path))


@functools.lru_cache(maxsize=4)
def _read(path: Path) -> tuple[tuple[str, str, str], ...]:
    """Parse one data file, skipping the license lines (they start with two spaces)."""
    rows = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("  "):
                continue
            fields, _, gloss = line.partition(" | ")
            offset, lex_filenum = fields.split(" ", 2)[:2]
            rows.append((offset, LEXNAMES[int(lex_filenum)], clean_gloss(gloss)))
    return tuple(rows)


def spread(items: list, count: int | None) -> list:
    """At most `count` items taken evenly across the list (every k-th), in order."""
    if count is None or count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def supersense_examples(part: str = "noun", classes: int = 8,
                        per_class: int | None = None) -> tuple[list[str], list[str]]:
    """(glosses, supersense names) of the `classes` most frequent supersenses, in file order.

    Glosses under four words, repeats of a gloss and noun.Tops are left out; ties in frequency
    go by name. `per_class` caps each class, spreading the kept examples evenly over the file.
    """
    first_sense: dict[str, str] = {}  # a gloss repeated ("a genus of bacteria") is kept once
    for _, sense, gloss in synsets(part):
        if sense != "noun.Tops" and len(gloss.split()) >= MIN_WORDS:
            first_sense.setdefault(gloss, sense)
    rows = [(sense, gloss) for gloss, sense in first_sense.items()]
    counts = Counter(sense for sense, _ in rows)
    if not 1 <= classes <= len(counts):
        raise UserError(f"{part} has {len(counts)} supersenses; cannot keep {classes}")
    kept = sorted(counts, key=lambda sense: (-counts[sense], sense))[:classes]
    chosen = set()
    for sense in kept:
        chosen.update(spread([i for i, (s, _) in enumerate(rows) if s == sense], per_class))
    picked = [rows[i] for i in sorted(chosen)]
    return [gloss for _, gloss in picked], [sense for sense, _ in picked]


Split = tuple[list[str], list[int]]


def supersense_split(part: str = "noun", classes: int = 8, train_per_class: int = 500,
                     validation_per_class: int = 100, seed: int = 0) -> tuple[Split, Split, list[str]]:
    """Balanced, disjoint ((train texts, labels), (validation texts, labels), label names).

    From each class a seeded random draw of train_per_class + validation_per_class glosses;
    labels index the sorted label names. Examples are grouped by class.
    """
    texts, senses = supersense_examples(part, classes)
    names = sorted(set(senses))
    generator = torch.Generator().manual_seed(seed)
    train: Split = ([], [])
    validation: Split = ([], [])
    for label, name in enumerate(names):
        members = [i for i, sense in enumerate(senses) if sense == name]
        if len(members) < train_per_class + validation_per_class:
            raise UserError(f"{name} has {len(members)} glosses, fewer than the "
                            f"{train_per_class} + {validation_per_class} asked for")
        order = torch.randperm(len(members), generator=generator).tolist()
        cut = train_per_class + validation_per_class
        for draw, (xs, ys) in ((order[:train_per_class], train), (order[train_per_class:cut], validation)):
            xs.extend(texts[members[j]] for j in draw)
            ys.extend([label] * len(draw))
    return train, validation, names
