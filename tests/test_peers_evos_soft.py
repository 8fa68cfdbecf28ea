"""EVOS and Soft Mining: their formulas by hand, their selections, and a short fit with each."""

import math

import numpy as np
import pytest
import torch

from nteach.errors import UserError
from nteach.inr.fit import Budget, Fit
from nteach.inr.metrics import psnr
from nteach.inr.models import Siren
from nteach.inr.signals import grid
from nteach.teaching import Teacher, make_strategy
from nteach.teaching.strategies.evos import EVOS, crossover
from nteach.teaching.strategies.soft_mining import loss_weights

LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


class StubImage:
    """A small RGB image with the scores and loss term EVOS and Soft Mining ask for, in plain torch."""

    name, metric = "stub", "psnr"

    def __init__(self, image: np.ndarray) -> None:
        self.shape = image.shape[:2]
        self.coords = grid(self.shape)
        self.targets = torch.from_numpy(image.reshape(-1, image.shape[2])).float()

    def __len__(self) -> int:
        return len(self.coords)

    def evaluate(self, predictions: torch.Tensor) -> dict[str, float]:
        return {"psnr": psnr(predictions.detach().clamp(0, 1), self.targets)}

    def laplacian(self, values: torch.Tensor) -> torch.Tensor:
        gray = values.mean(dim=1).reshape(1, 1, *self.shape)
        padded = torch.nn.functional.pad(gray, (1, 1, 1, 1), mode="replicate")
        return torch.nn.functional.conv2d(padded, LAPLACE)

    def score(self, name: str, predict) -> torch.Tensor:
        if name == "edge_magnitude":
            dy, dx = torch.gradient(self.targets.mean(dim=1).reshape(self.shape))
            return torch.hypot(dy, dx).flatten()
        assert name == "laplacian_error", name
        return 1e-5 * (self.laplacian(predict().detach()) - self.laplacian(self.targets)).pow(2).flatten()

    def extra_loss(self, name: str, predictions: torch.Tensor, indices: torch.Tensor | None) -> torch.Tensor:
        assert name == "laplacian", name
        if indices is not None:
            return predictions.new_zeros(())
        return (self.laplacian(predictions) - self.laplacian(self.targets)).pow(2).mean()


def make_scores(pool_shape: tuple[int, int], seed: int = 0):
    """A score function for a Teacher on a pool_shape grid (no learner: made-up scores)."""
    g = torch.Generator().manual_seed(seed)
    edges = torch.rand(math.prod(pool_shape), generator=g)

    def score(name: str) -> torch.Tensor:
        if name == "coordinates":
            return grid(pool_shape)
        if name == "edge_magnitude":
            return edges
        return torch.rand(math.prod(pool_shape), generator=g)

    return score


def drive(teacher: Teacher, steps: range, total: int, score, feedback_seed: int = 1) -> list:
    """Select and feed back made-up losses and input gradients, as the fit loop would."""
    g = torch.Generator().manual_seed(feedback_seed)
    chosen = []
    for step in steps:
        selection = teacher.select(step, step / total, score)
        size = selection.size(teacher.pool_size)
        losses = torch.rand(size, generator=g) * 0.1
        teacher.observe(selection.indices, losses, torch.randn(size, 2, generator=g), step)
        chosen.append(selection)
    return chosen


# EVOS

