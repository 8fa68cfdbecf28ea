"""Side-by-side runs of teachers: time to target, tables and plots."""

from nteach.bench.compare import CompareConfig, run_compare
from nteach.bench.targets import time_to_target

__all__ = ["CompareConfig", "run_compare", "time_to_target"]
