"""Fit an INR to a signal while a teacher picks the coordinates of each step.

The training clock (nteach.timing) covers selection, scoring and the
optimisation step; evaluation, bookkeeping and checkpoints run off the clock.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from nteach.errors import UserError
from nteach.inr.signals import Signal
from nteach.teaching import Teacher, l1_residual, ntk_score, predict
from nteach.timing import TrainClock

EVALS_PER_RUN = 50


class Diverged(UserError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class Budget:
    """How long to train: a number of steps or a number of training seconds."""

    steps: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.seconds is None):
            raise UserError("give exactly one of steps or seconds")
        if (self.steps is not None and self.steps <= 0) or (self.seconds is not None and self.seconds <= 0):
            raise UserError(f"the budget must be > 0, got steps={self.steps}, seconds={self.seconds}")

    @property
    def total(self) -> float:
        return float(self.steps if self.steps is not None else self.seconds)

    def used(self, step: int, seconds: float) -> float:
        return float(step if self.steps is not None else seconds)

    def progress(self, step: int, seconds: float) -> float:
        return min(self.used(step, seconds) / self.total, 1.0)


class Fit:
    """One fitting run: model, Adam, teacher, clock and history. Checkpointable at any step boundary."""

    def __init__(self, signal: Signal, model: nn.Module, teacher: Teacher, budget: Budget,
                 lr: float = 1e-4, eval_every: float | None = None, chunk: int = 65536,
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.signal = signal
        self.model = model.to(self.device)
        self.coords = signal.coords.to(self.device)
        self.targets = signal.targets.to(self.device)
        self.teacher = teacher
        teacher.strategy.check_coordinates(signal.coords)
        self.budget = budget
        self.chunk = chunk
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.clock = TrainClock(self.device)
        self.eval_every = eval_every or max(budget.total / EVALS_PER_RUN, 1 if budget.steps else 1e-3)
        self.step = 0
        self.next_eval = 0.0  # in budget units (steps or seconds)
        self.history: list[dict] = []
        self.counts = torch.zeros(len(signal), dtype=torch.int32, device=self.device)
        self.last_selected = 0

    def _score(self, name: str) -> torch.Tensor:
        """A per-example score over the whole signal (a full pass: on the training clock)."""
        if name == "residual":
            return l1_residual(self.predictions(), self.targets)
        if name == "squared_error":
            return (self.predictions() - self.targets).pow(2).flatten(1).mean(dim=1)
        if name == "ntk":
            return ntk_score(self.model, self.coords, self.targets, self.chunk)
        if name == "coordinates":  # (N, d): each example's x, for strategies that move in input space
            return self.coords
        return self.signal.score(name, self.predictions).to(self.device)

    def train_step(self) -> None:
        """Select, then one Adam step on the selected coordinates; all of it on the training clock."""
        with self.clock.running():
            progress = self.budget.progress(self.step, self.clock.seconds)
            selection = self.teacher.select(self.step, progress, self._score)
            indices = selection.indices
            coords = self.coords if indices is None else self.coords[indices]
            targets = self.targets if indices is None else self.targets[indices]
            if self.teacher.wants_input_grads:
                coords = coords.clone().requires_grad_(True)
            predictions = self.model(coords)
            errors = (predictions - targets).pow(2).flatten(1).mean(dim=1)
            loss = (errors if selection.weights is None else errors * selection.weights).mean()
            for name, weight in self.teacher.extra_losses(self.step, progress).items():
                loss = loss + weight * self.signal.extra_loss(name, predictions, indices)
            if not math.isfinite(loss.item()):
                raise Diverged(f"the loss became {loss.item()} at step {self.step}; lower the learning rate")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.teacher.observe(indices, errors, coords.grad if coords.requires_grad else None, self.step)
        if indices is None:
            self.counts += 1
        else:
            self.counts.index_add_(0, indices, torch.ones_like(indices, dtype=self.counts.dtype))
        self.last_selected = selection.size(len(self.signal))
        self.step += 1

    def predictions(self) -> torch.Tensor:
        return predict(self.model, self.coords, self.chunk)

    def evaluate(self) -> dict:
        """Quality over the whole signal, appended to the history (off the clock)."""
        record = {"step": self.step, "seconds": self.clock.seconds, "selected": self.last_selected,
                  **self.signal.evaluate(self.predictions())}
        self.history.append(record)
        self.next_eval = self.budget.used(self.step, self.clock.seconds) + self.eval_every
        return record

    def done(self) -> bool:
        return self.budget.used(self.step, self.clock.seconds) >= self.budget.total

    def run(self, show_progress: bool = True, stop: threading.Event | None = None,
            checkpoint: Callable[[], None] | None = None, checkpoint_every: int = 0) -> bool:
        """Train until the budget is spent (True) or ``stop`` is set (False).

        ``checkpoint`` is called every ``checkpoint_every`` steps and when stopping early.
        """
        unit = "step" if self.budget.steps is not None else "s"
        bar_format = "{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}{postfix}]"
        with tqdm(total=self.budget.total, unit=unit, disable=not show_progress, dynamic_ncols=True,
                  bar_format=bar_format) as bar:
            bar.update(self.budget.used(self.step, self.clock.seconds))
            if not self.history:
                self.evaluate()
            while not self.done():
                if stop is not None and stop.is_set():
                    if checkpoint:
                        checkpoint()
                    return False
                before = self.budget.used(self.step, self.clock.seconds)
                self.train_step()
                used = self.budget.used(self.step, self.clock.seconds)
                bar.update(used - before)
                if used >= self.next_eval or self.done():
                    record = self.evaluate()
                    metric = self.signal.metric
                    bar.set_postfix_str(f"step {self.step}, {metric} {record[metric]:.3f}, "
                                        f"train {self.clock.seconds:.1f} s")
                if checkpoint and checkpoint_every and self.step % checkpoint_every == 0:
                    checkpoint()
        if checkpoint:
            checkpoint()
        return True

    def state_dict(self) -> dict:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "teacher": self.teacher.state_dict(),
            "step": self.step,
            "seconds": self.clock.seconds,
            "next_eval": self.next_eval,
            "history": self.history,
            "counts": self.counts.cpu(),
            "last_selected": self.last_selected,
            "torch_rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.teacher.load_state_dict(state["teacher"], self.device)
        self.step = state["step"]
        self.clock.seconds = state["seconds"]
        self.next_eval = state["next_eval"]
        self.history = list(state["history"])
        self.counts = state["counts"].to(self.device)
        self.last_selected = state["last_selected"]
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
