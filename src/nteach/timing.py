"""The one training clock: it covers training steps and scoring/selection, never evaluation or I/O."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that the clock reads real time."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TrainClock:
    """Accumulates seconds spent inside ``with clock.running():`` blocks."""

    def __init__(self, device: torch.device, seconds: float = 0.0) -> None:
        self.device = device
        self.seconds = seconds

    @contextmanager
    def running(self):
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield self
        finally:
            synchronize(self.device)
            self.seconds += time.perf_counter() - start
