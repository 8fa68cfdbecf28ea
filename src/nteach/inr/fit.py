"""Fit an INR to a signal while a teacher picks the coordinates of each step.

The training clock (nteach.timing) covers selection, scoring and the
optimisation step; evaluation, bookkeeping and checkpoints run off the clock.

Under torchrun (an initialised process group of several ranks) the model is
wrapped in DistributedDataParallel: each rank scores its shard of the
coordinates, the selection is global (nteach.teaching.distributed), each rank
trains on its share of it, and DDP averages the gradients. Every rank keeps
the same model, teacher, history and clock (rank 0's), so any rank's state
is the run's; the caller lets rank 0 alone write files.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nteach.compiling import compiled, mark_step
from nteach.errors import UserError
from nteach.inr.lr import check_lr_schedule, lr_factor
from nteach.inr.signals import Signal
from nteach.launch import Ranks, mean_over_ranks
from nteach.progress import progress_bar, show_status
from nteach.run_state import RunState, WithRunState
from nteach.teaching import Teacher, l1_residual, ntk_score, predict
from nteach.teaching.distributed import DistributedTeacher
from nteach.timing import synchronize

EVALS_PER_RUN = 50


def quality(record: dict) -> dict[str, float]:
    """The quality measures of a history record, without its bookkeeping (step, seconds, work, ...)."""
    return {k: v for k, v in record.items() if k not in ("step", "seconds", "selected", "work")}


def new_work() -> dict[str, int]:
    """What a run has done, counted: steps, examples trained on (forward and backward), examples
    forwarded without grad by scoring passes, and examples in NTK products. Times unit costs from
    nteach.bench.probe, these give a training time that the machine's clock cannot move."""
    return {"steps": 0, "trained": 0, "forwarded": 0, "ntk": 0}


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


