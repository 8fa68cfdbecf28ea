"""nteach: train neural networks faster by teaching them which examples to learn from."""

from nteach.errors import UserError
from nteach.teaching import STRATEGIES, Selection, Teacher, make_strategy

__version__ = "0.1.0"
__all__ = ["STRATEGIES", "Selection", "Teacher", "UserError", "make_strategy"]
