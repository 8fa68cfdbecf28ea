import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from nteach.attention.data import IndexedDataset
from nteach.attention.loop import Teaching, TeachingSampler
from nteach.errors import UserError
from nteach.teaching import STRATEGIES, Teacher
from nteach.teaching.strategies.attent_complex import AtteNTComplex, gumbel_top_k
from nteach.teaching.strategies.selective_backprop import keep_probabilities, percentile_ranks

pytestmark = pytest.mark.usefixtures("one_thread")


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_attention_teachers_are_registered():
    assert {"attent_simple", "attent_complex", "infobatch", "selective_backprop", "uniform_subset",
            "full"} <= set(STRATEGIES)


def test_attent_simple_keeps_the_top_ratio_by_recorded_loss_after_the_first_epoch():
    pool, epochs = 20, 4
    loss_of = torch.rand(pool, generator=generator(1))
    teaching = Teaching(Teacher("attent_simple", pool, total_steps=epochs, seed=0), seed=3)
    dataset = IndexedDataset(TensorDataset(torch.arange(pool)))
    loader = DataLoader(dataset, batch_size=6, sampler=teaching.sampler)
    seen = []
    for epoch in range(epochs):
        teaching.start_epoch(epoch)  # no score function: AtteNT-Simple never asks for a scoring pass
        seen.append([])
        for (values, index) in loader:
            assert torch.equal(values, index)  # every item carries its dataset index
            seen[-1] += index.tolist()
            teaching.loss(index, loss_of[index] * (0.5 ** epoch))  # losses change later: the subset does not
    top = torch.argsort(loss_of, descending=True)[:14].tolist()  # round(0.7 * 20)
    assert sorted(seen[0]) == list(range(pool))
    assert all(sorted(epoch) == sorted(top) for epoch in seen[1:])
    assert seen[1] != seen[2]  # a fresh order every epoch


def test_attent_complex_ratio_and_interval_per_cycle_follow_the_formulas():
    s = AtteNTComplex(cycles=10, k0=5, k_max=10)
    assert [s.ratio(c, 10) for c in range(10)] == pytest.approx([0.2 + 0.6 * c / 9 for c in range(10)])
    cosine = AtteNTComplex(ratio_schedule="cosine")
    assert [cosine.ratio(c, 10) for c in range(10)] == pytest.approx(
        [0.2 + 0.6 * 0.5 * (1 - math.cos(math.pi * c / 9)) for c in range(10)])
    assert [s.subset_epochs(c, 121) for c in range(10)] == [5, 5, 6, 6, 7, 7, 8, 8, 9, 10]
    fixed = AtteNTComplex(cycles=10, k0=5, k_max=10, interval_schedule="fixed")
    assert [fixed.subset_epochs(c, 121) for c in range(10)] == [5] * 10
    # 1 warm-up epoch + 10 cycles of 12 epochs: k_c subset epochs at r_c, then full ones
    expected = [1.0] + [r for c in range(10) for r in [s.ratio(c, 10)] * s.subset_epochs(c, 121)
                        + [1.0] * (12 - s.subset_epochs(c, 121))]
    assert s.plan(121) == pytest.approx(expected)
    assert s.plan(10) == pytest.approx([1.0] + [0.2 + 0.6 * c / 8 for c in range(9)])  # short: 9 cycles of 1
    assert s.plan(1) == [1.0]
    lengths = [3 if c % 2 else 2 for c in range(10)]  # 25 epochs in 10 cycles
    assert [s.phase(e, 26)[0] for e in range(1, 26)] == [c for c in range(10) for _ in range(lengths[c])]


@pytest.mark.parametrize("selection,scorings", [("hard", 10), ("soft", 71), ("random", 0)])
def test_attent_complex_through_the_teacher(selection, scorings):
    pool, asked = 1000, []

    def score(name):
        asked.append(name)
        return torch.rand(pool, generator=scores_g)

    scores_g = generator(2)
    teacher = Teacher("attent_complex", pool, total_steps=121, seed=5, selection=selection, cycles=10, k0=5,
                      k_max=10)
    plan = teacher.strategy.plan(121)
    for epoch in range(121):
        chosen = teacher.select(epoch, epoch / 121, score).indices
        if plan[epoch] == 1.0:
            assert chosen is None
        else:
            assert len(chosen) == round(plan[epoch] * pool) and len(set(chosen.tolist())) == len(chosen)
            if selection == "hard":
                top = torch.topk(teacher.scores["loss"], len(chosen)).indices
                assert set(chosen.tolist()) == set(top.tolist())
    assert asked == ["loss"] * scorings  # hard: once per cycle; soft: before every subset epoch


