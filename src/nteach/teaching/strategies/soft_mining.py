"""Soft Mining (Kheradmand et al., "Accelerating Neural Field Training via Soft Mining", CVPR 2024).

B = budget particles u in [0, 1]^d move towards high loss by Langevin steps
    u <- u + a grad_u(l) / l + b eps,   eps ~ N(0, I),
l being a particle's training loss (mean over channels of the squared error). Each
particle trains on the grid point nearest to it, its loss weighted by
    w = stopgrad(clamp((1 / max(|e|, eps))^q, min = 0.2, max = mean(w) + std(w))),  q = min(t / 1000, 0.6).

How this sits in the engine:
- The pool must be a full row-major grid over [-1, 1]^d (what ``signals.grid`` builds,
  u = (x + 1) / 2). At event 0 the strategy asks for the "coordinates" score (the pool's
  x, from the fit loop), reads the grid shape off it and checks it. Particles keep
  continuous positions; each trains on its nearest grid point.
- grad_u(l) comes from the input gradients the fit loop hands back: its loss is
  mean_i(w_i l_i) over the B trained examples, so d l_i / du = 2 B / w_i * d loss / dx_i.
  It is the gradient through the network only: targets are not interpolated between grid points.
  With u in [0, 1]^d, a * grad_u(l) / l is far larger than the grid (tens to thousands of
  widths): nearly every particle leaves [0, 1]^d and is re-drawn from the edge density.
  ``code_faithful`` scales the drift as the released code does (gradient in grid-step units,
  of the batch mean, divided by w_i): drift / (B w_i (n_k - 1)) per axis k, mostly within a few cells.
- Each event: the Langevin move; then the particles that left [0, 1]^d or hold the lowest
  10% of losses are re-drawn from the "edge_magnitude" score (Sobel magnitude of the target)
  taken as a density, and the rest of the last 10% uniformly over the grid points (the
  release lets the edge re-draw win too); then clamp and snap. A particle landing on a grid
  point already taken is re-drawn uniformly among the free ones: no example is selected twice.
- Weights are set before the step, from the last loss seen at each selected example
  (|e| = root of the mean squared error over channels: |e|_1 for one channel); examples
  never trained on take the mean of the others. The paper weighs by the loss of the same
  forward pass: here the weights lag (by one step for particles that stayed put).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nteach.errors import UserError
from nteach.teaching.strategies.base import Context, Feedback, Selection, Strategy, random_subset
from nteach.teaching.strategies.registry import register


def loss_weights(errors: torch.Tensor, step: int, q_max: float = 0.6, q_steps: int = 1000,
                 min_weight: float = 0.2, eps: float = 1e-3) -> torch.Tensor:
    """clamp((1 / max(|e|, eps))^q, min_weight, mean(w) + std(w)), q = min(step / q_steps, q_max)."""
    q = min(step / q_steps, q_max)
    w = errors.clamp_min(eps).reciprocal().pow(q)
    upper = w.mean() + (w.std() if len(w) > 1 else 0.0)
    return w.clamp_min(min_weight).minimum(upper)  # torch.clamp's order: min first, then max


def _strides(shape: torch.Tensor) -> torch.Tensor:
    """Row-major strides of a grid of ``shape`` (a 1-D long tensor)."""
    return torch.cat([shape.flip(0).cumprod(0).flip(0)[1:], shape.new_ones(1)])


def unit_positions(cells: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """Grid points (flat row-major indices) to positions in [0, 1]^d."""
    steps = cells[:, None] // _strides(shape) % shape
    return steps / (shape - 1).clamp_min(1)


def nearest_cells(positions: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """Positions in [0, 1]^d to the flat index of the nearest grid point."""
    steps = (positions * (shape - 1)).round().long()
    return (steps * _strides(shape)).sum(dim=1)


def grid_shape(coords: torch.Tensor) -> torch.Tensor:
    """The shape of the row-major grid over [-1, 1]^d that ``coords`` (N, d) must be."""
    shape = torch.tensor([coords[:, k].unique().numel() for k in range(coords.shape[1])],
                         device=coords.device)
    cells = torch.arange(len(coords), device=coords.device)
    if math.prod(shape.tolist()) != len(coords) or not torch.allclose(
            coords, 2 * unit_positions(cells, shape) - 1, atol=1e-5):
        raise UserError("soft_mining needs the examples on a full row-major grid over [-1, 1]^d "
                        "(for shapes: --surface-points 0)")
    return shape


def distinct(cells: torch.Tensor, pool_size: int,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeats after the first (in particle order) moved to random free cells, and which moved."""
    ordered = torch.sort(cells, stable=True)
    repeat = torch.zeros_like(cells, dtype=torch.bool)
    repeat[ordered.indices[1:]] = ordered.values[1:] == ordered.values[:-1]
    free = torch.ones(pool_size, dtype=torch.bool, device=cells.device)
    free[cells] = False
    cells = cells.clone()
    cells[repeat] = random_subset(free.nonzero().squeeze(1), int(repeat.sum()), generator)
    return cells, repeat


