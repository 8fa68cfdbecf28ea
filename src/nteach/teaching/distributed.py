"""Teaching under torch.distributed: each rank scores its shard, one global selection, each rank its share.

Every rank holds the same model (DDP keeps the replicas equal) and the same Teacher, seeded
alike. At a selection event each rank scores its contiguous shard of the pool; the shards'
scores are gathered, so every rank's teacher sees the whole pool's scores and, drawing from
the same generator, makes the selection one process would make. Each rank then trains on
its share, ``indices[rank::world]``: every selected example once, on one rank. The
per-example losses of the shares are gathered back, so what the teacher learns (``observe``)
is the same on every rank and free of the world size: rank 0's checkpoint resumes on any
number of ranks.

Without a process group, or with a group of one, everything here is the plain Teacher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nteach.launch import Ranks, wire_device
from nteach.teaching.strategies import Selection
from nteach.teaching.teacher import ScoreFn, Teacher


def exchange_counts(count: int, ranks: Ranks) -> list[int]:
    """Every rank's ``count``, in rank order."""
    mine = torch.tensor([count], dtype=torch.long, device=wire_device(ranks.group))
    counts = [torch.empty_like(mine) for _ in range(ranks.size)]
    dist.all_gather(counts, mine, group=ranks.group)
    return [int(c) for c in counts]


def gathered_bytes(local: torch.Tensor, counts: list[int]) -> int:
    """Bytes each rank receives from ``gather_rows``: every rank's rows, padded to the longest."""
    return len(counts) * max(counts) * math.prod(local.shape[1:]) * local.element_size()


def gather_rows(local: torch.Tensor, ranks: Ranks, counts: list[int]) -> torch.Tensor:
    """Every rank's ``local`` rows, concatenated in rank order; rank r holds ``counts[r]`` rows.

    all_gather moves equal sizes, so each rank sends its rows padded to the longest shard.
    """
    if ranks.size == 1:
        return local
    if local.dtype == torch.bool:  # not every backend moves bools
        return gather_rows(local.to(torch.uint8), ranks, counts).bool()
    if len(local) != counts[ranks.rank]:
        raise ValueError(f"rank {ranks.rank} has {len(local)} rows, expected {counts[ranks.rank]}")
    padded = local.new_zeros((max(counts), *local.shape[1:]), device=wire_device(ranks.group))
    padded[:len(local)] = local.detach()
    pieces = [torch.empty_like(padded) for _ in range(ranks.size)]
    dist.all_gather(pieces, padded, group=ranks.group)
    return torch.cat([piece[:count] for piece, count in zip(pieces, counts)]).to(local.device)


def all_reduce_sum(tensors: list[torch.Tensor], group: dist.ProcessGroup | None) -> None:
    """Sum each tensor over the ranks of ``group``, in place: one all_reduce of one flat buffer."""
    flat = torch.cat([t.reshape(-1) for t in tensors]).to(wire_device(group))
    dist.all_reduce(flat, group=group)
    for tensor, part in zip(tensors, flat.split([t.numel() for t in tensors])):
        tensor.copy_(part.view_as(tensor))


@dataclass(frozen=True)
class Share:
    """This rank's part of a global selection: each selected example falls to exactly one rank."""

    selection: Selection  # the global selection, the same on every rank
    indices: torch.Tensor | None  # this rank's examples; None: the whole pool (one process)
    weights: torch.Tensor | None  # their loss weights; None: all ones
    total: int  # examples in the whole selection
    world: int  # ranks sharing it

    def loss(self, errors: torch.Tensor) -> torch.Tensor:
        """The weighted mean of ``errors`` over the whole selection, as this rank contributes it.

        DDP averages gradients over the ranks, so each rank's loss is its part of the
        one-process mean times ``world``: the averaged gradient is then the one-process one,
        whatever the share sizes.
        """
        weighted = errors if self.weights is None else errors * self.weights.to(errors.device)
        if self.world == 1:
            return weighted.mean()
        return weighted.sum() * (self.world / self.total)


