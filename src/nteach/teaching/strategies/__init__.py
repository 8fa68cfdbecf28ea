"""Teaching strategies, one file each, registered by name on import."""

from nteach.teaching.strategies import (  # noqa: F401  (registers them)
    attent_complex,
    attent_simple,
    egra,
    evos,
    expansive,
    full,
    infobatch,
    int_,
    nint,
    paced_sweep,
    selective_backprop,
    soft_mining,
    sweep,
    uniform,
    uniform_subset,
)
from nteach.teaching.strategies.base import Context, Feedback, Selection, Strategy
from nteach.teaching.strategies.registry import (
    STRATEGIES,
    make_strategy,
    options_from_text,
    register,
    teachers_of,
)

__all__ = ["STRATEGIES", "Context", "Feedback", "Selection", "Strategy", "make_strategy", "options_from_text",
           "register", "teachers_of"]
