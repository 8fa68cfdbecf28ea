"""Strategies by name: the CLI and benchmarks loop over this table."""

from __future__ import annotations

from dataclasses import fields

from nteach.errors import UserError
from nteach.teaching.strategies.base import Strategy

STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    STRATEGIES[cls.name] = cls
    return cls


def teachers_of(pool: str) -> tuple[str, ...]:
    """The registered strategies that select from ``pool`` ("coordinates" or "examples"), by name."""
    return tuple(sorted(name for name, cls in STRATEGIES.items() if pool in cls.teaches))


def make_strategy(name: str, **options) -> Strategy:
    """Build the strategy registered as ``name`` with the given hyperparameters."""
    if name not in STRATEGIES:
        raise UserError(f"unknown teacher {name!r}; choose from {', '.join(sorted(STRATEGIES))}")
    cls = STRATEGIES[name]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(f"teacher {name!r} has no option {unknown[0]!r}; it takes {sorted(known) or 'none'}")
    return cls(**options)
