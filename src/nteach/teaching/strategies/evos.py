"""EVOS (Efficient implicit neural training via EVOlutionary Selector, CVPR 2025).

- Sparse fitness: at steps t with t mod I(t) == 1, I(t) = int(100 - 50 p) (p: progress),
  the learner trains on every example. The per-example losses of that step (mean over
  channels of the squared error, reported through ``observe``) are cached as the fitness
  e, and the signal's "laplacian_error" score is computed before that step and cached too.
  Before any fitness exists (the first selection) the step is a fitness step as well:
  the authors' loop counts from 1, so its first iteration is a fitness iteration.
- Crossover: k = (r - mu) N elite examples. The top-k by e and the top-k by Laplacian
  error keep their intersection; the rest is filled from each list, best first, in
  proportion mean(e) : mean(lap) (means over the whole pool).
- Mutation: mu N more examples drawn uniformly from the non-elite. mu = 0.5 r0, where r0
  is the ratio of the first selection (the teacher's start ratio under every schedule):
  mu N = round(0.5 * first budget), kept in state, so k = budget - mu N follows the schedule.
- Cross-frequency loss: 1e-5 times the signal's "laplacian" loss until step 1500 (images
  apply it on full steps only, as the authors do).

Fitness steps are only seen when ``select`` runs at every step: keep the dense interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nteach.teaching.strategies.base import Context, Feedback, Selection, Strategy, random_subset
from nteach.teaching.strategies.registry import register


def fitness_interval(progress: float, start: int = 100, drop: int = 50) -> int:
    """I(p) = int(start - drop p), at least 1; rounded to 1e-9 first so that float error
    in p (e.g. 50 * 0.04 = 2.0000000000000004) cannot take one off an integer."""
    return max(1, int(round(start - drop * progress, 9)))


def crossover(fitness: torch.Tensor, laplacian: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` indices: the common part of the top-``count`` by each score, then the rest
    of each list (best first) in proportion mean(fitness) : mean(laplacian)."""
    if count == 0:
        return torch.zeros(0, dtype=torch.long, device=fitness.device)
    by_fitness = torch.topk(fitness, count).indices  # sorted, best first
    by_laplacian = torch.topk(laplacian, count).indices
    in_both = torch.isin(by_fitness, by_laplacian)
    only_fitness = by_fitness[~in_both]
    only_laplacian = by_laplacian[~torch.isin(by_laplacian, by_fitness)]
    rest = len(only_fitness)  # == len(only_laplacian)
    mean_e, mean_lap = float(fitness.mean()), float(laplacian.mean())
    share = mean_e / (mean_e + mean_lap) if mean_e + mean_lap > 0 else 0.5
    n_fitness = round(rest * share)
    return torch.cat([by_fitness[in_both], only_fitness[:n_fitness], only_laplacian[:rest - n_fitness]])


@register
@dataclass(frozen=True)
class EVOS(Strategy):
    interval_start: int = 100  # fitness interval at the start of the run
    interval_drop: int = 50  # ... falling linearly by this much over the run
    mutation: float = 0.5  # mu = mutation * r0: the uniformly random share of the pool
    laplacian_weight: float = 1e-5  # weight of the cross-frequency (Laplacian MSE) loss
    laplacian_until: int = 1500  # steps with the cross-frequency loss

    name = "evos"

    def init_state(self, pool_size: int) -> dict[str, torch.Tensor]:
        return {"fitness": torch.zeros(pool_size),
                "fitness_step": torch.tensor(-1),  # the step that measured the fitness; -1: none yet
                "start_budget": torch.tensor(-1)}  # the budget of the first selection (r0 N)

    def is_fitness_step(self, step: int, progress: float) -> bool:
        return step % fitness_interval(progress, self.interval_start, self.interval_drop) == 1

    def trains_on_all(self, ctx: Context) -> bool:
        return int(ctx.state["fitness_step"]) < 0 or self.is_fitness_step(ctx.step, ctx.progress)

    def needs_at(self, ctx: Context) -> tuple[str, ...]:
        return ("laplacian_error",) if self.trains_on_all(ctx) else ()

    def part_sizes(self, budget: int, start_budget: int) -> tuple[int, int]:
        """(elite k = (r - mu) N, mutation mu N) for this budget, mu N = mutation * r0 N."""
        n_mutation = min(round(self.mutation * start_budget), budget)
        return budget - n_mutation, n_mutation

    def select(self, ctx: Context) -> Selection:
        if int(ctx.state["start_budget"]) < 0:
            ctx.state["start_budget"] = torch.tensor(ctx.budget)
        if self.trains_on_all(ctx):
            return Selection(indices=None)
        n_elite, n_mutation = self.part_sizes(ctx.budget, int(ctx.state["start_budget"]))
        fitness = ctx.state["fitness"]
        elite = crossover(fitness, ctx.scores["laplacian_error"].to(fitness.device), n_elite)
        left = torch.ones(ctx.pool_size, dtype=torch.bool, device=fitness.device)
        left[elite] = False
        others = random_subset(left.nonzero().squeeze(1), n_mutation, ctx.generator)
        return Selection(indices=torch.cat([elite, others]))

    def observe(self, feedback: Feedback, state: dict[str, torch.Tensor]) -> None:
        if feedback.indices is None:  # a full step: its losses are the fitness
            state["fitness"] = feedback.losses.clone()
            state["fitness_step"] = torch.tensor(feedback.step)

    def extra_losses(self, step: int, progress: float) -> dict[str, float]:
        return {"laplacian": self.laplacian_weight} if step < self.laplacian_until else {}
