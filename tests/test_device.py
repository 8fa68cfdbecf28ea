"""The training paths on an accelerator: every INR teacher, resume, the ViT recipe.

Skipped without CUDA. ``NTEACH_TEST_DEVICE=cpu`` runs them on the CPU (how they were written and
checked on a machine without a GPU); ``scripts/device-check.sh`` runs them with CUDA.
"""

import json
import os

import pytest
import torch

from nteach.attention.recipes.vit import ViTConfig, run
from nteach.inr import Budget, Fit, Siren
from nteach.teaching import Teacher, make_strategy

DEVICE = os.environ.get("NTEACH_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA device")

INR_TEACHERS = {  # teacher: options
    "full": {}, "uniform": {}, "int": {}, "nint": {}, "egra": {}, "expansive": {}, "soft_mining": {},
    "evos": {}, "paced_sweep": {}, "paced_sweep_weighted": {"weighted": True},
}


def device_fit(signal, teacher: str, steps: int, seed: int = 0) -> Fit:
    torch.manual_seed(seed)
    taught_by = Teacher(teacher.removesuffix("_weighted"), len(signal), ratio=0.25, seed=seed,
                        **INR_TEACHERS[teacher])
    return Fit(signal, Siren(2, 3, width=32, depth=2), taught_by, Budget(steps=steps), lr=1e-3, eval_every=20,
               chunk=100, device=DEVICE)


@pytest.mark.parametrize("teacher", list(INR_TEACHERS))
def test_every_inr_teacher_fits_on_the_device(tiny_signal, teacher):
    fit = device_fit(tiny_signal, teacher, steps=60)
    assert fit.run(show_progress=False)
    assert fit.history[-1]["psnr"] > fit.history[0]["psnr"] + 3
    assert fit.counts.device.type == torch.device(DEVICE).type and int(fit.counts.sum()) > 0
    if teacher not in ("full", "int", "evos"):  # a constant ratio: 144 of the 576 pixels a step
        assert int(fit.counts.sum()) == 60 * 144


def test_resume_on_the_device_equals_an_uninterrupted_run(tiny_signal, tmp_path):
    straight = device_fit(tiny_signal, "paced_sweep", steps=40)
    straight.run(show_progress=False)
    cut = device_fit(tiny_signal, "paced_sweep", steps=40)
    for _ in range(13):  # inside a round (rounds of about 4 steps here)
        cut.train_step()
    torch.save(cut.state_dict(), tmp_path / "ck.pt")
    resumed = device_fit(tiny_signal, "paced_sweep", steps=40, seed=5)
    resumed.load_state_dict(torch.load(tmp_path / "ck.pt", weights_only=True))
    resumed.run(show_progress=False)
    assert torch.equal(straight.counts, resumed.counts)  # the same selections
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("options", [{}, {"jitter": 0.5}])
def test_paced_sweep_builds_its_rounds_on_the_device_as_on_the_cpu(options):
    strategy = make_strategy("paced_sweep", **options)
    rate = torch.rand(3000, generator=torch.Generator().manual_seed(5)) * 3
    on_cpu = strategy.new_round(rate, torch.Generator().manual_seed(7))
    on_device = strategy.new_round(rate.to(DEVICE), torch.Generator().manual_seed(7))
    assert on_device.device.type == torch.device(DEVICE).type and torch.equal(on_device.cpu(), on_cpu)


@pytest.mark.parametrize("teacher", ["paced_sweep", "infobatch", "attent_complex", "selective_backprop"])
def test_vit_recipe_on_the_device(tmp_path, teacher):
    summary, folder = run(ViTConfig(data="digits", model="micro", teacher=teacher, epochs=4, batch_size=32,
                                    device=DEVICE, out=str(tmp_path / teacher)), show_progress=False)
    assert summary["finished"] and 0 < summary["examples_trained"] < 4 * 1617  # each skips some
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    assert history[-1]["train_loss"] < history[1]["train_loss"] - 0.05  # on the CPU: 0.08-0.26 lower
