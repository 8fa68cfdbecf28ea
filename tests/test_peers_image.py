"""EGRA and Expansive Supervision, and the image features and scores they rely on."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import filters, util

from nteach.errors import UserError
from nteach.inr import features
from nteach.inr.fit import Budget, Fit
from nteach.inr.models import Siren
from nteach.inr.signals import ImageSignal
from nteach.teaching import Teacher, make_strategy


def square_image(size: int = 32) -> np.ndarray:
    image = np.zeros((size, size), dtype=np.float32)
    image[8:24, 8:24] = 1.0
    return image


def blurred_noise(size: int = 64) -> np.ndarray:
    noise = ndimage.gaussian_filter(np.random.default_rng(0).random((size, size)), 2)
    return ((noise - noise.min()) / (noise.max() - noise.min())).astype(np.float32)


def no_scores(name: str) -> torch.Tensor:
    raise AssertionError(f"score {name!r} asked for again")


# features

def test_canny_finds_the_border_of_a_square():
    edges = features.canny_edges(util.img_as_ubyte(square_image()), 30, 40)
    ring = ndimage.binary_dilation(square_image() > 0) & ~ndimage.binary_erosion(square_image() > 0)
    assert edges[ring].mean() > 0.9  # the step's two sides, corners aside
    assert not edges[~ndimage.binary_dilation(ring)].any()


def test_adaptive_canny_reaches_the_area_and_reports_its_theta():
    gray = blurred_noise()
    edges, theta = features.adaptive_canny(gray, rho=0.1)
    assert 0.08 <= edges.mean() <= 0.12 and theta != 1.0  # theta = 1 gives ~0.21 on this image
    otsu = filters.threshold_otsu(util.img_as_ubyte(gray))
    assert np.array_equal(features.canny_edges(util.img_as_ubyte(gray), 0.5 * otsu, theta * otsu), edges)
    mask = features.expansive_edge_mask(gray, rho=0.1)
    assert np.array_equal(mask, ndimage.binary_dilation(edges, np.ones((2, 2), dtype=bool)))


def test_laplacian_of_a_ramp_is_zero_inside_and_matches_torch():
    y, x = np.mgrid[0:16, 0:16]
    ramp = (0.03 * x + 0.02 * y).astype(np.float64)
    assert np.abs(features.laplacian(ramp)[1:-1, 1:-1]).max() < 1e-12
    wavy = blurred_noise(16).astype(np.float64)
    assert np.allclose(features.torch_laplacian(torch.from_numpy(wavy)).numpy(), features.laplacian(wavy))


def test_sobel_of_a_constant_is_zero():
    assert np.abs(features.sobel_magnitude(np.full((12, 12), 0.4))).max() < 1e-12  # zero up to rounding


# the image signal's scores and loss

def test_image_scores_are_flat_per_pixel_tensors():
    signal = ImageSignal(name="square", image=np.repeat(square_image()[..., None], 3, axis=2))
    targets = signal.targets.clone()
    edges = signal.score("edges", lambda: targets)
    assert edges.shape == (32 * 32,) and edges.dtype == torch.float32
    assert set(edges.unique().tolist()) == {0.0, 1.0} and edges.reshape(32, 32)[8, 12] == 1
    assert set(signal.score("expansive_edges:0.1", lambda: targets).unique().tolist()) == {0.0, 1.0}
    assert signal.score("edge_magnitude", lambda: targets).reshape(32, 32)[16, 16] == 0
    assert signal.score("laplacian_error", lambda: targets).abs().max() == 0
    assert signal.score("laplacian_error", lambda: 1 - targets).max() > 0
    for bad in ("corners", "expansive_edges:", "expansive_edges:wide", "expansive_edges:2"):
        with pytest.raises(UserError):
            signal.score(bad, lambda: targets)


def test_laplacian_loss_is_zero_at_the_target_and_differentiable(tiny_signal):
    assert tiny_signal.extra_loss("laplacian", tiny_signal.targets, None).item() == 0.0
    predictions = (tiny_signal.targets + 0.1 * torch.sin(7 * tiny_signal.coords[:, :1])).requires_grad_(True)
    loss = tiny_signal.extra_loss("laplacian", predictions, None)
    loss.backward()
    assert loss.item() > 0 and predictions.grad.abs().sum() > 0
    assert tiny_signal.extra_loss("laplacian", predictions, torch.arange(5)).item() == 0.0
    with pytest.raises(UserError):
        tiny_signal.extra_loss("tv", predictions, None)


# EGRA

def run_events(teacher: Teacher, score, events: int) -> list[torch.Tensor]:
    return [teacher.select(step, step / events, score).indices for step in range(events)]


def test_egra_draws_the_budget_without_duplicates_reproducibly():
    edges = torch.zeros(1000)
    edges[::7] = 1.0
    asked = []
    score = lambda name: asked.append(name) or edges  # noqa: E731
    first = run_events(Teacher("egra", 1000, ratio=0.3, seed=3), score, 5)
    assert asked == ["edges"]  # once, at event 0; the teacher caches it
    assert all(len(s) == 300 and len(s.unique()) == 300 for s in first)
    again = run_events(Teacher("egra", 1000, ratio=0.3, seed=3), lambda name: edges, 5)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_egra_favours_edges_by_its_weight_ratio():
    egra = make_strategy("egra")
    pool = 4000
    edges = torch.zeros(pool)
    edges[: pool // 2] = 1.0  # shifted by 6..9, pixels 9..1999 stay edges and 2009.. stay non-edges
    weights = egra.probabilities(edges, 7)
    edge_weight, other_weight = egra.p + (1 - egra.p) * egra.base, (1 - egra.p) * egra.base
    assert weights[100].item() == pytest.approx(edge_weight)
    assert weights[3000].item() == pytest.approx(other_weight)
    factor = edge_weight / other_weight  # 1 + 0.0025 / (0.9975 * 0.0064) = 1.39
    teacher = Teacher(egra, pool, ratio=0.025, seed=0)
    counts = torch.zeros(pool)
    for indices in run_events(teacher, lambda name: edges, 400):
        counts[indices] += 1
    observed = counts[9:pool // 2].mean() / counts[pool // 2 + 9:].mean()
    assert factor == pytest.approx(1.3916, abs=1e-4)
    assert observed.item() == pytest.approx(factor, rel=0.05)


# Expansive Supervision

def edge_mask(pool: int) -> torch.Tensor:
    mask = torch.zeros(pool)
    mask[torch.arange(0, pool, 3)] = 1.0  # a third of the pool: more than rho N
    return mask


def test_expansive_keeps_its_anchors_in_every_selection():
    pool, asked = 900, []
    score = lambda name: asked.append(name) or edge_mask(pool)  # noqa: E731
    teacher = Teacher("expansive", pool, ratio=0.2, seed=1)
    selections = run_events(teacher, score, 6)
    assert asked == ["expansive_edges:0.1"]  # rho = 0.5 * 180 / 900
    anchors = teacher.state["anchors"]
    assert len(anchors) == round(0.1 * pool) and bool(edge_mask(pool)[anchors].all())
    for indices in selections:
        assert len(indices) == 180 and len(indices.unique()) == 180
        assert torch.isin(anchors, indices).all()
    again = run_events(Teacher("expansive", pool, ratio=0.2, seed=1), lambda name: edge_mask(pool), 6)
    assert all(torch.equal(a, b) for a, b in zip(selections, again))


def test_expansive_anchors_survive_a_checkpoint():
    pool = 900
    teacher = Teacher("expansive", pool, ratio=0.2, seed=2)
    run_events(teacher, lambda name: edge_mask(pool), 3)
    resumed = Teacher("expansive", pool, ratio=0.2, seed=99)
    resumed.load_state_dict(teacher.state_dict())
    assert torch.equal(resumed.state["anchors"], teacher.state["anchors"])
    expected, got = teacher.select(3, 0.5, no_scores).indices, resumed.select(3, 0.5, no_scores).indices
    assert torch.equal(expected, got)


# a short fit

@pytest.mark.parametrize("teacher", ["egra", "expansive"])
def test_short_fit_with_a_peer_raises_psnr(tiny_signal, teacher):
    signal = tiny_signal
    with torch.random.fork_rng():  # Siren draws its initial weights from torch's default generator
        torch.manual_seed(0)
        model = Siren(2, 3, width=32, depth=2)
    fit = Fit(signal, model, Teacher(teacher, len(signal), ratio=0.25, seed=0), Budget(steps=80),
              lr=1e-3, eval_every=40, chunk=100)
    assert fit.run(show_progress=False)
    assert fit.history[-1]["psnr"] > fit.history[0]["psnr"] + 5
    assert fit.last_selected == 144
