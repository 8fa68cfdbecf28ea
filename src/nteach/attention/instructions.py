"""Instruction-style (prompt, response) pairs from text installed offline, for LoRA fine-tuning a chat LLM.

Built in: the Jargon File (Debian's `jargon-text`) and the docstrings of about 110 standard-library
modules; `load_pairs` also reads JSON Lines files of {"prompt": ..., "response": ...} objects.
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
import re
import sys
import warnings
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

STDLIB = """abc argparse ast asyncio base64 bdb bisect calendar cmd codecs collections colorsys
    concurrent.futures configparser contextlib copy csv dataclasses datetime decimal difflib dis doctest
    email.message email.utils enum filecmp fileinput fnmatch fractions ftplib functools getopt gettext
    glob graphlib gzip hashlib heapq hmac html html.parser http.client http.cookiejar http.server
    imaplib inspect io ipaddress itertools json locale logging mailbox math mimetypes numbers operator
    optparse os os.path pathlib pdb pickle pkgutil platform pprint queue random re reprlib sched secrets
    selectors shlex shutil smtplib socket socketserver sqlite3 ssl statistics string subprocess
    sysconfig tarfile tempfile textwrap threading time timeit tokenize traceback typing unittest
    urllib.parse urllib.request uuid warnings wave weakref xml.dom.minidom xml.etree.ElementTree zipfile
    zoneinfo""".split()

# Hooks a program is meant to replace (the nteach command replaces this one to print warnings on one
# line): walked as they are, the pairs, and so every seed's split, would depend on whether it had.
REPLACEABLE = {"warnings.showwarning"}


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


def own_doc(obj: object) -> str:
    """An object's own docstring (not one inherited from a base class) without a leading `name(...)` line."""
    doc = inspect.cleandoc(obj.__doc__) if isinstance(obj.__doc__, str) else ""
    if doc.startswith(f"{getattr(obj, '__name__', '')}("):
        doc = doc.partition("\n")[2]
    return doc


def summary(doc: str, max_words: int) -> str:
    """A docstring's leading prose paragraphs, up to `max_words` words, before any example or section."""
    kept: list[str] = []
    for paragraph in re.split(r"\n\s*\n", doc.strip()):
        opening = paragraph.strip().partition("\n")[0]
        if kept and (opening.startswith(">>>") or opening.endswith(":") or paragraph.startswith(" ")):
            break
        kept.append(paragraph)
    return cut(" ".join(kept), max_words)


def defined_in(obj: object, module: object) -> bool:
    """Whether `obj` comes from `module` (or, for a package, from one of its submodules)."""
    home = getattr(obj, "__module__", None) or ""
    return home == module.__name__ or (hasattr(module, "__path__") and home.startswith(module.__name__ + "."))


def in_stdlib(obj: object) -> bool:
    """Whether ``obj`` was not put there by a third-party package. transformers, once imported, adds
    methods to ``logging.Logger``: without this the pairs would depend on what the process had imported."""
    home = getattr(obj, "__module__", None) or ""  # C methods name none
    return not home or home.partition(".")[0] in sys.stdlib_module_names


def documented(module_name: str) -> list[tuple[str, object]]:
    """(prompt, object) for the public functions, classes and methods a stdlib module defines."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return []
    found: list[tuple[str, object]] = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or not defined_in(obj, module) or f"{module_name}.{name}" in REPLACEABLE:
            continue
        if inspect.isroutine(obj):
            found.append((f"What does the Python function `{module_name}.{name}` do?", obj))
        elif inspect.isclass(obj):
            found.append((f"What does the Python class `{module_name}.{name}` do?", obj))
            for method_name, member in sorted(vars(obj).items()):
                method = getattr(member, "__func__", member)
                if not method_name.startswith("_") and inspect.isroutine(method) and in_stdlib(method):
                    found.append((f"What does the Python method `{module_name}.{name}.{method_name}` do?",
                                  method))
    return found


def python_doc_pairs(max_words: int = 60) -> list[Pair]:
    """'What does the Python function `MODULE.NAME` do?' -> its docstring's summary, for STDLIB."""
    pairs: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        found = [(prompt, own_doc(obj)) for module_name in STDLIB for prompt, obj in documented(module_name)]
    for prompt, doc in found:
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
