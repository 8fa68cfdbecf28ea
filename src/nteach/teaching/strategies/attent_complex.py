"""AtteNT-Complex (ICLR 2026, the ViT-from-scratch teacher): cycles of subset epochs and full epochs.

Call ``select`` once per epoch, with the Teacher's ``total_steps`` set to
the number of epochs E. After ``warmup`` full epochs the remaining ones are
split into C = min(cycles, E - warmup) cycles of (nearly) equal length.
Cycle c in 0..C-1 starts with k_c epochs on a subset of r_c of the pool,
the rest of its epochs train on everything:

    r_c = r0 + (r1 - r0) c / (C - 1)                      (incremental)
    r_c = r0 + (r1 - r0) (1 - cos(pi c / (C - 1))) / 2    (cosine)
    k_c = k0                                              (fixed interval)
    k_c = k0 + floor((k_max - k0) c / (C - 1))            (incremental interval)

k_c is capped by the cycle's length. Left unset (None), cycles, k0 and k_max
are scaled from the paper's run (800 epochs, 10 cycles of 80, k from 5 to 10:
a cycle opens with 1/16 to 1/8 of its epochs on the subset) to this one:

    C     = min(10, max(1, (E - warmup) // 4))   (a cycle lasts 4 epochs or more)
    L     = (E - warmup) / C                      (epochs per cycle)
    k0    = max(1, round(5 L / 80)),  k_max = max(k0, round(10 L / 80))

so 800 epochs get the paper's 10 cycles with k from 5 to 10, and 40 epochs
get 9 cycles of 4.3 epochs, each one subset epoch and then the full pool. The subset is drawn from a no-grad
scoring pass over the pool (the score "loss"): hard = top-k, once per
cycle; soft = Gumbel-top-k with p = softmax(loss / T), re-scored before
every subset epoch; random = uniform, once per cycle, no scoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nteach.errors import UserError
from nteach.teaching.strategies.base import Context, Selection, Strategy, random_subset, top_k
from nteach.teaching.strategies.registry import register

PAPER_CYCLES, PAPER_CYCLE, PAPER_K0, PAPER_K_MAX = 10, 80, 5, 10  # 800 epochs: 10 cycles of 80
MIN_SCALED_CYCLE = 4  # epochs: a scaled cycle has room for its subset epoch and full ones


def gumbel_top_k(scores: torch.Tensor, count: int, temperature: float, generator: torch.Generator
                 ) -> torch.Tensor:
    """``count`` distinct indices drawn without replacement with p = softmax(scores / temperature)."""
    uniform = torch.rand(len(scores), generator=generator, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(uniform.clamp_min(torch.finfo(torch.float64).tiny)))
    keys = scores.detach().double().cpu() / temperature + gumbel
    return torch.topk(keys, count, sorted=False).indices.to(scores.device)


@dataclass(frozen=True)
class Cycles(Strategy):
    """AtteNT-Complex's epoch plan; subclasses say how a cycle's subset is drawn (``draw``)."""

    cycles: int | None = None  # C; None: scaled from the paper's 10 cycles in 800 epochs
    warmup: int = 1  # full epochs before the first cycle
    r0: float = 0.2  # subset ratio of the first cycle
    r1: float = 0.8  # subset ratio of the last cycle
    ratio_schedule: str = "incremental"  # or "cosine"
    interval_schedule: str = "incremental"  # or "fixed"
    k0: int | None = None  # subset epochs per cycle (fixed) or in the first (incremental); None: scaled
    k_max: int | None = None  # subset epochs in the last cycle (incremental interval); None: scaled

    def __post_init__(self) -> None:
        if self.ratio_schedule not in ("incremental", "cosine"):
            raise UserError(f"unknown ratio_schedule {self.ratio_schedule!r}; choose incremental or cosine")
        if self.interval_schedule not in ("incremental", "fixed"):
            raise UserError(f"unknown interval_schedule {self.interval_schedule!r}; "
                            "choose incremental or fixed")
        if not (0 < self.r0 <= 1 and 0 < self.r1 <= 1):
            raise UserError(f"r0 and r1 must be in (0, 1], got {self.r0} and {self.r1}")
        k0, k_max = self.k0 or 1, self.k_max or self.k0 or 1
        if (self.cycles or 1) < 1 or self.warmup < 0 or k0 < 1 or k_max < k0:
            raise UserError(f"need cycles >= 1, warmup >= 0 and 1 <= k0 <= k_max, got cycles={self.cycles}, "
                            f"warmup={self.warmup}, k0={self.k0}, k_max={self.k_max}")

    def cycle_count(self, epochs: int) -> int:
        """C: the cycles that fit after the warm-up (each at least one epoch long; scaled: four)."""
        rest = epochs - self.warmup
        if rest <= 0:
            return 0
        if self.cycles is None:
            return min(PAPER_CYCLES, max(1, rest // MIN_SCALED_CYCLE))
        return min(self.cycles, rest)

    def intervals(self, epochs: int) -> tuple[int, int]:
        """(k0, k_max) for a run of ``epochs``: as given, or scaled to its cycle length."""
        length = (epochs - self.warmup) / max(self.cycle_count(epochs), 1)
        k0 = self.k0 or min(max(1, round(PAPER_K0 * length / PAPER_CYCLE)), self.k_max or length)
        return k0, self.k_max or max(k0, round(PAPER_K_MAX * length / PAPER_CYCLE))

    def ratio(self, cycle: int, count: int) -> float:
        """r_c: the subset ratio of cycle ``cycle`` of ``count``."""
        t = cycle / (count - 1) if count > 1 else 0.0
        if self.ratio_schedule == "cosine":
            t = 0.5 * (1.0 - math.cos(math.pi * t))
        return self.r0 + (self.r1 - self.r0) * t

    def subset_epochs(self, cycle: int, epochs: int) -> int:
        """k_c: epochs on the subset at the start of cycle ``cycle`` of a run of ``epochs`` (before the
        length cap)."""
        count, (k0, k_max) = self.cycle_count(epochs), self.intervals(epochs)
        if self.interval_schedule == "fixed" or count == 1:
            return k0
        return k0 + math.floor((k_max - k0) * cycle / (count - 1))

    def phase(self, epoch: int, epochs: int) -> tuple[int, int] | None:
        """(cycle, epoch within the cycle) of ``epoch``; None during the warm-up."""
        count, rest = self.cycle_count(epochs), epochs - self.warmup
        if epoch < self.warmup or count == 0:
            return None
        cycle = min(((epoch - self.warmup + 1) * count - 1) // rest, count - 1)
        return cycle, epoch - (self.warmup + cycle * rest // count)

    def plan(self, epochs: int) -> list[float]:
        """The ratio each of ``epochs`` epochs trains on (1.0: the whole pool)."""
        count, out = self.cycle_count(epochs), []
        for epoch in range(epochs):
            where = self.phase(epoch, epochs)
            on_subset = where is not None and where[1] < self.subset_epochs(where[0], epochs)
            out.append(self.ratio(where[0], count) if on_subset else 1.0)
        return out

    def _where(self, ctx: Context) -> tuple[int, int, int] | None:
        """(cycle, epoch in cycle, cycles) when this epoch trains on a subset, else None."""
        if ctx.total_steps is None:
            raise UserError(f"{self.name} plans its cycles over the run: give the Teacher total_steps "
                            "(the number of epochs) and call select once per epoch")
        where, count = self.phase(ctx.step, ctx.total_steps), self.cycle_count(ctx.total_steps)
        if where is None or where[1] >= self.subset_epochs(where[0], ctx.total_steps):
            return None
        return (*where, count)

    def redraws(self, ctx: Context, offset: int) -> bool:
        """A fresh subset at the cycle's first subset epoch (or when none was kept)."""
        return offset == 0 or len(ctx.state["subset"]) == 0

    def draw(self, ctx: Context, count: int) -> torch.Tensor:
        raise NotImplementedError

    def init_state(self, pool_size: int) -> dict[str, torch.Tensor]:
        return {"subset": torch.zeros(0, dtype=torch.long)}

    def select(self, ctx: Context) -> Selection:
        where = self._where(ctx)
        if where is None:
            return Selection(indices=None)
        cycle, offset, count = where
        if self.redraws(ctx, offset):
            size = max(1, min(ctx.pool_size, round(self.ratio(cycle, count) * ctx.pool_size)))
            ctx.state["subset"] = torch.sort(self.draw(ctx, size)).values
        return Selection(indices=ctx.state["subset"])


@register
@dataclass(frozen=True)
class AtteNTComplex(Cycles):
    selection: str = "soft"  # hard (top-k), soft (Gumbel-top-k) or random
    temperature: float = 1.0  # T of the soft selection's softmax(loss / T)

    name = "attent_complex"
    teaches = ("examples",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.selection not in ("hard", "soft", "random"):
            raise UserError(f"unknown selection {self.selection!r}; choose hard, soft or random")
        if self.temperature <= 0:
            raise UserError(f"temperature must be > 0, got {self.temperature}")

    def redraws(self, ctx: Context, offset: int) -> bool:
        return self.selection == "soft" or super().redraws(ctx, offset)

    def needs_at(self, ctx: Context) -> tuple[str, ...]:
        where = self._where(ctx)
        if self.selection == "random" or where is None or not self.redraws(ctx, where[1]):
            return ()
        return ("loss",)

    def draw(self, ctx: Context, count: int) -> torch.Tensor:
        if self.selection == "hard":
            return top_k(ctx.scores["loss"], count)
        if self.selection == "soft":
            return gumbel_top_k(ctx.scores["loss"], count, self.temperature, ctx.generator)
        return random_subset(torch.arange(ctx.pool_size), count, ctx.generator)
