"""Process lifecycle under torchrun / accelerate launch: the process group from the environment, this
process's rank, agreement across ranks on progress, and the exit status of a launched run.

Everything here is the trivial one-process case when no launcher started the program.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

from nteach.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a process group: rank 0 of 1 when there is none."""

    rank: int = 0
    size: int = 1
    group: dist.ProcessGroup | None = None

    @classmethod
    def current(cls, group: dist.ProcessGroup | None = None) -> Ranks:
        """The initialised default group (or ``group``); rank 0 of 1 when torch.distributed is not set up."""
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        group = group or dist.group.WORLD
        return cls(dist.get_rank(group), dist.get_world_size(group), group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard_sizes(self, pool_size: int) -> list[int]:
        """Examples per rank when the pool is cut into contiguous shards, the first ones one longer."""
        base, extra = divmod(pool_size, self.size)
        return [base + (rank < extra) for rank in range(self.size)]

    def share_sizes(self, count: int) -> list[int]:
        """Examples per rank when ``count`` selected ones are dealt out as ``indices[rank::size]``."""
        return [len(range(rank, count, self.size)) for rank in range(self.size)]


def wire_device(group: dist.ProcessGroup | None) -> torch.device:
    """Where the backend wants its tensors: NCCL on this rank's GPU, gloo (and the rest) on the CPU."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_over_ranks(value: torch.Tensor, ranks: Ranks) -> float:
    """The mean of a scalar over the ranks, the same float on every rank."""
    if ranks.size == 1:
        return value.item()
    total = value.detach().reshape(1).to(wire_device(ranks.group), torch.float64)
    dist.all_reduce(total, group=ranks.group)
    return total.item() / ranks.size


def agree_on_progress(seconds: float, stop_asked: bool, ranks: Ranks) -> tuple[float, bool]:
    """Rank 0's training seconds, and whether any rank was asked to stop, on every rank.

    Each rank's clock reads a little differently; a seconds budget's progress drives the
    ratio schedule and the selection events, so every rank must use the same clock.
    """
    if ranks.size == 1:
        return seconds, stop_asked
    both = torch.tensor([seconds if ranks.is_main else 0.0, float(stop_asked)], dtype=torch.float64,
                        device=wire_device(ranks.group))
    dist.all_reduce(both, group=ranks.group)
    return both[0].item(), both[1].item() > 0


def on_main(action: Callable[[], T], ranks: Ranks) -> T:
    """``action()`` run on rank 0 alone; its result, or the UserError it raised, on every rank."""
    if ranks.size == 1:
        return action()
    outcome: list = [None]
    if ranks.is_main:
        try:
            outcome = [(action(), None)]
        except UserError as error:
            outcome = [(None, str(error))]
    dist.broadcast_object_list(outcome, group=ranks.group, group_src=0)
    result, error = outcome[0]
    if error is not None:
        raise UserError(error)
    return result


def launched_rank() -> int:
    """This process's global rank as its launcher (torchrun, accelerate launch) set it; 0 without one."""
    return int(os.environ.get("RANK", "0"))


def exit_code_of_launched(code: int) -> int:
    """``code`` as the exit status; under a launcher (WORLD_SIZE > 1) the process ends here with it.

    A process that used gloo sometimes aborts while the interpreter shuts down, after its work
    is done ("terminate called without an active exception": a thread of the backend), which
    turns a finished rank's exit status into 1. Ending with ``os._exit`` skips that shutdown;
    the run's files are all written and renamed by then.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextmanager
def process_group_from_env(device: torch.device) -> Iterator[tuple[Ranks, torch.device]]:
    """Under torchrun (WORLD_SIZE > 1): join the process group unless it is joined already, and
    yield this rank's place and device; leave the group on the way out if it was joined here.

    A CUDA device becomes cuda:LOCAL_RANK with NCCL; anything else runs on gloo.
    Outside torchrun: (rank 0 of 1, ``device``).
    """
    joined_here = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or (dist.is_available() and dist.is_initialized()):
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            if device.type == "cuda":
                dist.init_process_group("nccl", device_id=device)
            else:
                dist.init_process_group("gloo")
            joined_here = True
    finished = False
    try:
        yield Ranks.current(), device
        finished = True
    finally:
        if joined_here:
            if finished:  # after a failure on one rank, the others may never reach a barrier
                dist.barrier()
            dist.destroy_process_group()
