import math

import pytest

from nteach.bench.compare import comparison_targets
from nteach.bench.targets import (
    derive_targets,
    quality_at,
    reference_quality,
    start_quality,
    tail_gain,
    tail_quality,
    time_to_target,
)


def curve(values, every=10, metric="psnr"):
    return [{"step": every * k, "seconds": 0.5 * k, metric: v} for k, v in enumerate(values)]


def test_tail_quality_is_the_median_of_the_last_tenth():
    # steps 0..200 in tens: the last tenth is steps >= 180: 29.8, 30.4, 30.0 -> median 30.0
    history = curve([5.0] + [20.0] * 17 + [29.8, 30.4, 30.0])
    assert tail_quality(history, "psnr") == 30.0


def test_reference_quality_is_the_worst_seed_so_every_reference_run_reaches_it():
    runs = [curve([5.0, 20.0, 31.0, 31.2]), curve([5.0, 21.0, 30.2, 30.6]), curve([5.0, 19.0, 31.5, 31.9])]
    q_ref = reference_quality(runs, "psnr")
    assert q_ref == 30.6
    assert all(time_to_target(h, q_ref) is not None for h in runs)


def test_targets_three_and_one_below_rounded_down_and_above_the_start():
    assert derive_targets(30.467, "psnr", start=5.0) == [27.46, 29.46, 30.46]
    assert derive_targets(0.9417, "iou", start=0.0) == [0.911, 0.931, 0.941]
    # a clip whose silent start already scores 28: the target 3 below Q_ref = 30 is met at step 0
    assert derive_targets(30.0, "si_snr", start=28.0) == [29.0, 30.0]
    assert derive_targets(-math.inf, "psnr", start=1.0) == []


def test_start_quality_and_tail_gain():
    runs = [curve([5.0, 20.0, 25.0]), curve([7.0, 18.0, 26.0])]
    assert start_quality(runs, "psnr") == 7.0
    # steps 0..40: the last fifth starts at step 32, 2/10 of the way from 25 (step 30) to 26 -> 25.2
    assert tail_gain(curve([5.0, 20.0, 24.0, 25.0, 26.0]), "psnr") == pytest.approx(0.8)


def test_quality_at_interpolates_and_holds_the_end():
    history = curve([10.0, 20.0, 24.0])  # at 0, 0.5 and 1.0 s
    assert quality_at(history, 0.25, "psnr") == pytest.approx(15.0)
    assert quality_at(history, 0.0, "psnr") == 10.0 and quality_at(history, 5.0, "psnr") == 24.0
    silent = [{"seconds": 0.0, "si_snr": -math.inf}, {"seconds": 1.0, "si_snr": 3.0}]
    assert quality_at(silent, 0.5, "si_snr") == 3.0 and time_to_target(silent, 2.0, "si_snr") == 1.0


def test_time_to_target_interpolates_between_evaluations():
    history = [{"seconds": 0.16 * k, "psnr": psnr} for k, psnr in enumerate([10.0, 19.0, 23.0, 19.5, 26.0])]
    assert time_to_target(history, 20.0) == pytest.approx(0.16 + 0.16 / 4)  # 19 -> 23 dB crosses 20 at 1/4
    assert time_to_target(history, 23.0) == pytest.approx(0.32)  # reached exactly at an evaluation
    assert time_to_target(history, 25.0) == pytest.approx(0.48 + 0.16 * 5.5 / 6.5)  # the first crossing
    assert time_to_target(history, 5.0) == 0.0 and time_to_target(history, 30.0) is None
    losses = [{"seconds": 0.0, "loss": 4.0}, {"seconds": 2.0, "loss": 2.0}]
    assert time_to_target(losses, 3.5, "loss", higher_is_better=False) == pytest.approx(0.5)
    steps = [{"step": 74 * k, "seconds": 0.1 + k, "psnr": p} for k, p in enumerate([10.0, 19.0, 23.0])]
    assert time_to_target(steps, 20.0, clock="step") == pytest.approx(74 + 74 / 4)  # that crossing, in steps


def test_compare_targets_from_uniform_else_full_and_never_met_at_step_0():
    runs = {"full": curve([6.0, 25.0, 27.0, 28.0]), "uniform": curve([6.0, 22.0, 26.0, 26.5]),
            "nint": curve([6.0, 20.0, 24.0, 29.0])}
    assert comparison_targets(None, runs, "psnr") == [23.5, 25.5, 26.5]  # uniform's end: 26.5
    del runs["uniform"]
    assert comparison_targets(None, runs, "psnr") == [25.0, 27.0, 28.0]  # full's
    with pytest.warns(UserWarning, match="met before training"):
        assert comparison_targets([5.0, 20.0], runs, "psnr") == [20.0]
    with pytest.warns(UserWarning, match="no target above"):
        assert comparison_targets(None, {"uniform": curve([6.0, 5.0, 5.5])}, "psnr") == []
