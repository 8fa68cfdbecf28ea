import math

import pytest
import torch

from nteach.errors import UserError
from nteach.inr import Budget, Fit, Siren
from nteach.inr.signals import ImageSignal
from nteach.teaching import Teacher, make_strategy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rates_by_hand():
    strategy = make_strategy("paced_sweep", mix=0.5, temperature=0.5)
    assert strategy.rates(torch.tensor([1.0, 4.0, float("nan"), 16.0])).tolist() == [1.0] * 4  # not all seen
    # scores sqrt(c) = 1, 2, 3, 4 (sum 10); N p_i = 4 * 0.5 * s_i / 10 + 0.5
    assert strategy.rates(torch.tensor([1.0, 4.0, 9.0, 16.0])).tolist() == pytest.approx([0.7, 0.9, 1.1, 1.3])
    flat = make_strategy("paced_sweep", temperature=0.0).rates(torch.tensor([1.0, 4.0, 9.0, 16.0]))
    assert flat.tolist() == pytest.approx([1.0] * 4)  # temperature 0: a plain sweep whatever the cache


def test_first_round_is_a_permutation_then_losses_set_the_pace():
    teacher = Teacher("paced_sweep", 10, ratio=0.5, seed=0)
    first = torch.cat([teacher.select(step, 0.0, score=None).indices for step in range(2)])
    assert sorted(first.tolist()) == list(range(10))
    teacher.observe(torch.arange(10), torch.tensor([1.0] * 9 + [100.0]))
    visits = torch.zeros(10)
    for step in range(2, 202):
        visits.index_add_(0, teacher.select(step, 0.0, score=None).indices, torch.ones(5))
    rate = teacher.strategy.rates(teacher.state["cache"])  # 0.3 of the visits by sqrt(loss): 19 + 10
    assert rate[9].item() == pytest.approx(10 * 0.3 * 10 / 19 + 0.7)
    assert visits[9].item() / 100 == pytest.approx(rate[9].item(), abs=0.15)  # about 100 rounds of 10 entries
    assert visits[:9].mean().item() / 100 == pytest.approx(rate[0].item(), abs=0.05)


def test_a_warmup_trains_the_whole_pool_then_paces_from_every_cached_loss():
    teacher = Teacher("paced_sweep", 10, ratio=0.5, seed=0, warmup=1, temperature=1.0, mix=0.5)
    assert teacher.select(0, 0.0, score=None).indices is None  # the first epoch: every example
    teacher.observe(None, torch.tensor([1.0] * 9 + [10.0]))
    second = teacher.select(1, 0.0, score=None).indices
    # a round paced at once: rates 10 * 0.5 * c / 19 + 0.5 (0.76 and 3.13), each rounded up or down
    assert teacher.state["rate"][9].item() == pytest.approx(10 * 0.5 * 10 / 19 + 0.5)
    counts = torch.bincount(torch.cat([second, teacher.state["order"]]), minlength=10)
    assert len(second) == 5 and counts[9].item() in (3, 4) and counts[:9].max().item() <= 1
    with pytest.raises(UserError, match="warm-up"):
        make_strategy("paced_sweep", warmup=-1)


def test_spaced_copies_split_a_round_into_blocks():
    strategy = make_strategy("paced_sweep")
    order = strategy.new_round(torch.tensor([3.0, 3.0, 3.0]), torch.Generator().manual_seed(1))
    # copies at (k + phase_i) / 3: each third of the round holds one copy of each example
    assert [sorted(order[k:k + 3].tolist()) for k in (0, 3, 6)] == [[0, 1, 2]] * 3
    counts = torch.bincount(strategy.new_round(torch.tensor([2.0, 1.0, 4.0]), torch.Generator()), minlength=3)
    assert counts.tolist() == [2, 1, 4]  # whole rates are taken exactly


def test_importance_weights_by_hand():
    teacher = Teacher("paced_sweep", 4, ratio=0.5, seed=0, weighted=True, max_weight=1.2, mix=0.5,
                      temperature=1.0)
    teacher.select(0, 0.0, score=None)
    teacher.observe(None, torch.tensor([1.0, 3.0, 3.0, 1.0]))
    teacher.select(1, 0.0, score=None)  # the rest of the first round: weights from rates of one
    selection = teacher.select(2, 0.0, score=None)
    rate = torch.tensor([4 * 0.5 * c / 8.0 + 0.5 for c in (1.0, 3.0, 3.0, 1.0)])  # 0.75, 1.25, 1.25, 0.75
    raw = (1.0 / rate[selection.indices]).clamp_max(1.2)
    assert selection.weights.tolist() == pytest.approx((raw / raw.mean()).tolist())
    assert math.isclose(selection.weights.mean().item(), 1.0, rel_tol=1e-6)


