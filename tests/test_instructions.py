"""Instruction pairs for LoRA fine-tuning: Jargon File, stdlib docstrings, JSON Lines, the seeded split."""

from __future__ import annotations

import json

import pytest

from nteach.attention.instructions import JARGON, cut, jargon_pairs, load_pairs, python_doc_pairs, split_pairs
from nteach.errors import UserError

needs_jargon = pytest.mark.skipif(not JARGON.is_file(), reason="apt-get install jargon-text")


@pytest.fixture(scope="module")
def jargon():
    return jargon_pairs()


@pytest.fixture(scope="module")
def python_docs():
    return python_doc_pairs()


@needs_jargon
def test_jargon_entry_for_cruft_is_its_cleaned_body(jargon):
    answers = dict(jargon)
    cruft = answers['What does the hacker term "cruft" mean?']
    assert cruft.startswith("1. n. An unpleasant substance. The dust that gathers under your bed is cruft;")
    assert "(see hand-hacking)." in cruft and "{" not in cruft and "very common" not in cruft
    assert cruft.endswith("(see hand-hacking).")
    assert answers['What does the hacker term "/dev/null" mean?'].endswith("See bit bucket.")
    one_true = answers['What does the hacker term "1TBS" mean?']
    assert one_true == "The “One True Brace Style”; see indent style."


@needs_jargon
def test_jargon_covers_the_glossary_in_file_order(jargon):
    prompts = [prompt for prompt, _ in jargon]
    assert 2000 < len(jargon) < 2400 and len(set(prompts)) == len(prompts)
    assert prompts[0] == 'What does the hacker term "(TM)" mean?'
    assert prompts[-1] == 'What does the hacker term "zorkmid" mean?'
    assert all(3 <= len(response.split()) <= 60 for _, response in jargon)
    assert not any("Appendices" in response or "{" in response for _, response in jargon)


@needs_jargon
def test_jargon_max_words():
    assert all(len(response.split()) <= 12 for _, response in jargon_pairs(max_words=12))


def test_missing_jargon_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="apt-get install jargon-text"):
        jargon_pairs(path=tmp_path / "jargon.txt.gz")


def test_cut_keeps_whole_sentences_when_it_can():
    assert cut("one  two\nthree", 5) == "one two three"
    assert cut("Alpha beta gamma delta. Epsilon zeta eta theta", 6) == "Alpha beta gamma delta."
    assert cut("a b c d e f g h", 4) == "a b c d"


def test_python_docs_hold_known_docstrings(python_docs):
    answers = dict(python_docs)
    join = answers["What does the Python function `os.path.join` do?"]
    assert join.startswith("Join two or more pathname components, inserting '/' as needed.")
    dedent = answers["What does the Python function `textwrap.dedent` do?"]
    assert dedent.startswith("Remove any common leading whitespace from every line in `text`.")
    assert answers["What does the Python class `collections.Counter` do?"].startswith("Dict subclass")
    method = "What does the Python method `pathlib.PurePath.with_suffix` do?"
    assert answers[method].startswith("Return a new path with the file suffix changed.")


def test_python_docs_are_many_bounded_and_deterministic(python_docs):
    prompts = [prompt for prompt, _ in python_docs]
    assert len(python_docs) > 1000 and len(set(prompts)) == len(prompts)
    assert all(4 <= len(response.split()) <= 60 for _, response in python_docs)
    assert not any(">>>" in response for _, response in python_docs)
    assert python_doc_pairs() == python_docs
    assert all(len(response.split()) <= 10 for _, response in python_doc_pairs(max_words=10))


def test_python_docs_do_not_depend_on_what_the_process_imported_or_patched(python_docs, monkeypatch):
    import concurrent.futures
    import inspect
    import logging
    import warnings

    def warning_twice(self, message):
        """Log a warning twice (a method as transformers adds them to logging.Logger when imported)."""

    def one_line(message, category, filename, lineno, file=None, line=None):
        """Print a warning on one line (as the nteach command does)."""

    warning_twice.__module__ = "somepackage.logging"
    monkeypatch.setattr(logging.Logger, "warning_twice", warning_twice, raising=False)
    monkeypatch.setattr(warnings, "showwarning", one_line)
    monkeypatch.setattr(warnings, "formatwarning", lambda *args, **kwargs: "")  # as Lightning does
    monkeypatch.setattr(inspect, "getfile", lambda obj: "")
    concurrent.futures.ThreadPoolExecutor  # a lazy attribute: once used, it stays in the module's dict
    assert python_doc_pairs() == python_docs
    prompts = {prompt for prompt, _ in python_docs}
    for name in ("warnings.showwarning", "warnings.formatwarning", "inspect.getfile"):
        assert f"What does the Python function `{name}` do?" in prompts
    assert not any("warning_twice" in prompt for prompt in prompts)


PAIRS = [(f"question {i}", f"answer {i}") for i in range(50)]


def test_split_sizes_disjoint_and_seeded():
    train, validation = split_pairs(PAIRS, validation=10, max_examples=None, seed=0)
    assert len(train) == 40 and len(validation) == 10
    assert set(train).isdisjoint(validation) and set(train) | set(validation) == set(PAIRS)
    assert split_pairs(PAIRS, 10, None, seed=0) == (train, validation)
    assert split_pairs(PAIRS, 10, None, seed=1)[1] != validation


def test_split_max_examples_is_a_seeded_subset():
    train, validation = split_pairs(PAIRS, validation=5, max_examples=8, seed=3)
    assert len(train) == 8 and len(validation) == 5 and set(train).isdisjoint(validation)
    assert split_pairs(PAIRS, 5, 8, seed=3) == (train, validation)
    assert split_pairs(PAIRS, 5, 8, seed=4)[0] != train
    assert len(split_pairs(PAIRS, 5, 100, seed=3)[0]) == 45


def test_split_needs_a_training_pair():
    assert len(split_pairs(PAIRS, 49, None, seed=0)[0]) == 1
    with pytest.raises(UserError, match="between 0 and 49"):
        split_pairs(PAIRS, 50, None, seed=0)


def test_load_pairs_from_jsonl(tmp_path):
    path = tmp_path / "pairs.jsonl"
    records = [{"prompt": f"p{i}", "response": f"r{i}"} for i in range(3)]
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n", encoding="utf-8")
    assert load_pairs(str(path)) == [("p0", "r0"), ("p1", "r1"), ("p2", "r2")]


@pytest.mark.parametrize("text, message", [
    ('{"prompt": "a", "response": "b"}\n{"prompt": oops}\n', r"line 2: not JSON"),
    ('{"prompt": "a", "response": "b"}\n\n{"prompt": "c"}\n', r"line 3: expected an object"),
    ("\n\n", "holds no pairs"),
])
def test_bad_jsonl_is_a_one_line_user_error(tmp_path, text, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message) as error:
        load_pairs(str(path))
    assert "\n" not in str(error.value)


def test_unknown_source_lists_the_choices(tmp_path):
    for name in ("wikipedia", str(tmp_path / "missing.jsonl")):
        with pytest.raises(UserError, match="choose jargon, python-docs or the path of a .jsonl file"):
            load_pairs(name)


@needs_jargon
def test_load_pairs_by_name(jargon, python_docs):
    assert load_pairs("jargon") == jargon and load_pairs("python-docs") == python_docs
