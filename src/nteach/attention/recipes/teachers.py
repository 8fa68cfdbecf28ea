"""The teachers a dataset recipe takes, and their hyperparameters as `--options` text."""

from __future__ import annotations

from dataclasses import fields

from nteach.errors import UserError
from nteach.teaching import STRATEGIES
from nteach.teaching.strategies import teachers_of

TEACHERS = teachers_of("examples")  # the teachers of datasets (the others select a signal's coordinates)
OPTIONAL = {"int": int, "float": float}  # the type of a hyperparameter whose default is None


def parse_options(teacher: str, text: str) -> dict:
    """'name=value,name=value' -> the teacher's hyperparameters, each converted to its field's type."""
    if teacher not in TEACHERS:
        what = "unknown teacher" if teacher not in STRATEGIES else "teacher of image pixels, not examples,"
        raise UserError(f"{what} {teacher!r}; choose from {', '.join(TEACHERS)}")
    kinds = {f.name: type(f.default) if f.default is not None else OPTIONAL.get(f.type.split(" |")[0], str)
             for f in fields(STRATEGIES[teacher])}
    options = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in kinds or not value:
            raise UserError(f"bad teacher option {item!r}: {teacher} takes NAME=VALUE with NAME in "
                            f"{sorted(kinds) or 'none'}")
        kind = kinds[name]
        try:
            options[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
        except ValueError:
            raise UserError(f"teacher option {name} must be {kind.__name__}, got {value!r}") from None
    return options
