"""Teaching in a plain PyTorch loop: a Sampler over the selected dataset indices, and a few helpers.

Your loop stays yours; teaching adds four lines (+) and changes three (~)::

    teacher = Teacher("attent_complex", len(train), total_steps=epochs, seed=0)          # +
    teaching = Teaching(teacher, seed=0)                                                  # +
    loader = DataLoader(IndexedDataset(train), batch_size=64, sampler=teaching.sampler)    # ~ not shuffle
    for epoch in range(epochs):
        teaching.start_epoch(epoch, score)                                                # +
        for images, labels, index in loader:                                              # ~ the index added
            losses = F.cross_entropy(model(images), labels, reduction="none")             # ~ per example
            loss = teaching.loss(index, losses)  # + reports the losses, applies the weights
            optimizer.zero_grad(); loss.backward(); optimizer.step()

``score(name)`` is yours too: for "loss", the no-grad per-example losses of
the whole pool in dataset order, for teachers that ask (AtteNT-Complex);
run it on your training clock. Selective Backprop filters each batch: two
more lines before the forward::

            keep = teaching.keep(lambda: F.cross_entropy(model(images), labels, reduction="none"))
            images, labels, index = images[keep], labels[keep], index[keep]

The sampler yields the global order (the same on every rank): under
accelerate / DDP let the launcher shard it; it never shards itself.
Nothing global is patched.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import Sampler

from nteach.errors import UserError
from nteach.teaching import Selection, Teacher
from nteach.teaching.teacher import ScoreFn


class TeachingSampler(Sampler[int]):
    """The current selection (or the whole pool) in an order seeded by ``seed + epoch``.

    ``set_epoch(epoch, skip)`` fixes the order and drops its first ``skip``
    indices (to resume mid-epoch); ``set_indices`` changes what is yielded.
    """

    def __init__(self, pool_size: int, seed: int = 0) -> None:
        self.pool_size = pool_size
        self.seed = seed
        self.epoch = 0
        self.skip = 0
        self.indices: torch.Tensor | None = None  # None: the whole pool

    def set_indices(self, indices: torch.Tensor | None) -> None:
        self.indices = None if indices is None else indices.cpu()

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def order(self) -> torch.Tensor:
        """This epoch's full order, before skipping."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        count = self.pool_size if self.indices is None else len(self.indices)
        permutation = torch.randperm(count, generator=generator)
        return permutation if self.indices is None else self.indices[permutation]

    def __len__(self) -> int:
        count = self.pool_size if self.indices is None else len(self.indices)
        return max(0, count - self.skip)

    def __iter__(self):
        return iter(self.order()[self.skip:].tolist())


def _no_scores(name: str) -> torch.Tensor:
    raise UserError(f"the teacher asks for the score {name!r}: pass a score function to start_epoch")


class Teaching:
    """A Teacher driven once per epoch, with its sampler, per-example weights and feedback."""

    def __init__(self, teacher: Teacher, seed: int = 0) -> None:
        if teacher.total_steps is None:
            raise UserError("give the Teacher total_steps = the number of epochs")
        self.teacher = teacher
        self.epochs = teacher.total_steps
        self.sampler = TeachingSampler(teacher.pool_size, seed)
        self.epoch = 0
        self.weights: torch.Tensor | None = None  # per dataset index, None: all ones

    def start_epoch(self, epoch: int, score: ScoreFn | None = None, skip: int = 0) -> Selection:
        """Select this epoch's examples and point the sampler at them (``score(name)`` if asked for).

        ``skip`` drops the first examples of the epoch's order, to resume mid-epoch.
        """
        self.epoch = epoch
        selection = self.teacher.select(epoch, epoch / self.epochs, score or _no_scores)
        self.sampler.set_indices(selection.indices)
        self.sampler.set_epoch(epoch, skip)
        self.weights = None
        if selection.weights is not None:
            self.weights = torch.ones(self.teacher.pool_size, device=selection.weights.device)
            self.weights[selection.indices] = selection.weights
        return selection

    def keep(self, losses: Callable[[], torch.Tensor]) -> torch.Tensor | slice:
        """Which examples of the batch to train on: a bool mask from a per-batch filter
        (``losses()`` then runs without grad), or ``slice(None)``, all of them, for other teachers."""
        if not self.teacher.filters_batches:
            return slice(None)
        with torch.no_grad():
            return self.teacher.filter_batch(losses())

    def loss(self, index: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """Report the batch's per-example losses to the teacher; return the (weighted) mean to backprop."""
        self.teacher.observe(index, losses, step=self.epoch)
        if self.weights is None:
            return losses.mean()
        return (losses * self.weights[index.to(self.weights.device)].to(losses)).mean()