def test_attent_complex_needs_the_run_length():
    with pytest.raises(UserError, match="total_steps"):
        Teacher("attent_complex", 10).select(0, 0.0, lambda name: torch.zeros(10))
    with pytest.raises(UserError, match="total_steps"):
        Teaching(Teacher("attent_simple", 10))


def test_soft_selection_draws_without_replacement_reproducibly():
    scores = torch.rand(500, generator=generator(0)) * 3
    a = gumbel_top_k(scores, 100, 1.0, generator(7))
    assert len(a) == 100 and len(set(a.tolist())) == 100
    assert torch.equal(a, gumbel_top_k(scores, 100, 1.0, generator(7)))
    assert set(a.tolist()) != set(gumbel_top_k(scores, 100, 1.0, generator(8)).tolist())
    cold = gumbel_top_k(scores, 100, 1e-6, generator(7))  # T -> 0: the hard top-k
    assert set(cold.tolist()) == set(torch.topk(scores, 100).indices.tolist())
    firsts = torch.stack([gumbel_top_k(torch.tensor([0.0, 1.0, 2.0]), 1, 1.0, g)
                          for g in [generator(seed) for seed in range(3000)]]).flatten()
    frequency = torch.bincount(firsts, minlength=3).double() / 3000  # one draw follows softmax(loss / T)
    softmax = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    assert frequency.tolist() == pytest.approx(softmax.tolist(), abs=0.03)


def test_soft_selection_through_the_teacher_is_reproducible_under_its_seed():
    loss = torch.rand(300, generator=generator(9))

    def picks(seed):
        teacher = Teacher("attent_complex", 300, total_steps=6, seed=seed, cycles=5)  # subsets only
        return [teacher.select(e, e / 6, lambda name: loss).indices for e in range(1, 6)]

    assert all(torch.equal(a, b) for a, b in zip(picks(1), picks(1)))
    assert not all(torch.equal(a, b) for a, b in zip(picks(1), picks(2)))


def test_uniform_subset_follows_the_same_plan_without_scoring():
    teacher = Teacher("uniform_subset", 200, total_steps=10, seed=1)
    sizes = [teacher.select(e, e / 10, None).size(200) for e in range(10)]
    assert sizes == [round(r * 200) for r in AtteNTComplex().plan(10)]
    assert sizes == [200, 40, 200, 200, 200, 160, 200, 200, 200, 200]  # scaled: cycles of 4 and 5 epochs


def test_attent_complex_scales_the_papers_cycles_to_the_run():
    s = AtteNTComplex()
    assert (s.cycle_count(801), s.intervals(801)) == (10, (5, 10))  # the paper's own 800 epochs
    assert [s.subset_epochs(c, 801) for c in range(10)] == [5, 5, 6, 6, 7, 7, 8, 8, 9, 10]
    assert (s.cycle_count(41), s.intervals(41)) == (10, (1, 1))  # 40 epochs: cycles of 4, one subset epoch
    assert (s.cycle_count(40), s.intervals(40)) == (9, (1, 1))  # 39 after the warm-up: 9 cycles of 4.3
    assert (s.cycle_count(161), s.intervals(161)) == (10, (1, 2))  # cycles of 16: k from 1 to 2
    assert (s.cycle_count(3), s.intervals(3)) == (1, (1, 1))
    plan = s.plan(41)
    assert plan == pytest.approx([1.0] + [v for c in range(10) for v in [0.2 + 0.6 * c / 9, 1.0, 1.0, 1.0]])
    assert AtteNTComplex(cycles=3).cycle_count(41) == 3 and AtteNTComplex(k0=2).intervals(41) == (2, 2)


def infobatch_teacher(losses: torch.Tensor, epochs: int = 8, **options) -> Teacher:
    teacher = Teacher("infobatch", len(losses), total_steps=epochs, seed=0, **options)
    teacher.observe(torch.arange(len(losses)), losses)
    return teacher


