import math

import pytest
import torch

from nteach.errors import UserError
from nteach.inr import Budget, Fit, Siren
from nteach.inr.lr import lr_factor
from nteach.teaching import Teacher


@pytest.mark.parametrize("schedule,progress,expected", [
    ("constant", 0.0, 1.0), ("constant", 0.7, 1.0),
    ("cosine", 0.0, 1.0), ("cosine", 0.5, 0.5), ("cosine", 0.25, 0.5 + 0.5 * math.sqrt(0.5)),
    ("cosine", 1.0, 0.0),
    ("exponential", 0.0, 1.0), ("exponential", 0.5, 0.1), ("exponential", 1.0, 0.01),
    ("cosine", 1.5, 0.0),  # clipped to the budget's end
])
def test_lr_factors_by_hand(schedule, progress, expected):
    assert lr_factor(schedule, progress) == pytest.approx(expected, abs=1e-12)


def make_fit(signal, teacher="uniform", steps=20, schedule="constant", seed=0):
    torch.manual_seed(seed)
    model = Siren(dim_in=2, dim_out=3, width=16, depth=2)
    return Fit(signal, model, Teacher(teacher, len(signal), ratio=0.25, seed=seed), Budget(steps=steps),
               lr=1e-3, lr_schedule=schedule)


def test_the_fit_steps_at_the_scheduled_rate(tiny_signal):
    fit = make_fit(tiny_signal, steps=20, schedule="cosine")
    rates = []
    for _ in range(20):
        fit.train_step()
        rates.append(fit.optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * k / 20)) for k in range(20)])
    with pytest.raises(UserError, match="unknown lr schedule 'linear'"):
        make_fit(tiny_signal, schedule="linear")


def test_resume_with_a_schedule_equals_the_straight_run(tiny_signal):
    straight = make_fit(tiny_signal, teacher="sweep", steps=30, schedule="exponential")
    straight.run(show_progress=False)
    first = make_fit(tiny_signal, teacher="sweep", steps=30, schedule="exponential")
    for _ in range(13):
        first.train_step()
    resumed = make_fit(tiny_signal, teacher="sweep", steps=30, schedule="exponential", seed=5)
    resumed.load_state_dict(first.state_dict())
    resumed.run(show_progress=False)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert resumed.work == straight.work


def test_sweep_takes_each_example_once_a_round():
    teacher = Teacher("sweep", pool_size=10, ratio=0.4, seed=3)  # 4 a step: rounds end mid-step
    picked = torch.cat([teacher.select(step, step / 10, lambda name: None).indices for step in range(10)])
    assert len(picked) == 40
    for round_ in picked.view(4, 10):  # 40 picks = 4 whole rounds, each a permutation of the pool
        assert sorted(round_.tolist()) == list(range(10))


def test_work_counts_what_each_step_did(tiny_signal):
    n = len(tiny_signal)  # 576 pixels, ratio 0.25: 144 a step
    uniform = make_fit(tiny_signal, "uniform", steps=5)
    uniform.run(show_progress=False)
    assert uniform.work == {"steps": 5, "trained": 5 * 144, "forwarded": 0, "ntk": 0}
    assert uniform.history[-1]["work"] == uniform.work
    nint = make_fit(tiny_signal, "nint", steps=5)  # a residual pass every step, the NTK at event 0
    for _ in range(5):
        nint.train_step()
    assert nint.work == {"steps": 5, "trained": 5 * 144, "forwarded": 5 * n, "ntk": n}
    full = make_fit(tiny_signal, "full", steps=3)
    for _ in range(3):
        full.train_step()
    assert full.work == {"steps": 3, "trained": 3 * n, "forwarded": 0, "ntk": 0}
