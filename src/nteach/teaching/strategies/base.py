"""What every teaching strategy is: a named, frozen set of hyperparameters with a pure ``select``."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Strategy:
    """Base of all strategies. Subclasses are frozen dataclasses registered by name.

    ``needs(event)`` names the scores the teacher must (re)compute before
    selection event ``event``; scores computed at earlier events stay cached
    and are passed again. ``select`` is pure: the same scores, budget, event
    and generator state give the same selection.
    """

    name: ClassVar[str] = ""
    default_schedule: ClassVar[str] = "constant"
    default_interval: ClassVar[str] = "dense"

    def needs(self, event: int) -> tuple[str, ...]:
        return ()

    def select(self, scores: dict[str, torch.Tensor], budget: int, pool_size: int,
               event: int, generator: torch.Generator) -> Selection:
        raise NotImplementedError


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
