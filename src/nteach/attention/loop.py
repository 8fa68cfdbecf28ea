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

Under torchrun (DDP, the model wrapped in DistributedDataParallel) the same
loop runs on every rank with two changes::

    score(name) returns the scores of the rows teaching.shard only   # each rank scores its shard
    loader = DataLoader(IndexedDataset(train), batch_sampler=teaching.batches(64))

Each global batch of 64 is dealt out over the ranks (``batch[rank::world]``),
and ``teaching.loss`` scales each rank's part so that the gradient DDP
averages is the one-process gradient of that batch. The teacher observes the
union of the ranks' batches and filters every rank's batch, so its state, and
hence the next selection, is the same on every rank: selected once, sharded
once. ``teaching.sampler`` is the global order for a launcher that shards it
itself (accelerate's prepared DataLoader): give a loader one or the other,
never both. Nothing global is patched.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.utils.data import Sampler

from nteach.errors import UserError
from nteach.launch import Ranks
from nteach.teaching import Selection, Teacher
from nteach.teaching.distributed import DistributedTeacher
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


def global_batches(count: int, size: int, world: int = 1) -> list[tuple[int, int]]:
    """(start, stop) of each global batch of ``size`` over ``count`` examples in order.

    A last batch with fewer examples than ranks joins the one before: dealt out over ``world``
    ranks, every batch then gives every rank at least one example, so the ranks take the same
    steps and none runs an empty forward. In one process nothing is ever joined.
    """
    if 0 < count < world:
        raise UserError(f"{count} selected examples cannot give each of {world} ranks one; use fewer ranks")
    bounds = [(start, min(start + size, count)) for start in range(0, count, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < world:
        bounds[-2:] = [(bounds[-2][0], count)]
    return bounds


class ShareBatches(Sampler[list[int]]):
    """This rank's share, ``batch[rank::world]``, of each global batch of ``size`` of ``sampler``'s order
    (one process: the batches themselves). A DataLoader's ``batch_sampler`` under DDP."""

    def __init__(self, sampler: TeachingSampler, size: int, ranks: Ranks) -> None:
        self.sampler, self.size, self.ranks = sampler, size, ranks

    def __len__(self) -> int:
        return len(global_batches(len(self.sampler), self.size, self.ranks.size))

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        for start, stop in global_batches(len(order), self.size, self.ranks.size):
            yield order[start:stop][self.ranks.rank::self.ranks.size]


def new_work() -> dict[str, int]:
    """What a run has done, counted: optimizer steps; examples trained on (forward and backward) and
    examples forwarded without grad (scoring passes, Selective Backprop's filter), and, for text, their
    token positions. At prices fitted to a case's runs (nteach.bench.attention_clock), these give a
    training time that the machine's clock cannot move."""
    return {"steps": 0, "trained": 0, "forwarded": 0, "trained_tokens": 0, "forwarded_tokens": 0}


def _no_scores(name: str) -> torch.Tensor:
    raise UserError(f"the teacher asks for the score {name!r}: pass a score function to start_epoch")


class Teaching:
    """A Teacher driven once per epoch, with its sampler, per-example weights and feedback.

    ``ranks``: this process's place in a process group (default: the initialised one, if any).
    """

    def __init__(self, teacher: Teacher, seed: int = 0, ranks: Ranks | None = None) -> None:
        if teacher.total_steps is None:
            raise UserError("give the Teacher total_steps = the number of epochs")
        self.teacher = teacher
        self.ranks = ranks or Ranks.current()
        self.global_teacher = DistributedTeacher(teacher, self.ranks)
        self.epochs = teacher.total_steps
        self.sampler = TeachingSampler(teacher.pool_size, seed)
        self.epoch = 0
        self.weights: torch.Tensor | None = None  # per dataset index, None: all ones
        self.observed = torch.zeros(0)  # the losses of the last ``loss`` call, every rank's

    @property
    def shard(self) -> slice:
        """The rows of the pool this rank scores (all of them in one process)."""
        return self.global_teacher.shard

    def batches(self, size: int) -> ShareBatches:
        """This rank's share of each global batch of ``size`` (the batches themselves in one process)."""
        return ShareBatches(self.sampler, size, self.ranks)

    def start_epoch(self, epoch: int, score: ScoreFn | None = None, skip: int = 0) -> Selection:
        """Select this epoch's examples and point the sampler at them (``score(name)`` if asked for:
        the scores of the rows ``shard``, gathered over the ranks).

        ``skip`` drops the first examples of the epoch's order, to resume mid-epoch.
        """
        self.epoch = epoch
        selection = self.global_teacher.select(epoch, epoch / self.epochs, score or _no_scores)
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
            return self.global_teacher.filter_batch(losses())

    def loss(self, index: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """Report the batch's per-example losses to the teacher; return the (weighted) mean to backprop.

        Under DDP the mean is over the global batch (every rank's examples): this rank's sum times
        world / global count, so the gradient DDP averages is the one-process one.
        """
        self.observed = self.global_teacher.observe(index, losses, step=self.epoch)
        weighted = losses
        if self.weights is not None:
            weighted = losses * self.weights[index.to(self.weights.device)].to(losses)
        if self.ranks.size == 1:
            return weighted.mean()
        return weighted.sum() * (self.ranks.size / len(self.observed))
