import math

import pytest
import torch

from nteach.errors import UserError
from nteach.inr import Budget, Fit, Siren
from nteach.inr.signals import ImageSignal
from nteach.teaching import Teacher, make_strategy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_probabilities_by_hand():
    strategy = make_strategy("cached_importance", mix=0.5, temperature=1.0)
    cache = torch.tensor([1.0, 3.0, float("nan"), 0.0])  # the unseen example counts as the largest, 3
    expected = [0.5 * c / 7.0 + 0.5 / 4 for c in (1.0, 3.0, 3.0, 1e-12)]
    assert strategy.probabilities(cache).tolist() == pytest.approx(expected)
    roots = [math.sqrt(c) for c in (1.0, 3.0, 3.0, 1e-12)]  # the default temperature, 0.5
    assert make_strategy("cached_importance", mix=0.5).probabilities(cache).tolist() == pytest.approx(
        [0.5 * r / sum(roots) + 0.125 for r in roots])
    squared = make_strategy("cached_importance", mix=1.0, temperature=2.0).probabilities(cache)
    assert squared.tolist() == pytest.approx([0.25] * 4)  # mix 1 is uniform whatever the cache


def test_observed_losses_fill_the_cache_and_draws_are_seeded_without_duplicates():
    teacher = Teacher("cached_importance", 100, ratio=0.3, seed=3)
    assert teacher.state["cache"].isnan().all()
    teacher.observe(torch.tensor([5, 7]), torch.tensor([0.5, 2.0]))
    cache = teacher.state["cache"]
    assert cache[[5, 7]].tolist() == [0.5, 2.0] and cache.isnan().sum() == 98
    first = teacher.select(0, 0.0, score=None).indices
    again = Teacher("cached_importance", 100, ratio=0.3, seed=3)
    again.observe(torch.tensor([5, 7]), torch.tensor([0.5, 2.0]))
    assert len(first) == 30 and len(set(first.tolist())) == 30
    assert torch.equal(first, again.select(0, 0.0, score=None).indices)


def test_importance_weights_by_hand():
    teacher = Teacher("cached_importance", 4, ratio=0.5, seed=0, weighted=True, max_weight=1.5, mix=0.5,
                      temperature=1.0)
    teacher.observe(None, torch.tensor([1.0, 3.0, 3.0, 1.0]))
    selection = teacher.select(0, 0.0, score=None)
    p = torch.tensor([0.5 * c / 8.0 + 0.125 for c in (1.0, 3.0, 3.0, 1.0)])
    raw = (1.0 / (4 * p[selection.indices])).clamp_max(1.5)
    assert selection.weights.tolist() == pytest.approx((raw / raw.mean()).tolist())
    assert math.isclose(selection.weights.mean().item(), 1.0, rel_tol=1e-6)


def test_high_loss_examples_are_drawn_more_often():
    teacher = Teacher("cached_importance", 1000, ratio=0.05, seed=0, mix=0.2, temperature=1.0)
    losses = torch.full((1000,), 0.01)
    losses[:100] = 1.0  # a tenth of the pool holds most of the loss
    teacher.observe(None, losses)
    hits = sum(int((teacher.select(step, 0.0, score=None).indices < 100).sum()) for step in range(20))
    expected_share = 0.8 * 100 / (100 + 900 * 0.01) + 0.2 * 0.1  # p mass on the first tenth
    assert hits / (20 * 50) == pytest.approx(expected_share, abs=0.1)  # uniform would give 0.1


def test_bad_options_and_a_short_fit():
    with pytest.raises(UserError, match="cached_importance needs"):
        make_strategy("cached_importance", mix=0.0)
    y, x = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    pixels = torch.stack([torch.sin(6 * x), torch.cos(5 * y), x * y], dim=-1) * 0.5 + 0.5
    signal = ImageSignal("waves", pixels.numpy())
    torch.manual_seed(0)
    fit = Fit(signal, Siren(2, 3, width=32, depth=2), Teacher("cached_importance", len(signal), seed=0),
              Budget(steps=60), lr=1e-3, eval_every=60)
    fit.run(show_progress=False)
    assert fit.history[-1]["psnr"] > fit.history[0]["psnr"] + 5
