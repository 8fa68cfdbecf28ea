import math

import numpy as np
import pytest

from nteach.bench.goals import (
    attention_ratios,
    bootstrap_upper,
    goals_markdown,
    headline_ratios,
    per_iteration,
    worst_against_free,
)


def test_bootstrap_upper_bound_of_the_median_by_hand():
    assert bootstrap_upper([0.9] * 5) == 0.9
    # resampling three cases, the median is the largest whenever two draws are it: 7 / 27 of the time,
    # well above the 2.5 % the upper bound leaves out
    assert bootstrap_upper([0.7, 0.8, 1.2]) == 1.2
    assert bootstrap_upper([0.5, math.inf, math.inf]) == math.inf
    # nine cases at 0.8 and one at 5: a median of ten draws reaches 5 only if five or more draws are it,
    # a chance of about 0.16 %: the bound stays at 0.8
    assert bootstrap_upper([0.8] * 9 + [5.0]) == 0.8


def test_bootstrap_leaves_the_global_random_state_alone():
    state = np.random.get_state()[1].copy()
    bootstrap_upper([0.7, 0.8, 1.2])
    assert (np.random.get_state()[1] == state).all()


def target(ratio=None, mean=None) -> dict:
    return {"robust_seconds": {"ratio": ratio}, "mean_robust": mean}


def test_headline_and_worst_against_the_free_peers_by_hand():
    summaries = {
        "a": {"targets": [23.0, 26.0], "teachers": {
            "paced_sweep": {"targets": {"23": target(0.8, 4.0), "26": target(0.9, 9.0)}},
            "uniform": {"targets": {"23": target(1.1, 5.0), "26": target(1.0, 8.0)}},
            "sweep": {"targets": {"23": target(1.0, 4.5), "26": target()}}}},  # sweep missed 26
        "b": {"targets": [0.9], "teachers": {
            "paced_sweep": {"targets": {"0.9": target()}},
            "uniform": {"targets": {"0.9": target(1.0, 3.0)}}}}}
    assert headline_ratios(summaries) == {"a": 0.9, "b": math.inf}
    assert worst_against_free(summaries) == (math.inf, "b", "0.9")
    del summaries["b"]
    # at 23: 4 / min(5, 4.5); at 26: 9 / 8 (sweep never got there)
    assert worst_against_free(summaries) == (pytest.approx(9 / 8), "a", "26")


def steps_history(values, cost_per_step):
    return {"seed": 0, "history": [{"step": 10 * k, "robust_seconds": cost_per_step * 10 * k,
                                    "work": {"steps": 10 * k}, "psnr": v} for k, v in enumerate(values)]}


def test_per_iteration_share_of_the_gap_and_cost_a_step_by_hand():
    runs = {"uniform": [steps_history([0, 10, 20, 30], 1.0)],  # reaches 30 at step 30
            "nint": [steps_history([0, 30], 2.0)],  # at step 10
            "paced_sweep": [steps_history([0, 15, 30, 30], 1.1)]}  # at step 20
    cases = {"c": {"metric": "psnr", "runs": runs},
             "missed": {"metric": "psnr", "runs": {**runs, "nint": [steps_history([0, 20, 25, 29], 2.0)]}}}
    summaries = {"c": {"targets": [27.0, 30.0]}, "missed": {"targets": [30.0]}}
    result = per_iteration(cases, summaries)
    assert result["c"] == (pytest.approx((30 - 20) / (30 - 10)), pytest.approx(1.1))
    assert result["missed"][0] is None  # NINT never reached Q_ref


def accuracy_run(seconds_to_full: float, seed: int = 0) -> dict:
    history = [{"seconds": 0.0, "robust_seconds": 0.0, "val_accuracy": 0.5},
               {"seconds": seconds_to_full, "robust_seconds": seconds_to_full, "val_accuracy": 0.8}]
    return {"seed": seed, "examples": 100, "history": history}


def test_vit_ratio_is_to_infobatch_and_lm_ratio_to_the_best_peer():
    vit = {"recipe": "vit", "metric": "val_accuracy", "tolerance": 0.01,
           "runs": {"full": [accuracy_run(10.0)], "infobatch": [accuracy_run(5.0)],
                    "uniform_subset": [accuracy_run(4.0)], "paced_sweep": [accuracy_run(6.0)]}}
    # the target is 0.79, 29/30 of the way up every curve: the ratio is that of the curves' lengths
    assert attention_ratios({"cases": {"vit": vit}})["vit"] == (pytest.approx(6 / 5), 1, [])
    lm = {**vit, "recipe": "lm"}
    assert attention_ratios({"cases": {"lm": lm}})["lm"] == (pytest.approx(6 / 4), 1, [])


def test_a_missed_target_says_how_far_the_best_evaluation_stayed_from_it():
    def loss_run(seed: int, losses: list[float]) -> dict:
        return {"seed": seed, "examples": 100, "history": [
            {"seconds": 10.0 * k, "robust_seconds": 10.0 * k, "examples": 50 * k, "val_loss": v}
            for k, v in enumerate(losses)]}

    full = [loss_run(0, [5.0, 4.0, 3.9]), loss_run(1, [5.0, 4.1, 4.0])]  # targets 3.95 and 4.05
    ours = [loss_run(0, [5.0, 3.97, 3.98]), loss_run(1, [5.0, 4.02, 4.03])]  # seed 0: best 3.97, 0.02 short
    lm = {"recipe": "lm", "metric": "val_loss", "tolerance": 0.05,
          "runs": {"full": full, "infobatch": full, "paced_sweep": ours}}
    ratio, seeds, misses = attention_ratios({"cases": {"lm": lm}})["lm"]
    assert ratio == math.inf and seeds == 2 and misses == [pytest.approx(0.02)]
    text = goals_markdown({"attention-heldout": {"cases": {"lm": lm}}})
    assert ("| <= 0.85x | reached on 1 of 2 seeds; on the others its best stayed 0.020 short of the target "
            "| no |") in text


def test_the_section_says_which_targets_are_met():
    vit = {"recipe": "vit", "metric": "val_accuracy", "tolerance": 0.01,
           "runs": {"full": [accuracy_run(10.0)], "infobatch": [accuracy_run(5.0)],
                    "paced_sweep": [accuracy_run(4.0)]}}
    text = goals_markdown({"attention-heldout": {"cases": {"vit": vit}}})
    assert "| Attention held-out, ViT: time over InfoBatch's | <= 0.90x | 0.80x | yes |" in text
    assert goals_markdown({}) == ""