def test_evos_fitness_steps_in_the_first_300_of_1000():
    hand = [t for t in range(300) if t % (100 - -(-50 * t // 1000)) == 1]  # I(t) = 100 - ceil(50 t / T)
    assert hand == [1, 96, 181]
    assert [t for t in range(300) if EVOS().is_fitness_step(t, t / 1000)] == hand
    asked = []

    def score(name):
        asked.append((step, name))
        return torch.rand(400)

    teacher = Teacher("evos", pool_size=400, ratio=0.25)
    full = []
    for step in range(300):
        selection = teacher.select(step, step / 1000, score)
        teacher.observe(selection.indices, torch.rand(selection.size(400)), step=step)
        if selection.indices is None:
            full.append(step)
    assert full == [0] + hand  # step 0 has no fitness yet: it trains on everything too
    assert asked == [(t, "laplacian_error") for t in full]


def test_evos_crossover_keeps_the_intersection_and_fills_in_proportion():
    fitness = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])  # mean 0.45
    laplacian = torch.tensor([0.1, 0.0, 0.9, 0.8, 0.0, 0.0, 0.0, 0.7, 0.6, 0.5]) * 1.25  # mean 0.45
    # top-4: by fitness 0, 1, 2, 3; by laplacian 2, 3, 7, 8; both: 2, 3; 1 : 1 for the other two
    assert crossover(fitness, laplacian, 4).tolist() == [2, 3, 0, 7]
    # top-6: by fitness 0..5, by laplacian 2, 3, 7, 8, 9, 0; both: 0, 2, 3; rest 3 at 3 : 1 -> 2 and 1
    assert crossover(fitness, laplacian / 3, 6).tolist() == [0, 2, 3, 1, 4, 7]
    assert crossover(fitness, laplacian, 0).tolist() == []


def test_evos_mutation_part_sizes_and_batches():
    strategy = EVOS()
    assert strategy.part_sizes(budget=100, start_budget=100) == (50, 50)  # mu N = 0.5 r0 N
    assert strategy.part_sizes(budget=250, start_budget=100) == (200, 50)  # mu stays with r0
    assert EVOS(mutation=0.2).part_sizes(budget=100, start_budget=100) == (80, 20)
    teacher = Teacher("evos", pool_size=400, ratio=0.25, schedule="linear", seed=3)
    selections = drive(teacher, range(60), 1000, make_scores((20, 20)))
    fitness, laplacian = teacher.state["fitness"], teacher.scores["laplacian_error"]
    for step, selection in enumerate(selections[2:], start=2):  # steps 0 and 1 train on all
        budget = teacher.budget(step / 1000)
        assert len(selection.indices) == budget and len(set(selection.indices.tolist())) == budget
        n_elite, n_mutation = strategy.part_sizes(budget, 100)
        assert n_mutation == 50
        assert torch.equal(selection.indices[:n_elite], crossover(fitness, laplacian, n_elite))


def test_evos_cross_frequency_loss_until_step_1500():
    assert EVOS().extra_losses(0, 0.0) == {"laplacian": 1e-5}
    assert EVOS().extra_losses(1499, 0.3) == {"laplacian": 1e-5}
    assert EVOS().extra_losses(1500, 0.3) == {} and EVOS().extra_losses(4000, 0.8) == {}


# Soft Mining

def test_soft_mining_weights_by_hand():
    errors = torch.tensor([0.01, 0.1, 1.0, 2.0, 20.0])
    assert loss_weights(errors, step=0).tolist() == [1.0] * 5  # q = 0
    # q = 0.6: w = e^-0.6 = 15.8489, 3.98107, 1, 0.659754, 0.165723; mean 4.33110, std 6.60886
    expected = [4.33110 + 6.60886, 3.98107, 1.0, 0.659754, 0.2]
    assert loss_weights(errors, step=1000).tolist() == pytest.approx(expected, rel=1e-5)
    assert loss_weights(errors, step=5000).tolist() == pytest.approx(expected, rel=1e-5)  # q stays 0.6
    assert loss_weights(torch.tensor([0.0, 1e-4, 0.1]), step=1000)[0] == loss_weights(
        torch.tensor([0.0, 1e-4, 0.1]), step=1000)[1]  # |e| floored at eps = 1e-3


@pytest.mark.parametrize("code_faithful", [False, True])
def test_soft_mining_selects_the_budget_without_repeats(code_faithful):
    teacher = Teacher("soft_mining", pool_size=24 * 16, ratio=0.3, schedule="linear", seed=2,
                      code_faithful=code_faithful)
    for step, selection in enumerate(drive(teacher, range(40), 40, make_scores((24, 16)))):
        budget = teacher.budget(step / 40)
        assert len(selection.indices) == budget and len(set(selection.indices.tolist())) == budget
        assert selection.weights.shape == (budget,) and (selection.weights >= 0.2).all()


def test_soft_mining_is_reproducible_under_a_seed():
    def run(seed: int) -> list[torch.Tensor]:
        teacher = Teacher("soft_mining", pool_size=400, ratio=0.2, seed=seed)
        return [s.indices for s in drive(teacher, range(30), 30, make_scores((20, 20)))]

    assert all(torch.equal(a, b) for a, b in zip(run(4), run(4)))
    assert not all(torch.equal(a, b) for a, b in zip(run(4), run(5)))


def test_soft_mining_needs_a_full_grid():
    scattered = torch.rand(400, 2) * 2 - 1
    teacher = Teacher("soft_mining", pool_size=400, ratio=0.2)
    with pytest.raises(UserError, match="full row-major grid"):
        teacher.select(0, 0.0, lambda name: scattered if name == "coordinates" else torch.rand(400))


@pytest.mark.parametrize("name", ["evos", "soft_mining"])
def test_state_round_trip_resumes_the_same_selections(name):
    teacher = Teacher(name, pool_size=400, ratio=0.2, seed=11)
    drive(teacher, range(12), 60, make_scores((20, 20), seed=7), feedback_seed=8)
    state = teacher.state_dict()
    first = drive(teacher, range(12, 30), 60, make_scores((20, 20), seed=9), feedback_seed=10)
    resumed = Teacher(name, pool_size=400, ratio=0.2, seed=999)
    resumed.load_state_dict(state)
    second = drive(resumed, range(12, 30), 60, make_scores((20, 20), seed=9), feedback_seed=10)
    for a, b in zip(first, second):
        assert (a.indices is None and b.indices is None) or torch.equal(a.indices, b.indices)
        assert (a.weights is None and b.weights is None) or torch.equal(a.weights, b.weights)


# a short fit

@pytest.mark.parametrize("teacher", ["evos", "soft_mining"])
def test_short_fit_raises_psnr(tiny_signal, teacher):
    signal = StubImage(tiny_signal.image)
    with torch.random.fork_rng():  # Siren draws its initial weights from torch's default generator
        torch.manual_seed(0)
        model = Siren(2, 3, width=32, depth=2)
    fit = Fit(signal, model, Teacher(teacher, len(signal), ratio=0.25, seed=0), Budget(steps=80),
              lr=1e-3, eval_every=40, chunk=100)
    assert fit.run(show_progress=False)
    assert fit.history[-1]["psnr"] > fit.history[0]["psnr"] + 5
    assert fit.last_selected == 144
    assert make_strategy(teacher).name == teacher