def test_infobatch_prunes_half_the_below_mean_examples_and_rescales_the_rest():
    teacher = infobatch_teacher(torch.arange(1.0, 9.0))  # mean 4.5: examples 0-3 are candidates
    selection = teacher.select(0, 0.0, None)
    kept = dict(zip(selection.indices.tolist(), selection.weights.tolist()))
    assert len(kept) == 6 and {4, 5, 6, 7} <= set(kept)
    assert [kept[i] for i in (4, 5, 6, 7)] == [1.0] * 4
    assert sorted(w for i, w in kept.items() if i < 4) == [2.0, 2.0]  # 1 / (1 - 0.5)
    quarter = infobatch_teacher(torch.arange(1.0, 17.0), prune=0.25).select(0, 0.0, None)
    assert len(quarter.indices) == 14 and sorted(set(quarter.weights.tolist())) == pytest.approx([1.0, 4 / 3])


def test_infobatch_loss_weights_in_the_loop():
    teaching = Teaching(infobatch_teacher(torch.arange(1.0, 9.0)))
    selection = teaching.start_epoch(0)
    index = selection.indices[:3]
    losses = torch.tensor([1.0, 2.0, 3.0])
    expected = (losses * selection.weights[:3]).sum() / 3
    assert teaching.loss(index, losses).item() == pytest.approx(expected.item())


def test_infobatch_equal_scores_and_the_last_epochs_prune_nothing():
    assert Teacher("infobatch", 5, total_steps=8).select(0, 0.0, None).indices is None  # nothing seen yet
    tied = torch.full((7,), 0.1)
    assert bool((tied < tied.mean()).all())  # the pitfall: a float mean of ties can exceed them all
    assert infobatch_teacher(tied).select(0, 0.0, None).indices is None
    teacher = infobatch_teacher(torch.arange(1.0, 9.0))
    assert teacher.select(6, 6 / 8, None).indices is not None
    assert teacher.select(7, 7 / 8, None).indices is None  # delta = 0.875: the last eighth is full


def test_selective_backprop_keep_probabilities_by_hand():
    losses = torch.tensor([0.1, 0.4, 0.2, 0.3])
    assert percentile_ranks(losses, losses).tolist() == [0.25, 1.0, 0.5, 0.75]
    assert keep_probabilities(losses, losses, 0.5).tolist() == [0.25, 1.0, 0.5, 0.75]  # beta = 1
    assert keep_probabilities(losses, losses, 1 / 3).tolist() == pytest.approx([0.0625, 1.0, 0.25, 0.5625])
    assert keep_probabilities(losses, losses, 1.0).tolist() == [1.0] * 4
    assert percentile_ranks(torch.tensor([0.0, 5.0]), losses).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("keep,expected", [(0.5, 9 / 16), (1 / 3, 9 * 17 / (6 * 64))])
def test_selective_backprop_keeps_the_expected_fraction(keep, expected):
    """Batches of 8 ranked among themselves: E[kept] = mean over i of (i / 8) ** beta."""
    teacher = Teacher("selective_backprop", 100, seed=0, keep=keep, window=8)
    g = generator(4)
    masks = [teacher.filter_batch(torch.rand(8, generator=g)) for _ in range(3000)]
    assert all(m.dtype == torch.bool and m.any() for m in masks)
    assert torch.stack(masks).double().mean().item() == pytest.approx(expected, abs=0.01)


def test_keep_is_a_no_op_for_epoch_teachers():
    teaching = Teaching(Teacher("full", 10, total_steps=2))
    assert teaching.keep(lambda: pytest.fail("no forward for an epoch teacher")) == slice(None)
    filtering = Teaching(Teacher("selective_backprop", 10, total_steps=2))
    assert filtering.keep(lambda: torch.tensor([0.1, 0.9])).tolist()[1] is True


def test_sampler_order_is_seeded_by_epoch_and_skips_to_resume():
    sampler = TeachingSampler(10, seed=4)
    sampler.set_indices(torch.tensor([1, 3, 5, 7, 9]))
    sampler.set_epoch(2)
    order = list(sampler)
    assert sorted(order) == [1, 3, 5, 7, 9] and len(sampler) == 5
    assert list(sampler) == order
    sampler.set_epoch(2, skip=3)
    assert list(sampler) == order[3:] and len(sampler) == 2
    sampler.set_epoch(3)
    assert list(sampler) != order