class Fit(WithRunState):
    """One fitting run: model, Adam, teacher, clock and history. Checkpointable at any step boundary.

    ``ranks``: this process's place in a process group (default: the initialised one, if any).
    ``compile``: ``off``, ``on`` or ``graphs`` (nteach.compiling; resolved, not ``auto``) for the training
    step; ``compile_scoring`` the same for no-grad passes over the pool (default: ``compile``).
    """

    def __init__(self, signal: Signal, model: nn.Module, teacher: Teacher, budget: Budget,
                 lr: float = 1e-4, eval_every: float | None = None, chunk: int = 65536,
                 device: torch.device | str = "cpu", ranks: Ranks | None = None,
                 lr_schedule: str = "constant", compile: str = "off",
                 compile_scoring: str | None = None) -> None:
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
        self.lr, self.lr_schedule = lr, check_lr_schedule(lr_schedule)
        self.run_state = RunState(self.device, new_work(), ranks)  # clock, work, ranks, random stream
        self.eval_every = eval_every or max(budget.total / EVALS_PER_RUN, 1 if budget.steps else 1e-3)
        self.step = 0
        self.next_eval = 0.0  # in budget units (steps or seconds)
        self.history: list[dict] = []
        self.counts = torch.zeros(len(signal), dtype=torch.int32, device=self.device)
        self.last_selected = 0
        self.ranks = self.run_state.ranks
        self.global_teacher = DistributedTeacher(teacher, self.ranks)
        self.shard = self.global_teacher.shard  # the coordinates this rank scores
        self.compile, self.compile_scoring = compile, compile_scoring or compile
        self.scorer = compiled(self.model, self.compile_scoring)  # no-grad passes: scoring and evaluation
        self.learner = (compiled(self._data_parallel(), compile) if self.ranks.size > 1 else
                        self.scorer if compile == self.compile_scoring else compiled(self.model, compile))
        self.compile_seconds = 0.0  # the warm-up's, off the training clock
        self.warmed_up = compile == self.compile_scoring == "off"


    def _data_parallel(self) -> nn.Module:
        """The model under DDP, for the training forward (scoring and evaluation use the bare model)."""
        if self.teacher.extra_losses(0, 0.0):
            raise UserError(f"{self.teacher.strategy.name} adds a loss term over the whole signal, which "
                            "one rank's share cannot compute: it does not run under torchrun yet")
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=device_ids)

    def _score(self, name: str) -> torch.Tensor:
        """A per-example score over this rank's shard of the signal (all of it in one process);
        a full pass, on the training clock."""
        coords, targets = self.coords[self.shard], self.targets[self.shard]
        if name in ("residual", "squared_error"):
            self.work["forwarded"] += len(coords)
        elif name == "ntk":
            self.work["ntk"] += len(coords)
        if name == "residual":
            return l1_residual(predict(self.scorer, coords, self.chunk), targets)
        if name == "squared_error":
            return (predict(self.scorer, coords, self.chunk) - targets).pow(2).flatten(1).mean(dim=1)
        if name == "ntk":
            return ntk_score(self.model, coords, targets, self.chunk, process_group=self.ranks.group)
        if name == "coordinates":  # (N, d): each example's x, for strategies that move in input space
            return coords
        # a signal's own scores (edges, Laplacian error) need the whole signal: computed whole, then cut
        return self.signal.score(name, self._counted_predictions).to(self.device)[self.shard]

    def _counted_predictions(self) -> torch.Tensor:
        self.work["forwarded"] += len(self.signal)
        return self.predictions()

    def train_step(self) -> None:
        """Select, then one Adam step on this rank's share of the selected coordinates (all of them in
        one process); all of it on the training clock."""
        self.warm_up()
        with self.clock.running():
            mark_step(self.compile)
            progress = self.budget.progress(self.step, self.clock.seconds)
            selection = self.global_teacher.select(self.step, progress, self._score)
            share = self.global_teacher.share(selection, self.device)
            indices = share.indices
            coords = self.coords if indices is None else self.coords[indices]
            targets = self.targets if indices is None else self.targets[indices]
            if self.teacher.wants_input_grads:
                coords = coords.clone().requires_grad_(True)
            predictions = self.learner(coords)
            errors = (predictions - targets).pow(2).flatten(1).mean(dim=1)
            loss = share.loss(errors)
            self.work["trained"] += len(errors)
            for name, weight in self.teacher.extra_losses(self.step, progress).items():
                loss = loss + weight * self.signal.extra_loss(name, predictions, indices)
            value = mean_over_ranks(loss, self.ranks)  # every rank must stop together, or the rest wait
            if not math.isfinite(value):
                raise Diverged(f"the loss became {value} at step {self.step}; lower the learning rate")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr * lr_factor(self.lr_schedule, progress)
            self.optimizer.step()
            input_grads = coords.grad if coords.requires_grad else None
            if input_grads is not None and share.world > 1:
                input_grads = input_grads / share.world  # this rank's loss is ``world`` times its part
            self.global_teacher.observe_share(share, errors, input_grads, self.step)
        if selection.indices is None:
            self.counts += 1
        else:
            selected = selection.indices.to(self.counts.device)  # teachers that draw on the CPU give CPU ones
            self.counts.index_add_(0, selected, torch.ones_like(selected, dtype=self.counts.dtype))
        self.last_selected = selection.size(len(self.signal))
        self.step += 1
        self.work["steps"] += 1

    def predictions(self) -> torch.Tensor:
        return predict(self.scorer, self.coords, self.chunk)

    def warm_up(self) -> None:
        """Compile before the clock runs (once; nothing when not compiling): a training forward and
        backward on a step's batch and on this rank's whole shard, so that any size in between runs a
        graph compiled here, then a scoring pass. No optimizer step, no random draw: the run's path is
        unchanged. Its seconds are ``compile_seconds``."""
        if self.warmed_up:
            return
        start = time.perf_counter()
        coords, targets = self.coords[self.shard], self.targets[self.shard]
        batch = max(1, self.teacher.budget(0.0) // self.ranks.size)
        for size in (min(batch, len(coords)), len(coords)):  # as many backwards on every rank (DDP)
            inputs = coords[:size].clone().requires_grad_(self.teacher.wants_input_grads)
            (self.learner(inputs) - targets[:size]).pow(2).mean().backward()
        self.optimizer.zero_grad(set_to_none=True)
        self.predictions()
        synchronize(self.device)
        self.compile_seconds += time.perf_counter() - start
        self.warmed_up = True

    def evaluate(self) -> dict:
        """Quality over the whole signal, appended to the history (off the clock)."""
        record = {"step": self.step, "seconds": self.clock.seconds, "selected": self.last_selected,
                  "work": dict(self.work), **self.signal.evaluate(self.predictions())}
        self.history.append(record)
        self.next_eval = self.budget.used(self.step, self.clock.seconds) + self.eval_every
        return record

    def done(self) -> bool:
        return self.budget.used(self.step, self.clock.seconds) >= self.budget.total

    def shown_progress(self) -> float:
        """The budget used, for the progress bar: a step's last seconds overshoot a time budget, and
        the bar stops at its total."""
        return min(self.budget.used(self.step, self.clock.seconds), self.budget.total)

    def run(self, show_progress: bool = True, stop: threading.Event | None = None,
            checkpoint: Callable[[], None] | None = None, checkpoint_every: int = 0) -> bool:
        """Train until the budget is spent (True) or ``stop`` is set (False).

        ``checkpoint`` is called every ``checkpoint_every`` steps and when stopping early.
        Under DDP the ranks agree after every step on rank 0's clock and on stopping (if any
        rank's ``stop`` is set), so that they select, evaluate and stop at the same steps.
        """
        unit = "step" if self.budget.steps is not None else "s"
        bar_format = "{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}{postfix}]"
        with progress_bar(total=self.budget.total, unit=unit, show=show_progress,
                          bar_format=bar_format) as bar, self.run_state.random_stream():
            bar.update(self.shown_progress())
            if not self.warmed_up:
                show_status(bar, "compiling, off the clock")
            self.warm_up()
            if not self.history:
                self.evaluate()
            stopping = self.run_state.agree(stop)
            while not self.done():
                if stopping:
                    if checkpoint:
                        checkpoint()
                    return False
                before = self.shown_progress()
                self.train_step()
                stopping = self.run_state.agree(stop)
                bar.update(self.shown_progress() - before)
                if self.budget.used(self.step, self.clock.seconds) >= self.next_eval or self.done():
                    record = self.evaluate()
                    metric = self.signal.metric
                    show_status(bar, f"step {self.step}, {metric} {record[metric]:.3f}, "
                                     f"train {self.clock.seconds:.1f} s")
                if checkpoint and checkpoint_every and self.step % checkpoint_every == 0:
                    checkpoint()
        if checkpoint:
            checkpoint()
        return True

    def state_dict(self) -> dict:
        """Everything an exact resume needs, on any number of ranks (all of it is global)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "teacher": self.teacher.state_dict(),
            "step": self.step,
            "next_eval": self.next_eval,
            "history": self.history,
            "counts": self.counts.cpu(),
            "last_selected": self.last_selected,
            **self.run_state.state_dict(),  # seconds, work, the random stream
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.teacher.load_state_dict(state["teacher"], self.device)
        self.step = state["step"]
        self.run_state.load_state_dict(state)
        self.next_eval = state["next_eval"]
        self.history = list(state["history"])
        self.counts = state["counts"].to(self.device)
        self.last_selected = state["last_selected"]