def test_resume_mid_round_gives_the_same_selections():
    def run(teacher, steps):
        chosen = []
        for step in steps:
            indices = teacher.select(step, 0.0, score=None).indices
            teacher.observe(indices, (indices.float() + 1.0) / 50)
            chosen.append(indices.tolist())
        return chosen

    whole = Teacher("paced_sweep", 50, ratio=0.3, seed=4)
    expected = run(whole, range(12))
    first = Teacher("paced_sweep", 50, ratio=0.3, seed=4)
    head = run(first, range(7))
    second = Teacher("paced_sweep", 50, ratio=0.3, seed=4)
    second.load_state_dict(first.state_dict())
    assert head + run(second, range(7, 12)) == expected


def test_bad_options_and_a_short_fit():
    with pytest.raises(UserError, match="paced_sweep needs"):
        make_strategy("paced_sweep", mix=0.0)
    y, x = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    pixels = torch.stack([torch.sin(6 * x), torch.cos(5 * y), x * y], dim=-1) * 0.5 + 0.5
    signal = ImageSignal("waves", pixels.numpy())
    torch.manual_seed(0)
    fit = Fit(signal, Siren(2, 3, width=32, depth=2), Teacher("paced_sweep", len(signal), seed=0),
              Budget(steps=60), lr=1e-3, eval_every=60)
    fit.run(show_progress=False)
    assert fit.history[-1]["psnr"] > fit.history[0]["psnr"] + 5


def test_anchors_come_from_the_edge_mask_and_are_trained_twice_a_round():
    teacher = Teacher("paced_sweep", 10, ratio=0.5, seed=0, temperature=0.0, anchor_share=0.4)
    mask = torch.tensor([0, 0, 1, 0, 0, 0, 0, 1, 0, 0.0])
    asked = []

    def score(name):
        asked.append(name)
        return mask

    steps = []
    for step in range(8):
        indices = teacher.select(step, 0.0, score=score).indices
        steps.append(indices.tolist())
        teacher.observe(indices, torch.ones(len(indices)))
    assert asked == ["expansive_edges:0.2"]  # 0.4 of a 5-example budget over 10 examples, asked once
    assert all(len(s) == 5 and s[:2] == [2, 7] and not {2, 7} & set(s[2:]) for s in steps)
    others = [i for s in steps for i in s[2:]]  # 3 a step: rounds of the 8 others, each once a round
    assert sorted(others[:8]) == sorted(others[8:16]) == [0, 1, 3, 4, 5, 6, 8, 9]
    with pytest.raises(UserError, match="no anchors with importance weights"):
        make_strategy("paced_sweep", anchor_share=0.5, weighted=True)


