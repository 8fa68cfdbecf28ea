"""Teacher: a strategy plus its ratio and interval schedules, with checkpointable state.

The teacher owns no model, optimizer or data. At each training step the
caller asks ``teacher.select(step, progress, score)``; at selection events
the teacher asks ``score(name)`` for the scores its strategy needs, caches
them, and returns a new Selection. Between events it returns the last one.
After the step, ``teacher.observe(...)`` hands back the per-example losses
the training forward computed anyway, for strategies that learn from them.
Datasets of examples are taught per epoch: ``step`` is the epoch and
``total_steps`` the number of epochs (nteach.attention.loop drives this).
"""

from __future__ import annotations

from typing import Callable

import torch

from nteach.errors import UserError
from nteach.teaching.schedules import check_ratio, interval_at, is_selection_event, ratio_at
from nteach.teaching.strategies import Context, Feedback, Selection, Strategy, make_strategy

ScoreFn = Callable[[str], torch.Tensor]


class Teacher:
    """Chooses which of ``pool_size`` examples to train on at each step."""

    def __init__(self, strategy: str | Strategy, pool_size: int, ratio: float | None = None,
                 schedule: str | None = None, interval: str | None = None, seed: int = 0,
                 total_steps: int | None = None, **options) -> None:
        self.strategy = make_strategy(strategy, **options) if isinstance(strategy, str) else strategy
        if pool_size <= 0:
            raise UserError(f"the pool must hold at least one example, got {pool_size}")
        self.pool_size = pool_size
        self.ratio = check_ratio(self.strategy.default_ratio if ratio is None else ratio)
        self.total_steps = total_steps  # the run's length, for strategies planned over it (AtteNT-Complex)
        self.schedule = schedule or self.strategy.default_schedule
        self.interval = interval or self.strategy.default_interval
        ratio_at(self.schedule, 0, 1, self.ratio)  # fail now on an unknown name, not mid-run
        interval_at(self.interval, 0, 1)
        self.generator = torch.Generator().manual_seed(seed)
        self.events = 0  # selection events so far (NINT's u)
        self.last_event: int | None = None
        self.scores: dict[str, torch.Tensor] = {}
        self.state = self.strategy.init_state(pool_size)
        self.selection: Selection | None = None

    def budget(self, progress: float) -> int:
        """How many examples to select at ``progress`` in [0, 1] of the run."""
        fraction = ratio_at(self.schedule, progress, 1.0, self.ratio)
        return max(1, min(self.pool_size, round(fraction * self.pool_size)))

    def step_size(self) -> int:
        """Examples a step trains on halfway through the run (the whole pool for full batch)."""
        return self.pool_size if self.strategy.whole_pool else self.budget(0.5)

    def select(self, step: int, progress: float, score: ScoreFn) -> Selection:
        """The selection to train on at iteration ``step``, ``progress`` in [0, 1] of the budget."""
        if self.interval == "void":
            return Selection(indices=None)
        if self.selection is None or is_selection_event(self.interval, step, self.last_event, progress, 1.0):
            ctx = Context(scores=self.scores, budget=self.budget(progress), pool_size=self.pool_size,
                          event=self.events, step=step, progress=progress, generator=self.generator,
                          state=self.state, total_steps=self.total_steps)
            for name in self.strategy.needs_at(ctx):
                self.scores[name] = score(name)
            self.selection = self.strategy.select(ctx)
            self.last_event = step
            self.events += 1
        return self.selection

    def observe(self, indices: torch.Tensor | None, losses: torch.Tensor,
                input_grads: torch.Tensor | None = None, step: int = 0) -> None:
        """Per-example losses (and input gradients, if asked for) of the examples just trained on."""
        self.strategy.observe(Feedback(indices=indices, losses=losses.detach(), step=step,
                                       input_grads=None if input_grads is None else input_grads.detach()),
                              self.state)

    @property
    def wants_input_grads(self) -> bool:
        return self.strategy.wants_input_grads

    @property
    def filters_batches(self) -> bool:
        return self.strategy.filters_batches

    def filter_batch(self, losses: torch.Tensor) -> torch.Tensor:
        """Bool mask of the batch examples to backprop, from their no-grad ``losses`` (Selective Backprop)."""
        return self.strategy.filter_batch(losses.detach(), self.state, self.generator)

    def extra_losses(self, step: int, progress: float) -> dict[str, float]:
        return self.strategy.extra_losses(step, progress)

    def state_dict(self) -> dict:
        """Everything needed to resume the same sequence of selections."""
        selection = self.selection or Selection(indices=None)
        return {
            "events": self.events,
            "last_event": self.last_event,
            "scores": {name: s.cpu() for name, s in self.scores.items()},
            "state": {name: s.cpu() for name, s in self.state.items()},
            "has_selection": self.selection is not None,
            "indices": None if selection.indices is None else selection.indices.cpu(),
            "weights": None if selection.weights is None else selection.weights.cpu(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.events = state["events"]
        self.last_event = state["last_event"]
        self.scores = {name: s.to(device) for name, s in state["scores"].items()}
        self.state = {name: s.to(device) for name, s in state["state"].items()}
        self.selection = None
        if state["has_selection"]:
            indices, weights = state["indices"], state["weights"]
            self.selection = Selection(
                indices=None if indices is None else indices.to(device),
                weights=None if weights is None else weights.to(device))
        self.generator.set_state(state["generator"])
