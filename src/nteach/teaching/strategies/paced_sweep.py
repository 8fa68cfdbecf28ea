"""Paced sweep: shuffled rounds over the pool, each example revisited at a pace set by its last loss.

INT, EVOS and NINT pay a no-grad pass over the whole pool at selection
events; on a CPU that pass costs more than the step it guides, and plain
uniform sampling wins in wall-clock time. This teacher never scores the
pool. It remembers, per example, the loss it had when it was last trained
on (the training forward computes it anyway) and lays the pool out in
rounds of about ``passes`` x N entries that the steps consume in order,
``budget`` at a time. In a round, example i appears n_i times, n_i the
stochastic rounding of

    passes * N * p_i,   p_i = (1 - mix) * c_i^temperature / sum_j c_j^temperature + mix / N,

and its copies sit evenly spaced through the round, at a random phase. In
the first round nothing is cached yet: every example comes once a pass, in
one shuffled order repeated ``passes`` times, before any is favoured.

Its ingredients, each measured on and off (docs/experiments.md):
- rounds instead of a fresh random subset per step: every example comes back
  within about a round (random reshuffling), which alone beats uniform per step;
- the pace from the cached loss (``temperature`` 0 turns it off): hard
  examples come back sooner;
- ``spaced`` copies: an example's visits evenly apart rather than at random
  places in the round, so a hard example is never trained twice in a row;
- rounds of several ``passes``, their pace set once for all of them: the pace is
  followed more closely (an example at rate 1.3 comes back 5 or 6 times in 4 passes,
  evenly apart, rather than 1 or 2 times a pass at random phases). On seven INR
  dev cases of nine 4 passes took 0.71x-0.93x the steps to the target of 1, so
  the INR fits (``nteach fit``, the suites) use 4; datasets, whose steps are
  epochs, keep 1.
- ``jitter`` (0 by default; INR fits use 0.5): the share of each copy's place in its stretch of the
  round drawn afresh for that copy rather than from the example's one phase. With
  one phase, a round of several passes repeats the same order of its evenly paced
  examples every pass, so the same minibatches come back; a fresh draw per copy
  keeps each copy in its own 1/n_i of the round but reshuffles the passes.
Anchors (``anchor_share`` > 0, signals only): that share of every step's
budget goes to the examples nearest the signal's edges (a shape's surface,
an image's dilated edges: the mask Expansive Supervision anchors on), all
of them at every step; the rounds and their pace cover the other examples
with the rest of the budget.
A ``warmup`` of k trains the whole pool at the first k selection events (as
AtteNT-Simple's first epoch does): for a dataset run over a few epochs, where
a first epoch on a share of the pool loses what it skips and paces nothing.
Importance weights (``weighted``: 1 / (N p_i), clipped, batch mean 1) make
each round's gradient follow the whole pool's; they measured worse (the
focus is what helps) and are off by default.

Building a round costs a few passes over its passes x N entries and one
argsort, once per passes x N / budget steps; between rounds a step costs a
slice and a scatter. Alone, at 9,216 examples and a fifth of them a step, one
pass a round costs 0.15-0.26 ms a step against uniform's 0.08-0.13 ms for a
fresh permutation; inside a training loop each of the round's NumPy calls runs
slower right after a backward pass, and fewer, longer rounds pay that less often
(docs/experiments.md). On an accelerator a round is built with torch ops where the
losses are cached: at 135,300 examples and 4 passes NumPy takes 15-20 ms a round,
over a millisecond a step, against a GPU step of a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nteach.errors import UserError
from nteach.teaching.strategies.base import Feedback, Selection, Strategy
from nteach.teaching.strategies.expansive import edge_anchors
from nteach.teaching.strategies.registry import register


@register
@dataclass(frozen=True)
class PacedSweep(Strategy):
    temperature: float = 0.5  # 0: a plain shuffled sweep; 1: visits proportional to the cached loss
    mix: float = 0.7  # share of the visits spread evenly: every example keeps a rate >= mix
    spaced: bool = True  # an example's copies evenly apart in a round (else at random places)
    weighted: bool = False  # importance weights 1 / (N p_i), so each round follows the pool's gradient
    max_weight: float = 5.0
    anchor_share: float = 0.0  # share of each step's budget on the examples nearest the signal's edges
    passes: int = 1  # passes over the pool a round covers, all at the pace set when it is built
    jitter: float = 0.0  # share of a copy's place in its 1/n_i of the round drawn per copy (0: per example)
    warmup: int = 0  # selection events on the whole pool before the rounds start (datasets: epochs)

    name = "paced_sweep"
    teaches = ("coordinates", "examples")
    default_ratio = 0.7  # for datasets of examples (a share of each epoch); `nteach fit` passes --ratio (0.2)

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0.0 < self.mix <= 1.0 or self.max_weight < 1.0:
            raise UserError(f"paced_sweep needs temperature >= 0, 0 < mix <= 1 and max_weight >= 1, "
                            f"got {self.temperature}, {self.mix}, {self.max_weight}")
        if not 0.0 <= self.jitter <= 1.0:
            raise UserError(f"paced_sweep needs 0 <= jitter <= 1, got {self.jitter}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise UserError(f"paced_sweep needs a whole number of warm-up events >= 0, got {self.warmup}")
        if not isinstance(self.passes, int) or self.passes < 1:
            raise UserError(f"paced_sweep needs a whole number of passes >= 1, got {self.passes}")
        if not 0.0 <= self.anchor_share < 1.0 or (self.anchor_share > 0 and self.weighted):
            raise UserError(f"paced_sweep needs 0 <= anchor_share < 1, and no anchors with importance "
                            f"weights, got anchor_share {self.anchor_share}, weighted {self.weighted}")

    def mask_name(self, ctx) -> str:
        """The signal's edge mask whose area holds ``anchor_share`` of a step's budget."""
        return f"expansive_edges:{min(self.anchor_share * ctx.budget / ctx.pool_size, 1.0)}"

    def needs_at(self, ctx) -> tuple[str, ...]:
        return (self.mask_name(ctx),) if self.anchor_share > 0 and "anchors" not in ctx.state else ()

    def init_state(self, pool_size: int) -> dict[str, torch.Tensor]:
        return {"cache": torch.full((pool_size,), float("nan")),  # last training loss; nan: never trained
                "order": torch.zeros(0, dtype=torch.long),  # what is left of the current round
                "rate": torch.ones(pool_size)}  # N p_i of the current round: expected visits per pass

    def rates(self, cache: torch.Tensor) -> torch.Tensor:
        """N p_i from the cached losses; all ones (a plain sweep) until every example has been seen."""
        if cache.isnan().any():
            return torch.ones_like(cache)
        scores = cache.clamp_min(1e-12).pow(self.temperature)
        return len(cache) * (1.0 - self.mix) * scores / scores.sum() + self.mix

    def split(self, ctx, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(anchors, paced): the indices trained at every step and those the rounds pace, on ``device``;
        None without anchors (the rounds pace the whole pool). Anchors are drawn from the signal's edge
        mask on first use; both are kept in the state."""
        if self.anchor_share == 0:
            return None
        if "anchors" not in ctx.state:
            anchors = edge_anchors(ctx, self.mask_name(ctx), round(self.anchor_share * ctx.budget)).cpu()
            paced = torch.ones(ctx.pool_size, dtype=torch.bool)
            paced[anchors] = False
            ctx.state["anchors"], ctx.state["paced"] = anchors.sort().values, paced.nonzero().squeeze(1)
        for name in ("anchors", "paced"):  # moved once, where the rounds are built
            ctx.state[name] = ctx.state[name].to(device)
        return ctx.state["anchors"], ctx.state["paced"]

    def new_round(self, rate: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A round: example i ``floor(rate_i + u)`` times, in a shuffled or evenly spaced order, built
        where ``rate`` lives from draws of ``generator`` (the teacher's, on the CPU): the same draws give
        the same order on any device."""
        if rate.device.type == "cpu":
            return self._round_in_numpy(rate, generator)
        return self._round_in_torch(rate, generator)

    def _round_in_numpy(self, rate: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """NumPy's calls cost a few microseconds less each than torch's on the CPU; float32 throughout,
        as torch computes it."""
        n = len(rate)
        counts = np.floor(rate.numpy() + torch.rand(n, generator=generator).numpy()).astype(np.int64)
        owner = np.repeat(np.arange(n), counts)
        if not self.spaced:
            return torch.from_numpy(owner)[torch.randperm(len(owner), generator=generator)]
        phase = np.repeat(torch.rand(n, generator=generator).numpy(), counts)  # where in its 1/n_i
        if self.jitter > 0:
            fresh = torch.rand(len(owner), generator=generator).numpy()
            phase = np.float32(1.0 - self.jitter) * phase + np.float32(self.jitter) * fresh
        copy = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)  # 0, 1, .. per example
        spread = np.repeat(counts, counts).astype(np.float32)  # each copy's example's count
        position = (copy.astype(np.float32) + phase) / spread
        return torch.from_numpy(owner[np.argsort(position)])

    def _round_in_torch(self, rate: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The same round with torch ops, for an accelerator: the round stays on the device, and no step
        copies its indices there."""
        device = rate.device

        def draw(count: int) -> torch.Tensor:
            return torch.rand(count, generator=generator).to(device)

        counts = (rate + draw(len(rate))).floor().long()
        owner = torch.repeat_interleave(counts)  # 0 counts[0] times, 1 counts[1] times, ...
        if not self.spaced:
            return owner[torch.randperm(len(owner), generator=generator).to(device)]
        phase = draw(len(rate))[owner]
        if self.jitter > 0:
            phase = (1.0 - self.jitter) * phase + self.jitter * draw(len(owner))
        copy = torch.arange(len(owner), device=device) - (counts.cumsum(0) - counts)[owner]
        return owner[((copy + phase) / counts[owner]).argsort()]

    def select(self, ctx) -> Selection:
        if ctx.event < self.warmup:  # the whole pool: every example's loss cached before any is paced
            return Selection(indices=None)
        state = ctx.state
        device = state["cache"].device  # where the losses are: the rounds are built there
        order = state["order"].to(device)
        parts = self.split(ctx, device)
        wanted = ctx.budget - (0 if parts is None else len(parts[0]))
        while len(order) < wanted:  # the rest of this round, then the next one, over the paced examples
            cache = state["cache"]
            state["rate"] = self.rates(cache if parts is None else cache[parts[1]])  # visits per pass
            round_ = self.new_round(state["rate"] * self.passes, ctx.generator)
            order = torch.cat([order, round_ if parts is None else parts[1][round_]])
        indices, state["order"] = order[:wanted], order[wanted:]
        if parts is not None:
            indices = torch.cat([parts[0], indices])  # every anchor, every step
        if not self.weighted:
            return Selection(indices=indices)
        weights = (1.0 / state["rate"].to(device)[indices]).clamp_max(self.max_weight)
        return Selection(indices=indices, weights=weights / weights.mean())

    def observe(self, feedback: Feedback, state: dict[str, torch.Tensor]) -> None:
        cache = state["cache"]
        if cache.device != feedback.losses.device:
            cache = state["cache"] = cache.to(feedback.losses.device)
        if feedback.indices is None:
            cache.copy_(feedback.losses)
        else:
            cache[feedback.indices] = feedback.losses.to(cache.dtype)
