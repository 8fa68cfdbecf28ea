import math

import numpy as np
import pytest
import torch
from skimage import io

from nteach.errors import UserError
from nteach.inr import Budget, Diverged, Fit, Siren, grid, load_image
from nteach.teaching import Teacher


def test_siren_paper_size_and_initialisation():
    torch.manual_seed(0)
    model = Siren(2, 3, width=256, depth=5)
    assert sum(p.numel() for p in model.parameters()) == 264_707
    first = model.body[0].linear.weight
    assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.9 / 2
    for layer in list(model.body[1:]):
        bound = math.sqrt(6 / 256) / 30
        assert layer.linear.weight.abs().max() <= bound and layer.linear.weight.abs().max() > 0.9 * bound
    assert model.head.weight.abs().max() <= math.sqrt(6 / 256) / 30


def test_grid_is_row_major_over_minus_one_to_one():
    coords = grid((2, 3))
    assert coords.tolist() == [[-1, -1], [-1, 0], [-1, 1], [1, -1], [1, 0], [1, 1]]


def test_signal_of_its_own_targets_is_perfect(tiny_signal):
    quality = tiny_signal.evaluate(tiny_signal.targets)
    assert quality["psnr"] == math.inf and quality["ssim"] == pytest.approx(1.0)


def test_load_bundled_image_resized_and_gray():
    assert load_image("astronaut", size=64).shape == (64, 64, 3)
    coffee = load_image("coffee", size=60, gray=True)  # 400 x 600 keeps its aspect
    assert coffee.shape == (40, 60, 1) and len(coffee) == 2400
    assert 0 <= coffee.targets.min() and coffee.targets.max() <= 1


def test_load_file_and_alpha(tmp_path, tiny_png):
    signal = load_image(str(tiny_png))
    assert signal.shape == (24, 24, 3) and signal.name == "tiny"
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 255
    io.imsave(tmp_path / "alpha.png", rgba, check_contrast=False)
    with pytest.warns(UserWarning, match="alpha"):
        assert load_image(str(tmp_path / "alpha.png")).shape == (8, 8, 3)


def test_sixteen_bit_image_scaled_to_unit_range(tmp_path):
    io.imsave(tmp_path / "deep.png", np.full((4, 4), 65535, np.uint16), check_contrast=False)
    assert load_image(str(tmp_path / "deep.png")).targets.max().item() == pytest.approx(1.0)


def test_bad_images(tmp_path):
    with pytest.raises(UserError, match="no such image"):
        load_image(str(tmp_path / "missing.png"))
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(UserError, match="cannot read"):
        load_image(str(tmp_path / "notes.png"))


def make_fit(signal, teacher="nint", steps=60, seed=0) -> Fit:
    torch.manual_seed(seed)
    model = Siren(2, 3, width=32, depth=2)
    return Fit(signal, model, Teacher(teacher, len(signal), ratio=0.25, seed=seed), Budget(steps=steps),
               lr=1e-3, eval_every=20, chunk=100)


@pytest.mark.parametrize("teacher", ["full", "uniform", "int", "nint"])
def test_short_fit_raises_psnr(tiny_signal, teacher):
    fit = make_fit(tiny_signal, teacher, steps=80)
    assert fit.run(show_progress=False)
    first, last = fit.history[0], fit.history[-1]
    assert last["step"] == 80 and last["psnr"] > first["psnr"] + 5
    assert fit.clock.seconds > 0 and [r["step"] for r in fit.history] == [0, 20, 40, 60, 80]
    expected_selected = len(tiny_signal) if teacher == "full" else round(0.25 * len(tiny_signal))
    if teacher != "int":  # INT's own schedule raises its ratio over the run
        assert last["selected"] == expected_selected


def test_resume_equals_uninterrupted_run(tiny_signal, tmp_path):
    straight = make_fit(tiny_signal, steps=40)
    straight.run(show_progress=False)

    first_half = make_fit(tiny_signal, steps=40)
    for _ in range(17):
        first_half.train_step()
    torch.save(first_half.state_dict(), tmp_path / "ck.pt")
    resumed = make_fit(tiny_signal, steps=40, seed=123)  # other init: the checkpoint must override it
    resumed.load_state_dict(torch.load(tmp_path / "ck.pt", weights_only=True))
    resumed.run(show_progress=False)
    assert resumed.step == 40
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert torch.equal(straight.counts, resumed.counts)


def test_nan_loss_stops_with_a_clear_error(tiny_signal):
    fit = make_fit(tiny_signal, teacher="uniform")
    with torch.no_grad():
        fit.model.head.bias.fill_(float("nan"))
    with pytest.raises(Diverged, match="loss became nan at step 0"):
        fit.train_step()


@pytest.mark.parametrize("kwargs", [{}, {"steps": 0}, {"seconds": -1.0}, {"steps": 5, "seconds": 5.0}])
def test_bad_budgets(kwargs):
    with pytest.raises(UserError):
        Budget(**kwargs)


def test_seconds_budget_stops_near_the_budget(tiny_signal):
    torch.manual_seed(0)
    fit = Fit(tiny_signal, Siren(2, 3, width=16, depth=2), Teacher("uniform", len(tiny_signal)),
              Budget(seconds=0.3), lr=1e-3)
    fit.run(show_progress=False)
    assert 0.3 <= fit.clock.seconds < 0.6 and fit.step > 5
