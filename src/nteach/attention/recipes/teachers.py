"""The teachers a dataset recipe takes, and their hyperparameters as `--options` text."""

from __future__ import annotations

from nteach.errors import UserError
from nteach.teaching import STRATEGIES
from nteach.teaching.strategies import options_from_text, teachers_of

TEACHERS = teachers_of("examples")  # the teachers of datasets (the others select a signal's coordinates)


def parse_options(teacher: str, text: str) -> dict:
    """'name=value,name=value' -> the teacher's hyperparameters, each converted to its field's type."""
    if teacher not in TEACHERS:
        what = "unknown teacher" if teacher not in STRATEGIES else "teacher of image pixels, not examples,"
        raise UserError(f"{what} {teacher!r}; choose from {', '.join(TEACHERS)}")
    return options_from_text(teacher, text)
