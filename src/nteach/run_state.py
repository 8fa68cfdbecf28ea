"""What every training loop keeps besides its model and teacher: the training clock, the work it counted,
agreement with the other ranks, and the run's own random stream, checkpointed together.

Used by the INR fit, the ViT recipe and the Hugging Face callback (whose Trainer owns the random state).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch

from nteach.launch import Ranks, agree_on_progress
from nteach.timing import TrainClock


class RunState:
    """The clock (``clock.seconds``: training and scoring only), the work counted (``work``, a dict of
    counters the loop adds to), this process's ``ranks``, and a random stream seeded by ``seed``."""

    def __init__(self, device: torch.device | str, work: dict[str, int], ranks: Ranks | None = None,
                 seed: int = 0) -> None:
        self.device = torch.device(device)
        self.clock = TrainClock(self.device)
        self.work = work
        self.ranks = ranks or Ranks.current()
        self.seed = seed
        self.rng: dict | None = None  # the stream's generator states between blocks; None: not started
        self.streaming = False

    @contextmanager
    def random_stream(self):
        """Inside, torch's global generators (the CPU's, and this run's GPU's) draw the run's own stream,
        continued from the last block or checkpoint; afterwards they are where the caller left them."""
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            if self.rng is None:
                torch.default_generator.manual_seed(self.seed)
                if cuda:
                    torch.cuda.set_rng_state(torch.Generator("cuda").manual_seed(self.seed).get_state(),
                                             self.device)
            else:
                self._restore(self.rng)
            self.streaming = True
            try:
                yield
            finally:
                self.rng, self.streaming = self._capture(), False

    def _capture(self) -> dict:
        states = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        return states

    def _restore(self, states: dict) -> None:
        torch.set_rng_state(states["cpu"])
        if "cuda" in states and self.device.type == "cuda":
            torch.cuda.set_rng_state(states["cuda"], self.device)

    def agree(self, stop: threading.Event | None) -> bool:
        """Whether to stop now (any rank asked to); under DDP also takes rank 0's clock as this rank's,
        so that every rank selects, evaluates and stops at the same steps."""
        self.clock.seconds, stopping = agree_on_progress(
            self.clock.seconds, stop is not None and stop.is_set(), self.ranks)
        return stopping

    def state_dict(self) -> dict:
        rng = self._capture() if self.streaming else self.rng
        return {"seconds": self.clock.seconds, "work": dict(self.work), "rng": rng}

    def load_state_dict(self, state: dict) -> None:
        self.clock.seconds = state["seconds"]
        self.work = dict(state["work"])
        self.rng = state.get("rng")
        if self.streaming and self.rng is not None:
            self._restore(self.rng)


class WithRunState:
    """For a loop that holds ``self.run_state``: its clock and work counters read as the loop's own."""

    run_state: RunState

    @property
    def clock(self) -> TrainClock:
        return self.run_state.clock

    @property
    def work(self) -> dict[str, int]:  # this process's, for clock-robust time (nteach.bench probes)
        return self.run_state.work