@register
@dataclass(frozen=True)
class SoftMining(Strategy):
    a: float = 20.0  # Langevin step on grad_u(l) / l
    b: float = 0.02  # Langevin noise
    uniform_share: float = 0.1  # the last particles, re-drawn uniformly at every event
    low_loss_share: float = 0.1  # particles with the lowest losses, re-drawn from the edge density
    q_max: float = 0.6  # weight exponent q = min(t / q_steps, q_max)
    q_steps: int = 1000
    min_weight: float = 0.2
    eps: float = 1e-3  # |e| floor in the weights (and eps^2 the loss floor in grad l / l)
    code_faithful: bool = False  # scale the drift as the released code does (see the module notes)

    name = "soft_mining"
    wants_input_grads = True

    def check_coordinates(self, coords: torch.Tensor) -> None:
        grid_shape(coords)

    def needs(self, event: int) -> tuple[str, ...]:
        return ("coordinates", "edge_magnitude") if event == 0 else ()

    def start(self, ctx: Context) -> torch.Tensor:
        """Particles on ``budget`` distinct grid points drawn uniformly; their positions."""
        coords = ctx.scores["coordinates"]
        ctx.state["shape"] = grid_shape(coords)
        ctx.state["seen"] = torch.full((ctx.pool_size,), float("nan"), device=coords.device)
        ctx.state["losses"] = torch.full((ctx.budget,), float("nan"), device=coords.device)
        ctx.state["drift"] = torch.zeros(ctx.budget, coords.shape[1], device=coords.device)
        cells = torch.randperm(ctx.pool_size, generator=ctx.generator)[:ctx.budget].to(coords.device)
        return unit_positions(cells, ctx.state["shape"])

    def draw(self, ctx: Context, count: int, density: torch.Tensor | None = None) -> torch.Tensor:
        """Positions of ``count`` grid points drawn uniformly or from ``density`` (with repeats)."""
        if density is None or count == 0:
            cells = torch.randint(ctx.pool_size, (count,), generator=ctx.generator)
        else:
            cells = torch.multinomial(density.cpu(), count, replacement=True, generator=ctx.generator)
        return unit_positions(cells.to(ctx.state["shape"].device), ctx.state["shape"])

    def particles(self, ctx: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(positions, last losses, drift) of ``budget`` particles: the schedule may change their number."""
        positions, losses, drift = ctx.state["positions"], ctx.state["losses"], ctx.state["drift"]
        extra = max(ctx.budget - len(positions), 0)
        return (torch.cat([positions, self.draw(ctx, extra)])[:ctx.budget],
                torch.cat([losses, losses.new_full((extra,), float("nan"))])[:ctx.budget],
                torch.cat([drift, drift.new_zeros(extra, drift.shape[1])])[:ctx.budget])

    def move(self, ctx: Context) -> torch.Tensor:
        """One Langevin step for every particle, then the re-draws; the new positions."""
        positions, losses, drift = self.particles(ctx)
        noise = torch.randn(positions.shape, generator=ctx.generator).to(positions.device)
        positions = positions + self.a * drift + self.b * noise
        budget, device = len(positions), positions.device
        n_low = round(self.low_loss_share * budget)
        lowest = torch.topk(losses.nan_to_num(nan=float("inf")), n_low, largest=False)  # unknown: not low
        edge = ((positions < 0) | (positions > 1)).any(dim=1)  # as in the release, edges win over uniform
        edge[lowest.indices] = True
        uniform = (torch.arange(budget, device=device) >= budget - round(self.uniform_share * budget)) & ~edge
        density = ctx.scores["edge_magnitude"].clamp_min(0) + 1e-8  # uniform if the target has no edges
        positions[uniform] = self.draw(ctx, int(uniform.sum()))
        positions[edge] = self.draw(ctx, int(edge.sum()), density)
        return positions.clamp(0, 1)

    def select(self, ctx: Context) -> Selection:
        positions = self.start(ctx) if "shape" not in ctx.state else self.move(ctx)
        shape = ctx.state["shape"]
        cells, repeat = distinct(nearest_cells(positions, shape), ctx.pool_size, ctx.generator)
        positions[repeat] = unit_positions(cells[repeat], shape)
        errors = ctx.state["seen"][cells].sqrt()  # each example's |e| when last trained on
        errors = torch.where(errors.isnan(), errors.nanmean().nan_to_num(1.0), errors)  # never seen: the mean
        weights = loss_weights(errors, ctx.step, self.q_max, self.q_steps, self.min_weight, self.eps)
        ctx.state.update(positions=positions, weights=weights)
        return Selection(indices=cells, weights=weights)

    def observe(self, feedback: Feedback, state: dict[str, torch.Tensor]) -> None:
        """Each particle's loss and grad_u(l) / l, from the step that trained on its grid point."""
        count, losses = len(feedback.losses), feedback.losses
        grad_loss = feedback.input_grads * (count / state["weights"])[:, None]  # d l_i / d x_i
        drift = 2 * grad_loss / losses.clamp_min(self.eps**2)[:, None]  # du = dx / 2
        if self.code_faithful:  # the release: in grid steps, of the batch mean, / w_i: / (B w_i (n - 1))
            drift = drift / (count * state["weights"][:, None] * (state["shape"] - 1).clamp_min(1))
        state.update(drift=drift, losses=losses.clone())
        state["seen"] = state["seen"].index_put((feedback.indices,), losses)
