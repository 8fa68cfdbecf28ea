"""Strategies by name: the CLI and benchmarks loop over this table."""

from __future__ import annotations

from dataclasses import fields

from nteach.errors import UserError
from nteach.teaching.strategies.base import Strategy

STRATEGIES: dict[str, type[Strategy]] = {}
OPTIONAL = {"int": int, "float": float}  # the type of a hyperparameter whose default is None


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


def options_from_text(name: str, text: str) -> dict:
    """'field=value,field=value' (as a user types `--options`) -> the hyperparameters of the strategy
    registered as ``name``, each converted to its field's type."""
    if name not in STRATEGIES:
        raise UserError(f"unknown teacher {name!r}; choose from {', '.join(sorted(STRATEGIES))}")
    kinds = {f.name: type(f.default) if f.default is not None else OPTIONAL.get(f.type.split(" |")[0], str)
             for f in fields(STRATEGIES[name])}
    options = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        if key not in kinds or not value:
            raise UserError(f"bad teacher option {item!r}: {name} takes NAME=VALUE with NAME in "
                            f"{sorted(kinds) or 'none'}")
        kind = kinds[key]
        try:
            options[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
        except ValueError:
            raise UserError(f"teacher option {key} must be {kind.__name__}, got {value!r}") from None
    return options
