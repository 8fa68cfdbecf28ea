import pytest

from nteach.bench.shortfalls import gaps_to_full, inr_breakdown, lm_shortfall, shortfalls_markdown


def target_entry(robust, steps, peer="sweep") -> dict:
    return {"robust_seconds": {"ratio": robust, "peer": peer}, "step": {"ratio": steps, "peer": peer}}


def test_inr_time_splits_into_steps_and_cost_a_step():
    summaries = {
        "a": {"targets": [20.0, 23.0], "teachers": {"paced_sweep": {"targets": {
            "20": target_entry(0.5, 0.5), "23": target_entry(1.2, 1.5)}}}},
        "b": {"targets": [0.9], "teachers": {"paced_sweep": {"targets": {"0.9": target_entry(None, 1.0)}}}},
        "c": {"targets": [0.5], "teachers": {"uniform": {"targets": {"0.5": target_entry(1.0, 1.0)}}}}}
    # only the headline target counts; b missed it, c has no paced_sweep
    assert inr_breakdown(summaries) == {"a": ("sweep", 1.5, pytest.approx(0.8))}


def lm_run(seed, points, metric="val_loss") -> dict:
    """A run whose evaluations are (examples, value); a second of clock per 100 examples."""
    history = [{"epoch": k, "examples": e, "seconds": e / 100, "robust_seconds": e / 100, metric: v}
               for k, (e, v) in enumerate(points)]
    return {"seed": seed, "examples": points[-1][0], "history": history}


FULL = [(0, 4.8), (128, 4.0), (256, 3.6), (384, 3.5)]


def lm_case(**runs) -> dict:
    return {"recipe": "lm", "metric": "val_loss", "tolerance": 0.05,
            "runs": {"full": [lm_run(0, FULL)], **runs}}


def test_gaps_to_full_at_equal_examples_by_hand():
    case = lm_case(
        # 128: trained what full had (same value): left out; 192: full's line gives 3.8, so +0.1; 288 is last
        a=[lm_run(0, [(0, 4.8), (128, 4.0), (192, 3.9), (288, 3.0)])],
        # 128: +0.1; 224: full's line gives 4.0 - 0.4 * 96 / 128 = 3.7, so -0.1; mean 0
        b=[lm_run(0, [(0, 4.8), (128, 4.1), (224, 3.6), (320, 3.5)])])
    gaps = gaps_to_full(case)
    assert gaps == {"a": pytest.approx(0.1), "b": pytest.approx(0.0)}


def test_gaps_of_an_accuracy_count_lower_as_worse_and_skip_the_line_from_the_untrained_model():
    full = [(0, 0.1), (100, 0.5), (200, 0.7)]
    # 50 examples: before full's first trained evaluation, left out; 150: full's line gives 0.6
    taught = [(0, 0.1), (50, 0.2), (150, 0.5), (200, 0.9)]
    case = {"metric": "val_accuracy", "runs": {"full": [lm_run(0, full, "val_accuracy")],
                                               "a": [lm_run(0, taught, "val_accuracy")]}}
    assert gaps_to_full(case) == {"a": pytest.approx(0.1)}


def test_lm_shortfall_examples_full_needs_against_what_the_goal_leaves():
    case = lm_case(b=[lm_run(0, [(0, 4.8), (128, 4.1), (224, 3.6), (320, 3.5)])],
                   paced_sweep=[lm_run(0, [(0, 4.8), (96, 4.2), (192, 3.7), (288, 3.56)])])
    found = lm_shortfall(case, 0.85)
    # target 3.5 + 0.05: full crosses it halfway from 256 to 384 examples, b halfway from 224 to 320
    assert found["full_needs"] == pytest.approx(320.0)
    assert found["peer"] == "b" and found["peer_needs"] == pytest.approx(272.0)
    assert found["allowed"] == pytest.approx(0.85 * 272.0)
    text = shortfalls_markdown(None, {"cases": {"lm": case}}, 0.8, 0.85)
    assert "after 320 examples" in text and "`b` after 272" in text
    assert "leaves about 231 examples, 28% fewer" in text
