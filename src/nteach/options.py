"""Config dataclass fields as command-line options: the metadata `nteach.cli` reads."""

from __future__ import annotations


def option(help: str, **extra) -> dict:
    """A field's metadata: its ``--help`` text (and ``positional=True`` for an argument)."""
    return {"help": help, **extra}
