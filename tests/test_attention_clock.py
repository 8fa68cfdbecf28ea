import random

import pytest

from nteach.bench.attention_clock import fit_prices, price_results, robust_seconds, segments

TRUE = {"unit": "token", "loop": 0.05, "trained": 4e-3, "forwarded": 1.5e-3}


def run(per_step: tuple[int, int], steps_per_stretch: int, stretches: int, slow: float = 1.0,
        noise: random.Random | None = None) -> dict:
    """A run of ``stretches`` evaluations apart, each ``steps_per_stretch`` steps of (tokens trained,
    tokens forwarded), timed at TRUE's prices times ``slow`` (and, with ``noise``, +-2 % a stretch)."""
    history, work, seconds = [], {"steps": 0, "trained": 0, "forwarded": 0, "trained_tokens": 0,
                                  "forwarded_tokens": 0}, 0.0
    for _ in range(stretches):
        added = {"steps": steps_per_stretch, "trained_tokens": steps_per_stretch * per_step[0],
                 "forwarded_tokens": steps_per_stretch * per_step[1]}
        jitter = 1 + (noise.uniform(-0.02, 0.02) if noise else 0.0)
        seconds += robust_seconds(added, TRUE) * slow * jitter
        work = {**work, **{k: work[k] + v for k, v in added.items()}}
        history.append({"seconds": seconds, "work": work})
    return {"seed": 0, "train_seconds": seconds, "history": history}


# full trains 560 tokens a step; Selective Backprop scores 560 and trains 220; a subset teacher fewer steps
SHAPES = {"full": (560, 0), "selective_backprop": (220, 560), "subset": (560, 0), "scored": (540, 300)}


def test_exact_stretches_give_back_the_prices():
    runs = [run(shape, steps, 3) for shape, steps in zip(SHAPES.values(), (16, 16, 12, 14))]
    fitted = fit_prices(runs, "token")
    for part in ("loop", "trained", "forwarded"):
        assert fitted[part] == pytest.approx(TRUE[part], rel=1e-4)
    assert fitted["segments"] == 12 and fitted["median_error"] < 1e-6


def test_a_run_the_machine_slowed_keeps_its_price():
    noise = random.Random(0)
    runs = [run(shape, 16, 3, noise=noise) for shape in SHAPES.values() for _ in range(2)]
    slowed = run(SHAPES["selective_backprop"], 16, 3, slow=1.5, noise=noise)  # every stretch 1.5x
    fitted = fit_prices([*runs, slowed], "token")
    for part in ("trained", "forwarded"):
        assert fitted[part] == pytest.approx(TRUE[part], rel=0.05)
    truth = robust_seconds(slowed["history"][-1]["work"], TRUE)
    assert robust_seconds(slowed["history"][-1]["work"], fitted) == pytest.approx(truth, rel=0.03)
    assert slowed["train_seconds"] > 1.45 * truth  # what the raw clock says


def test_work_no_run_did_costs_nothing_and_images_count_examples():
    def history(k):  # 10 steps at 0.05 s and 640 + 100 k images at 10 ms, after an untrained record
        work = {"steps": 10, "trained": 640 + 100 * k, "forwarded": 0, "trained_tokens": 9,
                "forwarded_tokens": 9}
        return [{"seconds": 0.0, "work": dict.fromkeys(work, 0)}, {"seconds": 6.9 + k, "work": work}]
    runs = [{"seed": 0, "history": history(k)} for k in range(3)]
    rows, seconds = segments(runs, "example")  # the untrained record starts no stretch; tokens unread
    assert rows.tolist() == [[10, 640, 0], [10, 740, 0], [10, 840, 0]]
    assert seconds.tolist() == pytest.approx([6.9, 7.9, 8.9])
    fitted = fit_prices(runs, "example")
    assert fitted["forwarded"] == 0 and fitted["segments"] == 3
    assert fitted["trained"] == pytest.approx(0.01, rel=1e-4)
    assert fitted["loop"] == pytest.approx(0.05, rel=1e-3)


def test_price_case_gives_every_record_its_robust_seconds():
    case = {"costs": {"unit": "token", "trained": 9e-3, "forwarded": 9e-3},  # a probe's: not the clock
            "runs": {name: [run(shape, 16, 3)] for name, shape in SHAPES.items()}}
    price_results({"cases": {"lm": case}})
    assert case["costs"]["fitted"]["trained"] == pytest.approx(TRUE["trained"], rel=1e-4)
    assert case["costs"]["trained"] == 9e-3
    for runs in case["runs"].values():
        for record in runs[0]["history"]:
            assert record["robust_seconds"] == pytest.approx(record["seconds"], rel=1e-4)
