"""What every teaching strategy is: a named, frozen set of hyperparameters with a ``select``.

A strategy holds no model, optimizer, data or I/O. What it may remember
between events (a score cache, particles, a pruning mask) lives in a dict
of tensors that the Teacher owns and checkpoints (``init_state``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch


@dataclass(frozen=True)
class Selection:
    """The examples to train on until the next selection event.

    ``indices`` is None for the whole pool; ``weights`` (one per selected
    example, None for all ones) scale each example's loss.
    """

    indices: torch.Tensor | None
    weights: torch.Tensor | None = None

    def size(self, pool_size: int) -> int:
        return pool_size if self.indices is None else len(self.indices)


@dataclass
class Context:
    """Everything a strategy may read at a selection event."""

    scores: dict[str, torch.Tensor]  # named per-example scores, cached since they were last asked for
    budget: int  # examples to select, from the teacher's ratio schedule
    pool_size: int
    event: int  # selection events so far
    step: int  # training iteration
    progress: float  # fraction of the budget spent, in [0, 1]
    generator: torch.Generator
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # the strategy's own memory
    total_steps: int | None = None  # the run's length in steps (epochs, for epoch-level teaching), if known


@dataclass
class Feedback:
    """What a training step learnt about the examples it trained on, at no extra cost."""

    indices: torch.Tensor | None  # None: the whole pool
    losses: torch.Tensor  # per-example loss from the training forward, detached
    input_grads: torch.Tensor | None = None  # d loss_i / d x_i, when the strategy asked for them
    step: int = 0


@dataclass(frozen=True)
class Strategy:
    """Base of all strategies. Subclasses are frozen dataclasses registered by name.

    ``needs(event)`` names the scores the teacher must (re)compute before
    selection event ``event``; scores computed earlier stay cached in
    ``Context.scores``.
    """

    name: ClassVar[str] = ""
    default_ratio: ClassVar[float] = 0.2
    default_schedule: ClassVar[str] = "constant"
    default_interval: ClassVar[str] = "dense"
    wants_input_grads: ClassVar[bool] = False
    filters_batches: ClassVar[bool] = False  # True: the loop asks ``filter_batch`` which examples to backprop
    teaches: ClassVar[tuple[str, ...]] = ("coordinates",)  # its pools: a signal's "coordinates", "examples"
    whole_pool: ClassVar[bool] = False  # every step trains on every example, whatever the ratio

    def needs(self, event: int) -> tuple[str, ...]:
        return ()

    def needs_at(self, ctx: Context) -> tuple[str, ...]:
        """The scores to (re)compute before ``select(ctx)``: ``needs(ctx.event)`` unless overridden
        by a strategy whose answer depends on more than the event count (e.g. the run's length)."""
        return self.needs(ctx.event)

    def init_state(self, pool_size: int) -> dict[str, torch.Tensor]:
        return {}

    def check_coordinates(self, coords: torch.Tensor) -> None:
        """Raise UserError if this strategy cannot teach a pool at these coordinates (checked before
        a run starts, so that no run folder is made for a run that would fail at its first step)."""

    def select(self, ctx: Context) -> Selection:
        raise NotImplementedError

    def observe(self, feedback: Feedback, state: dict[str, torch.Tensor]) -> None:
        """Take the per-example losses of a training step (most strategies ignore them)."""

    def filter_batch(self, losses: torch.Tensor, state: dict[str, torch.Tensor],
                     generator: torch.Generator) -> torch.Tensor:
        """Which examples of a batch to backpropagate (bool mask), from their no-grad losses."""
        return torch.ones_like(losses, dtype=torch.bool)

    def extra_losses(self, step: int, progress: float) -> dict[str, float]:
        """Weighted extra loss terms the learner should add now, by name (e.g. {"laplacian": 1e-5})."""
        return {}


def random_subset(pool: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` entries of ``pool`` drawn uniformly without replacement."""
    order = torch.randperm(len(pool), generator=generator)[:count]
    return pool[order.to(pool.device)]


def top_k(scores: torch.Tensor, count: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the ``count`` largest scores, skipping the indices in ``exclude``."""
    if exclude is not None and len(exclude):
        scores = scores.clone()
        scores[exclude] = float("-inf")
    return torch.topk(scores, count, sorted=False).indices
