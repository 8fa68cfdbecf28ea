"""A teaching round as a Trainer epoch: the training set seen through the round's order, and the
learning-rate schedule read at the run's progress in rounds."""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import Dataset


def round_order(pool: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """``pool`` permuted by ``seed`` and cycled up to ``count`` indices."""
    generator = torch.Generator().manual_seed(seed)
    cycles = -(-count // len(pool))
    return torch.cat([pool[torch.randperm(len(pool), generator=generator)] for _ in range(cycles)])[:count]


class RoundView(Dataset):
    """The training set as the Trainer's sequential sampler reads it: position ``p`` is example
    ``order[p]`` of this round. Its length is constant (the Trainer sizes its run from it once), a
    multiple of the examples an optimizer step takes over every rank."""

    def __init__(self, dataset, capacity: int) -> None:
        self.dataset, self.capacity = dataset, capacity
        self.order = round_order(torch.arange(len(dataset)), capacity, 0)

    def set_order(self, order: torch.Tensor) -> None:
        """Positions past ``len(order)`` (never trained: the round stops first) repeat it, so that a
        DataLoader reading ahead still finds an example there."""
        self.order = order.repeat(-(-self.capacity // max(1, len(order))))[:self.capacity]

    def __len__(self) -> int:
        return self.capacity

    def __getitem__(self, position: int):
        return self.dataset[int(self.order[position])]


def progress_schedule(schedule: Callable[[int], float], progress: Callable[[], float],
                      steps_per_round: int) -> Callable[[int], float]:
    """A Hugging Face LR multiplier (a function of the step, over rounds x ``steps_per_round`` steps) read
    at ``progress()`` rounds instead: a run whose rounds are shorter than the pool still ends its
    schedule at its last step. A plain function, so a scheduler's state_dict never pickles it."""

    def multiplier(step: int) -> float:
        return schedule(progress() * steps_per_round)

    return multiplier
