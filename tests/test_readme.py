"""The README as a user reads it: its Python runs as written, its links and paths exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
LINKS = re.findall(r"\]\(([^)#\s]+)", README)  # markdown links, anchors dropped
PATHS = re.findall(r"`((?:src|docs|benchmarks|scripts|tests)/[^`\s*]+)`", README)  # quoted repository paths


def test_the_readme_shows_python_to_run():
    assert len(PYTHON_BLOCKS) >= 3


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda block: block.split("\n")[0][:40])
def test_each_python_block_runs_as_written(block, tmp_path, monkeypatch):
    for package in ("lightning", "transformers", "trl"):
        if re.search(rf"^(from|import) {package}\b", block, flags=re.M):
            pytest.importorskip(package)
    monkeypatch.chdir(tmp_path)  # what a block writes lands here
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


@pytest.mark.parametrize("target", sorted(set(LINKS + PATHS)))
def test_each_link_and_path_resolves(target):
    if re.match(r"[a-z]+://", target):
        return
    assert (ROOT / target).exists(), f"README points at {target}, which the repository lacks"
