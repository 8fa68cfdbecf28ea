import math

import pytest
import torch

from nteach.errors import UserError
from nteach.teaching import Teacher, make_strategy
from nteach.teaching.strategies.base import Context
from nteach.teaching.strategies.nint import NINT


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ctx(scores, budget, pool, event, g) -> Context:
    return Context(scores=scores, budget=budget, pool_size=pool, event=event, step=event, progress=0.0,
                   generator=g)


def test_uniform_draws_budget_distinct_indices_reproducibly():
    strategy = make_strategy("uniform")
    a = strategy.select(ctx({}, 30, 100, 0, generator(3))).indices
    b = strategy.select(ctx({}, 30, 100, 0, generator(3))).indices
    assert len(a) == 30 and len(set(a.tolist())) == 30
    assert torch.equal(a, b)
    assert not torch.equal(a, strategy.select(ctx({}, 30, 100, 0, generator(4))).indices)


def test_int_takes_the_largest_residuals():
    residual = torch.rand(200, generator=generator(1))
    chosen = make_strategy("int").select(ctx({"residual": residual}, 40, 200, 0, generator())).indices
    assert set(chosen.tolist()) == set(torch.argsort(residual, descending=True)[:40].tolist())


def test_full_selects_everything():
    assert make_strategy("full").select(ctx({}, 10, 10, 0, generator())).indices is None


@pytest.mark.parametrize("u,expected", [(0, 0.3), (1, 0.3 * math.exp(-0.1)), (10, 0.3 / math.e),
                                        (57, 0.3 * math.exp(-5.7)), (58, 0.0), (99, 0.0)])
def test_nint_ntk_share_paper_form(u, expected):
    assert NINT().ntk_share(u) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("u,expected", [(0, 0.3), (1, 0.3 / math.e), (10, 0.3 / math.e),
                                        (11, 0.3 * math.exp(-2)), (50, 0.3 * math.exp(-5)), (51, 0.0)])
def test_nint_ntk_share_code_faithful(u, expected):
    assert NINT(code_faithful=True).ntk_share(u) == pytest.approx(expected, abs=1e-15)


def test_nint_refresh_events():
    assert [u for u in range(100) if NINT().refreshes_ntk(u)] == [0, 10, 20, 30, 40, 50]
    assert [u for u in range(100) if NINT(code_faithful=True).refreshes_ntk(u)] == [0, 9, 19, 29, 39, 49]


@pytest.mark.parametrize("code_faithful", [False, True])
def test_nint_batches_over_100_events(code_faithful):
    """Sizes follow the formula, parts never overlap, each part is what it claims to be."""
    strategy, pool, budget = NINT(code_faithful=code_faithful), 500, 100
    g = generator(7)
    ntk = torch.rand(pool, generator=g)
    for u in range(100):
        residual = torch.rand(pool, generator=g)
        n_ntk, n_res, n_rand = strategy.part_sizes(budget, u)
        assert (n_ntk, n_rand) == (round(strategy.ntk_share(u) * budget), 70)
        assert n_res == 30 - n_ntk
        chosen = strategy.select(ctx({"ntk": ntk, "residual": residual}, budget, pool, u, g)).indices
        assert len(chosen) == budget and len(set(chosen.tolist())) == budget
        ntk_part, res_part = chosen[:n_ntk], chosen[n_ntk:n_ntk + n_res]
        assert set(ntk_part.tolist()) == set(torch.argsort(ntk, descending=True)[:n_ntk].tolist())
        rest = residual.clone()
        rest[ntk_part] = -1
        assert set(res_part.tolist()) == set(torch.argsort(rest, descending=True)[:n_res].tolist())


def test_nint_part_sizes_at_known_events():
    assert NINT().part_sizes(100, 0) == (30, 0, 70)
    assert NINT().part_sizes(100, 10) == (11, 19, 70)  # 0.3 / e = 0.110
    assert NINT().part_sizes(100, 60) == (0, 30, 70)
    assert NINT(code_faithful=True).part_sizes(100, 1) == (11, 19, 70)


def test_teacher_asks_for_the_ntk_only_at_refresh_events():
    asked = []

    def score(name):
        asked.append((teacher.events, name))
        return torch.rand(50, generator=generator(len(asked)))

    teacher = Teacher("nint", pool_size=50, ratio=0.2)
    for step in range(100):
        teacher.select(step, step / 100, score)
    assert [u for u, name in asked if name == "ntk"] == [0, 10, 20, 30, 40, 50]
    assert sum(name == "residual" for _, name in asked) == 100


@pytest.mark.parametrize("name", ["uniform", "int", "nint"])
def test_teacher_state_round_trip_resumes_the_same_selections(name):
    def score(name):
        return torch.rand(300, generator=scores_g)

    scores_g = generator(5)
    teacher = Teacher(name, pool_size=300, ratio=0.1, seed=11)
    for step in range(12):
        teacher.select(step, step / 40, score)
    state = teacher.state_dict()
    scores_state = scores_g.get_state()
    first = [teacher.select(step, step / 40, score).indices.clone() for step in range(12, 40)]

    scores_g.set_state(scores_state)
    resumed = Teacher(name, pool_size=300, ratio=0.1, seed=999)
    resumed.load_state_dict(state)
    second = [resumed.select(step, step / 40, score).indices for step in range(12, 40)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_budget_follows_the_ratio_schedule():
    teacher = Teacher("uniform", pool_size=1000, ratio=0.2, schedule="step")
    assert [teacher.budget(p) for p in (0.0, 0.1, 0.55, 1.0)] == [200, 280, 600, 1000]


def test_unknown_teacher_and_option():
    with pytest.raises(UserError, match="unknown teacher 'nitn'"):
        Teacher("nitn", 10)
    with pytest.raises(UserError, match="no option 'beta'"):
        make_strategy("nint", beta=2)
