"""Instruction-style (prompt, response) pairs from text installed offline, for LoRA fine-tuning a chat LLM.

Built in: the Jargon File (Debian's `jargon-text`) and the docstrings of about 110 standard-library
modules; `load_pairs` also reads JSON Lines files of {"prompt": ..., "response": ...} objects.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import torch

from nteach.errors import UserError

Pair = tuple[str, str]

JARGON = Path("/usr/share/doc/jargon-text/jargon.txt.gz")
ENTRY = re.compile(r"^   :(.+?):(\s|$)")
LETTER_HEADING = re.compile(r"^  [A-Z]$")
APPENDICES = re.compile(r"^\s*Part\s+III\.\s+Appendices\s*$")
CROSS_REFERENCE = re.compile(r"\{([^{}]*)\}")
SENTENCE_END = re.compile(r"\w\w[\"”’)]*[.!?][\"”’)]*$")
PARTS_OF_SPEECH = {"adj.", "adv.", "interj.", "pl.", "vi.", "vt."}

def cut(text: str, max_words: int) -> str:
    """`text` in single spaces, cut to `max_words` words (back to a sentence end in the 2nd half)."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    words = words[:max_words]
    ends = [i for i, word in enumerate(words) if i >= max_words // 2
            and SENTENCE_END.search(word) and word not in PARTS_OF_SPEECH]
    return " ".join(words[:ends[-1] + 1] if ends else words)


def drop_leading_brackets(text: str) -> str:
    """`text` without a leading `[...]` block (nested brackets allowed)."""
    if not text.startswith("["):
        return text
    depth = 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth == 0:
            return text[i + 1:].lstrip()
    return text


def jargon_entries(path: Path = JARGON) -> list[tuple[str, str]]:
    """(term, raw body) for each glossary entry of the Jargon File, in file order."""
    if not path.is_file():
        raise UserError("the Jargon File is missing: apt-get install jargon-text")
    with gzip.open(path, "rt", encoding="utf-8") as file:
        lines = file.read().splitlines()
    entries: list[tuple[str, list[str]]] = []
    for line in lines:
        if APPENDICES.match(line):
            break
        if match := ENTRY.match(line):
            entries.append((match.group(1).strip(), []))
        elif entries and not LETTER_HEADING.match(line):
            entries[-1][1].append(line)
    return [(term, "\n".join(body)) for term, body in entries]


def jargon_pairs(max_words: int = 60, path: Path = JARGON) -> list[Pair]:
    """'What does the hacker term "TERM" mean?' -> the start of its Jargon File entry."""
    pairs: dict[str, str] = {}
    for term, body in jargon_entries(path):
        text = drop_leading_brackets(" ".join(body.split()))
        response = cut(CROSS_REFERENCE.sub(r"\1", text), max_words)
        if term not in pairs and len(response.split()) >= 3:
            pairs[term] = response
    return [(f'What does the hacker term "{term}" mean?', response) for term, response in pairs.items()]


def summary(doc: str, max_words: int) -> str:
    """A docstring's leading prose paragraphs, up to `max_words` words, before any example or section."""
    kept: list[str] = []
    for paragraph in re.split(r"\n\s*\n", doc.strip()):
        opening = paragraph.strip().partition("\n")[0]
        if kept and (opening.startswith(">>>") or opening.endswith(":") or paragraph.startswith(" ")):
            break
        kept.append(paragraph)
    return cut(" ".join(kept), max_words)


def python_doc_pairs(max_words: int = 60) -> list[Pair]:
    """'What does the Python function `MODULE.NAME` do?' -> its docstring's summary, for about 110
    standard-library modules. The walk runs in a fresh interpreter (nteach.attention.stdlib_docs), so
    the pairs, and every seed's split, are the same in any process of one Python version."""
    walk = subprocess.run([sys.executable, "-I", "-S", str(Path(__file__).with_name("stdlib_docs.py"))],
                          capture_output=True, text=True, check=True)
    pairs: dict[str, str] = {}
    for prompt, doc in json.loads(walk.stdout):
        response = summary(doc, max_words)
        if prompt not in pairs and len(response.split()) >= 4:
            pairs[prompt] = response
    return list(pairs.items())


def split_pairs(pairs: list[Pair], validation: int, max_examples: int | None = None,
                seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """(train, validation): `validation` pairs held out at random, training cut to `max_examples`."""
    if not 0 <= validation < len(pairs):
        raise UserError(f"the validation split must hold between 0 and {len(pairs) - 1} of the "
                        f"{len(pairs)} pairs, got {validation}")
    if max_examples is not None and max_examples < 1:
        raise UserError(f"max_examples must be at least 1, got {max_examples}")
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    held_out, train = order[:validation], order[validation:]
    if max_examples is not None:
        train = train[:max_examples]
    return [pairs[i] for i in sorted(train)], [pairs[i] for i in sorted(held_out)]


def read_jsonl(path: Path) -> list[Pair]:
    """The (prompt, response) pairs of a JSON Lines file; blank lines are skipped."""
    pairs: list[Pair] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text (byte {error.start} cannot be decoded)") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{path}, line {number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict) or not {"prompt", "response"} <= record.keys():
            raise UserError(f'{path}, line {number}: expected an object with "prompt" and "response"')
        pairs.append((str(record["prompt"]), str(record["response"])))
    if not pairs:
        raise UserError(f"{path} holds no pairs")
    return pairs


def load_pairs(name: str, max_words: int = 60) -> list[Pair]:
    """A built-in source by name ('jargon', 'python-docs'; responses cut to ``max_words``) or a JSON
    Lines file of pairs (as they are)."""
    built_in = {"jargon": jargon_pairs, "python-docs": python_doc_pairs}
    if name in built_in:
        return built_in[name](max_words)
    if Path(name).is_file():
        return read_jsonl(Path(name))
    raise UserError(f"no pair source {name!r}: choose jargon, python-docs or the path of a .jsonl file")