class DistributedTeacher:
    """A Teacher whose selections are global under torch.distributed; the plain Teacher on one rank.

    ``score(name)`` passed to ``select`` returns this rank's shard of the pool (rows
    ``shard``); ``share`` deals the selection out; ``observe_share`` hands back the losses of
    this rank's share. ``event_bytes`` and ``feedback_bytes`` count what this rank received.
    """

    def __init__(self, teacher: Teacher, ranks: Ranks | None = None,
                 shard_sizes: list[int] | None = None) -> None:
        self.teacher = teacher
        self.ranks = ranks or Ranks.current()
        self.shard_sizes = shard_sizes or self.ranks.shard_sizes(teacher.pool_size)
        if len(self.shard_sizes) != self.ranks.size or sum(self.shard_sizes) != teacher.pool_size:
            raise ValueError(f"shards of {self.shard_sizes} do not cut a pool of {teacher.pool_size} "
                             f"into {self.ranks.size}")
        self.event_bytes: list[int] = []  # scores gathered at each selection event, in bytes
        self.feedback_bytes = 0  # losses (and input gradients) gathered by observe, in bytes
        self.observations = 0  # observe calls that gathered

    @property
    def shard(self) -> slice:
        """This rank's contiguous rows of the pool: what ``score(name)`` returns scores for."""
        start = sum(self.shard_sizes[:self.ranks.rank])
        return slice(start, start + self.shard_sizes[self.ranks.rank])

    def select(self, step: int, progress: float, score: ScoreFn) -> Selection:
        """The global selection, the same on every rank; ``score(name)`` scores this rank's shard."""
        if self.ranks.size == 1:
            return self.teacher.select(step, progress, score)
        events, received = self.teacher.events, 0

        def whole_pool(name: str) -> torch.Tensor:
            nonlocal received
            local = score(name)
            received += gathered_bytes(local, self.shard_sizes)
            return gather_rows(local, self.ranks, self.shard_sizes)

        selection = self.teacher.select(step, progress, whole_pool)
        if self.teacher.events > events:
            self.event_bytes.append(received)
        return selection

    def share(self, selection: Selection, device: torch.device | str | None = None) -> Share:
        """This rank's examples of ``selection``, ``indices[rank::world]``; ``device`` for a whole pool."""
        rank, world = self.ranks.rank, self.ranks.size
        total = selection.size(self.teacher.pool_size)
        if world == 1:
            return Share(selection, selection.indices, selection.weights, total, 1)
        indices = (torch.arange(rank, total, world, device=device) if selection.indices is None
                   else selection.indices[rank::world])
        weights = None if selection.weights is None else selection.weights[rank::world]
        return Share(selection, indices, weights, total, world)

    def _unshare(self, local: torch.Tensor, total: int) -> torch.Tensor:
        """Every rank's rows of a share, put back in the selection's order."""
        counts = self.ranks.share_sizes(total)
        self.feedback_bytes += gathered_bytes(local, counts)
        gathered = gather_rows(local, self.ranks, counts)
        world = self.ranks.size
        positions = torch.cat([torch.arange(rank, total, world) for rank in range(world)])
        restored = torch.empty_like(gathered)
        restored[positions.to(gathered.device)] = gathered
        return restored

    def observe_share(self, share: Share, losses: torch.Tensor, input_grads: torch.Tensor | None = None,
                      step: int = 0) -> None:
        """Losses (and input gradients) of this rank's share, in its order. Every rank's teacher
        observes the whole selection's, in the selection's order: what one process observes."""
        if self.ranks.size == 1:
            self.teacher.observe(share.indices, losses, input_grads, step)
            return
        self.observations += 1
        self.teacher.observe(share.selection.indices, self._unshare(losses.detach(), share.total),
                             None if input_grads is None else self._unshare(input_grads, share.total), step)

    def observe(self, indices: torch.Tensor, losses: torch.Tensor, input_grads: torch.Tensor | None = None,
                step: int = 0) -> torch.Tensor:
        """Losses of any per-rank batch (a DataLoader's, say): every rank's teacher observes the union
        of the ranks' batches, in rank order. For teachers that key what they learn by index.

        Returns the union's losses (``losses`` itself in one process): what the teacher observed,
        the same on every rank, for a global mean or count.
        """
        if self.ranks.size == 1:
            self.teacher.observe(indices, losses, input_grads, step)
            return losses.detach()
        if indices is None:
            raise ValueError("under torch.distributed, give the indices of the examples each rank trained on")
        self.observations += 1
        counts = exchange_counts(len(indices), self.ranks)
        parts = [indices, losses.detach()] + ([] if input_grads is None else [input_grads])
        self.feedback_bytes += 8 * self.ranks.size + sum(gathered_bytes(part, counts) for part in parts)
        union = [gather_rows(part, self.ranks, counts) for part in parts]
        self.teacher.observe(union[0], union[1], union[2] if input_grads is not None else None, step)
        return union[1]

    def filter_batch(self, losses: torch.Tensor) -> torch.Tensor:
        """The per-batch filter (Selective Backprop) of this rank's batch, from its no-grad ``losses``.

        The filter keeps a window of recent losses and draws from the teacher's generator, so
        filtering each rank's own batch would leave the ranks' teachers apart. Instead every rank
        filters every rank's batch, in rank order, with the one generator: the teachers stay
        identical (as if one process had seen the ranks' batches one after another), and each
        rank keeps its own part of the masks, never empty.
        """
        if self.ranks.size == 1:
            return self.teacher.filter_batch(losses)
        counts = exchange_counts(len(losses), self.ranks)
        every_batch = gather_rows(losses.detach().float(), self.ranks, counts).split(counts)
        masks = [self.teacher.filter_batch(batch) for batch in every_batch]
        return masks[self.ranks.rank].to(losses.device)

    def state_dict(self) -> dict:
        """The teacher's state: global, the same on every rank, whatever the number of ranks."""
        return self.teacher.state_dict()

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.teacher.load_state_dict(state, device)
