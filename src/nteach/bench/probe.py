"""Clock-robust training time: the work a run did, counted, times unit costs measured once per case.

Steps to a target are deterministic for a seed; seconds are not (on a shared
machine, uniform against an identical twin of itself measured up to 1.24x). So
every fit counts its work (nteach.inr.fit.new_work: steps, examples trained on,
examples forwarded without grad, examples in NTK products), and before a case's
runs one process measures what each unit costs, all measurements alternated in
a shuffled order, warmed up and repeated; each is read as its share of the
repetition it ran in (the median share, times the median repetition), so that a
slow stretch of the shared machine, which slows the whole repetition, cancels:

- a bare training step (forward, backward, Adam) on ``ratio * N`` and on all N
  examples: the slope is the cost of one more example trained on;
- a no-grad forward over all N (scoring passes), and an NTK product over all N;
- blocks of each teacher's selection and feedback alone, its scores handed
  ready-made: what the teacher itself costs a step;
- blocks of each teacher's real steps (selection, scoring, step, feedback), from
  a fresh fit: less the work they counted and the teacher's own cost, what remains
  is the training loop's cost per step. It is the same loop for every teacher, so
  it is the median over teachers: one teacher's noisy probe cannot move it.

A run's clock-robust time is then ``steps * (loop + its teacher's cost) + the work
it counted * unit costs``: it moves with the machine's speed as a whole, never
with one run's luck. A teacher that wants its inputs' gradients (Soft Mining) makes
every backward pass reach the inputs, work no counter sees: its steps are priced at
what the probe timed them to cost (less the counted work), its own probe alone.
What it does not price: other in-step work beyond selection, feedback and the
counted passes (EVOS's Laplacian loss term); the report's "probe / robust" column
(what the probe timed a teacher's real steps to cost, over what this model charges)
shows where that matters.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Callable

import torch

from nteach.inr.fit import Fit
from nteach.teaching import ntk_score, predict
from nteach.timing import synchronize

REPETITIONS = 30
WARMUP = 3
TEACHER_STEPS = 20  # teacher steps per timed repetition


def _timed(action: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    action()
    synchronize(device)
    return time.perf_counter() - start


def _train_step(fit: Fit, indices: torch.Tensor | None) -> Callable[[], None]:
    """One Adam step of ``fit``'s model on ``indices`` (None: all), as the fit's own step does it."""
    coords = fit.coords if indices is None else fit.coords[indices]
    targets = fit.targets if indices is None else fit.targets[indices]

    def step() -> None:
        loss = (fit.learner(coords) - targets).pow(2).flatten(1).mean(dim=1).mean()
        fit.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        fit.optimizer.step()
    return step


def _fit_steps(fit: Fit, work: list[dict]) -> Callable[[], None]:
    """TEACHER_STEPS real training steps of ``fit`` (selection, scoring, step, feedback); appends the
    work they did to ``work``."""
    def steps() -> None:
        before = dict(fit.work)
        for _ in range(TEACHER_STEPS):
            fit.train_step()
        work.append({k: fit.work[k] - before[k] for k in before})
    return steps


def _teacher_only(fit: Fit) -> Callable[[], None]:
    """TEACHER_STEPS selections and feedbacks of ``fit``'s teacher alone, its scores handed ready-made
    (computed once), so that only the teacher's own work is timed."""
    n, device, teacher = len(fit.signal), fit.device, fit.teacher
    generator = torch.Generator().manual_seed(0)
    ready = {"coordinates": fit.coords}
    counter = [0]

    def score(name: str) -> torch.Tensor:
        if name not in ready:
            ready[name] = (torch.rand(n, generator=generator).to(device)
                           if name in ("residual", "squared_error", "ntk")
                           else fit.signal.score(name, fit.predictions).to(device))
        return ready[name]

    def steps() -> None:
        for _ in range(TEACHER_STEPS):
            step = counter[0]
            selection = teacher.select(step, min(step / fit.budget.total, 1.0), score)
            size = selection.size(n)
            losses = torch.rand(size, generator=generator).to(device)
            grads = (torch.randn(size, fit.coords.shape[1], generator=generator).to(device)
                     if teacher.wants_input_grads else None)
            teacher.observe(selection.indices, losses, grads, step)
            counter[0] += 1
    return steps


def alternate(actions: dict[str, Callable[[], None]], device: torch.device, repetitions: int = REPETITIONS
              ) -> tuple[dict[str, list[float]], Callable[[list[float]], float]]:
    """Time every action once per repetition, in a fresh shuffled order each time, after WARMUP
    untimed repetitions. Returns (seconds of each action per repetition, ``paired``): ``paired(values)``
    reads a list of per-repetition seconds as the median of its share of its repetition's total, times
    the median total, so that a slow stretch of the machine, which slows the whole repetition, cancels."""
    samples: dict[str, list[float]] = {name: [] for name in actions}
    names, order = list(actions), random.Random(0)
    for repetition in range(WARMUP + repetitions):
        order.shuffle(names)  # a fresh order each time: what runs before a measurement changes its time
        for name in names:
            seconds = _timed(actions[name], device)
            if repetition >= WARMUP:
                samples[name].append(seconds)
    totals = [sum(values[k] for values in samples.values()) for k in range(repetitions)]
    scale = statistics.median(totals)

    def paired(values: list[float]) -> float:
        return statistics.median(v / total for v, total in zip(values, totals)) * scale
    return samples, paired