def test_rounds_match_a_plain_torch_construction():
    """A round as the docstring defines it, built with torch ops: the same draws give the same order."""
    def reference(rate, generator):
        counts = (rate + torch.rand(len(rate), generator=generator)).floor().long()
        owner = torch.repeat_interleave(torch.arange(len(rate)), counts)
        copy = torch.arange(len(owner)) - (torch.cumsum(counts, 0) - counts)[owner]
        position = (copy + torch.rand(len(rate), generator=generator)[owner]) / counts[owner]
        return owner[position.argsort(stable=True)]

    strategy = make_strategy("paced_sweep")
    rate = torch.rand(3000, generator=torch.Generator().manual_seed(5)) * 3
    built = strategy.new_round(rate, torch.Generator().manual_seed(7))
    assert torch.equal(built, reference(rate, torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("options", [{}, {"jitter": 0.5}, {"spaced": False}])
def test_a_round_built_with_torch_ops_for_an_accelerator_is_the_numpy_round(options):
    """The accelerator's build, run here on the CPU: the same draws give the same order."""
    strategy = make_strategy("paced_sweep", **options)
    rate = torch.rand(3000, generator=torch.Generator().manual_seed(5)) * 3
    in_numpy = strategy.new_round(rate, torch.Generator().manual_seed(7))
    in_torch = strategy._round_in_torch(rate, torch.Generator().manual_seed(7))
    assert len(in_numpy) > 3000 and torch.equal(in_torch, in_numpy)


def test_a_round_of_several_passes_keeps_each_example_a_pass_apart():
    teacher = Teacher("paced_sweep", 12, ratio=0.25, seed=3, passes=4)
    first = torch.cat([teacher.select(step, 0.0, score=None).indices for step in range(16)])  # 4 x 12
    for example in range(12):  # nothing cached yet: 4 copies each, exactly one pass (12 entries) apart
        where = (first == example).nonzero().squeeze(1)
        assert torch.diff(where).tolist() == [12, 12, 12]
    assert len(teacher.state["order"]) == 0  # the round ended with the 16th step


def test_passes_multiply_the_visits_of_a_round_and_not_the_weights():
    strategy = make_strategy("paced_sweep", passes=3)
    rate = torch.tensor([0.7, 1.0, 1.3, 2.5])
    counts = torch.bincount(strategy.new_round(rate * strategy.passes, torch.Generator().manual_seed(2)),
                            minlength=4)
    assert all(math.floor(3 * r) <= c <= math.ceil(3 * r) for r, c in zip(rate.tolist(), counts.tolist()))
    teacher = Teacher("paced_sweep", 4, ratio=0.5, seed=0, weighted=True, passes=3, mix=0.5,
                      temperature=1.0, max_weight=5.0)
    for step in range(6):  # the first round: 3 passes of 4 at 2 a step
        teacher.select(step, 0.0, score=None)
    teacher.observe(None, torch.tensor([1.0, 3.0, 3.0, 1.0]))
    selection = teacher.select(6, 0.0, score=None)
    rate = torch.tensor([0.75, 1.25, 1.25, 0.75])  # per pass, as with one pass a round
    raw = 1.0 / rate[selection.indices]
    assert selection.weights.tolist() == pytest.approx((raw / raw.mean()).tolist())
    with pytest.raises(UserError, match="whole number of passes"):
        make_strategy("paced_sweep", passes=0)


def test_inr_fits_take_four_jittered_passes_and_anchors_on_shapes_unless_told_otherwise():
    from nteach.inr.experiment import PACED_JITTER, PACED_PASSES, SignalModelConfig, teacher_options

    photo, shape = SignalModelConfig(image="astronaut"), SignalModelConfig(image="bunny", signal="sdf")
    assert (PACED_PASSES, PACED_JITTER) == (4, 0.5)
    assert teacher_options(photo, "paced_sweep", {}) == {"passes": 4, "jitter": 0.5}
    shape_options = teacher_options(shape, "paced_sweep", {"passes": 1})
    assert shape_options == {"passes": 1, "jitter": 0.5, "anchor_share": 0.7}
    assert teacher_options(photo, "sweep", {"mix": 0.5}) == {"mix": 0.5}


def test_jitter_reshuffles_the_passes_of_a_round_and_keeps_each_copy_in_its_stretch():
    rate = torch.full((50,), 4.0)  # a first round of 4 passes: 4 copies of each, one a pass
    for jitter in (0.0, 0.5, 1.0):
        order = make_strategy("paced_sweep", jitter=jitter).new_round(rate, torch.Generator().manual_seed(4))
        passes = order.view(4, 50)
        assert all(sorted(p.tolist()) == list(range(50)) for p in passes)  # each pass holds every example
        repeated = all(torch.equal(passes[0], p) for p in passes[1:])
        assert repeated == (jitter == 0.0)  # one phase per example: the same order every pass
    uneven = torch.tensor([1.0, 2.0, 3.0, 5.0] * 10)
    order = make_strategy("paced_sweep", jitter=0.5).new_round(uneven, torch.Generator().manual_seed(0))
    position = torch.arange(len(order), dtype=torch.float64) / len(order)
    for example, count in enumerate(uneven.long().tolist()):
        # copy k lands in the k-th 1/count of the round, give or take the other examples' stretches
        where = position[order == example]
        assert all(abs(w - (k + 0.5) / count) < 0.5 / count + 0.05 for k, w in enumerate(where.tolist()))
    with pytest.raises(UserError, match="jitter"):
        make_strategy("paced_sweep", jitter=1.5)