def measure_costs(build: Callable[[str], Fit], teachers: list[str], ratio: float,
                  repetitions: int = REPETITIONS) -> dict:
    """Unit costs in seconds for one case, all from one process. ``build(teacher)`` makes a fresh,
    unrun fit of the case for that teacher (a teachers-list entry: a teacher or a variant)."""
    reference = build(teachers[0])
    reference.warm_up()  # compiled steps are timed as the runs take them: compiled before the clock
    n, device = len(reference.signal), reference.device
    small = max(1, min(n - 1, round(ratio * n))) if n > 1 else 1
    generator = torch.Generator().manual_seed(0)
    subset = torch.randperm(n, generator=generator)[:small].to(device)
    actions = {
        "train_small": _train_step(reference, subset),
        "train_all": _train_step(reference, None),
        "forward_all": lambda: predict(reference.scorer, reference.coords, reference.chunk),
        "ntk_all": lambda: ntk_score(reference.model, reference.coords, reference.targets, reference.chunk),
    }
    work: dict[str, list[dict]] = {}
    own_steps = []  # teachers priced at their measured steps (step_prices)
    for teacher in teachers:
        work[teacher], fit = [], build(teacher)
        own_steps += [teacher] if fit.teacher.wants_input_grads else []
        actions[f"steps:{teacher}"] = _fit_steps(fit, work[teacher])
        actions[f"teacher:{teacher}"] = _teacher_only(build(teacher))
    samples, paired = alternate(actions, device, repetitions)
    median = {name: paired(values) for name, values in samples.items()}
    costs = {"points": n, "repetitions": repetitions, "small_batch": small, "medians": median,
             "trained": max((median["train_all"] - median["train_small"]) / max(n - small, 1), 0.0),
             "forwarded": median["forward_all"] / n, "ntk": median["ntk_all"] / n}
    # a teacher's real step, less the work it counted: the loop's own cost plus the teacher's selection
    # and feedback (loop_price reads the loop from every teacher at once)
    costs["teacher"] = {t: median[f"teacher:{t}"] / TEACHER_STEPS for t in teachers}
    costs["measured_step"] = {}
    for teacher in teachers:
        rest = [seconds - sum(done[k] * costs[k] for k in ("trained", "forwarded", "ntk"))
                for seconds, done in zip(samples[f"steps:{teacher}"], work[teacher][WARMUP:])]
        costs["measured_step"][teacher] = paired(rest) / TEACHER_STEPS
    # not clamped at 0: where a step's cost grows faster than its batch (a 3-D hash grid: 6.6k points a
    # step cost 46 ms, all 32k 303 ms), the line through the two probed sizes meets 0 examples below 0 ms,
    # and only with that intercept does it price a step of either size at what it measured
    costs["own_steps"] = own_steps
    costs["loop"] = loop_price(costs)
    costs["step"] = step_prices(costs)
    costs["samples"] = samples
    return costs


def loop_price(costs: dict) -> float:
    """The training loop's own cost a step: a teacher's real step, less the work it counted and its own
    selection and feedback, is the same loop for every teacher, so the median over teachers (but those in
    ``own_steps``, whose steps do work no counter sees): one teacher's noisy probe cannot move it."""
    loops = [costs["measured_step"][t] - selection for t, selection in costs["teacher"].items()
             if t not in costs["own_steps"]]
    return statistics.median(loops or [costs["measured_step"][t] - s for t, s in costs["teacher"].items()])


def step_prices(costs: dict) -> dict[str, float]:
    """Each teacher's price a step beyond its counted work: the shared loop plus its own selection and
    feedback, or what its real steps measured for a teacher in ``costs["own_steps"]``."""
    return {t: costs["measured_step"][t] if t in costs["own_steps"] else costs["loop"] + selection
            for t, selection in costs["teacher"].items()}


def price_inr_results(results: dict) -> dict:
    """Every run of an INR results file priced under today's cost model, from its probe's measurements
    (files written before a teacher's input gradients were priced name no ``own_steps``: the teachers that
    want them, by name)."""
    from nteach.teaching import STRATEGIES

    for case in results["cases"].values():
        costs = case["costs"]
        if "measured_step" not in costs:
            continue  # no probe of real steps to price from: the file's own robust seconds stand
        if "own_steps" not in costs:
            costs["own_steps"] = [t for t in costs["teacher"]
                                  if t in STRATEGIES and STRATEGIES[t].wants_input_grads]
        costs["loop"] = loop_price(costs)
        costs["step"] = step_prices(costs)
        for teacher, runs in case["runs"].items():
            for run in runs:
                for record in run["history"]:
                    record["robust_seconds"] = robust_seconds(record["work"], costs, teacher)
    return results


def robust_seconds(work: dict[str, int], costs: dict, teacher: str) -> float:
    """The clock-robust training time of ``work`` done by ``teacher`` under the unit ``costs``."""
    return (work["steps"] * costs["step"][teacher] + work["trained"] * costs["trained"]
            + work["forwarded"] * costs["forwarded"] + work["ntk"] * costs["ntk"])
