"""Teaching under torch.distributed: two gloo ranks on the CPU select and score as one process does
(whole fits under torchrun: test_distributed_fit.py).

The two-rank checks run this file as a torchrun script (the bottom of the file): each rank
writes what it saw to OUT/rank{r}.pt and the tests compare that with one process.
"""

import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

from helpers import ENV, TORCHRUN
from nteach.errors import UserError
from nteach.inr import Budget, Fit
from nteach.inr.models import make_model
from nteach.inr.signals import grid
from nteach.launch import Ranks, agree_on_progress, exit_code_of_launched, on_main, process_group_from_env
from nteach.teaching import Teacher, ntk_score
from nteach.teaching.distributed import DistributedTeacher, gather_rows
from nteach.teaching.strategies import Selection

POOL = 101  # odd: the two shards differ in size
CASES = {  # teacher: (Teacher options, steps)
    "uniform": ({"ratio": 0.2}, 5),
    "int": ({"ratio": 0.2}, 12),  # its own step schedule and incremental interval
    "nint": ({"ratio": 0.3, "alpha": 2}, 8),  # NTK refreshed every other event
    "attent_complex": ({"total_steps": 8, "cycles": 3, "k0": 1, "k_max": 2}, 8),
    "infobatch": ({"total_steps": 6}, 6),
    "paced_sweep": ({"ratio": 0.2}, 12),  # rounds of ~5 steps: a plain shuffle, then paced by the losses
}
DATASET_TEACHERS = ("attent_complex", "infobatch")  # they learn per example index from per-rank batches


def synthetic(name: str, step: int) -> torch.Tensor:
    """A made-up per-example score of the whole pool, different for every name and step."""
    return torch.rand(POOL, generator=torch.Generator().manual_seed(zlib.crc32(name.encode()) + step))


def make_teacher(name: str) -> Teacher:
    options, _ = CASES[name]
    return Teacher(name, POOL, seed=3, **options)


def one_process(name: str) -> tuple[list[Selection], dict]:
    """The plain Teacher on the whole pool: the selections every rank must make."""
    teacher, steps = make_teacher(name), CASES[name][1]
    selections = []
    for step in range(steps):
        selection = teacher.select(step, step / steps, lambda score: synthetic(score, step))
        observed = synthetic("observed", step)
        indices = selection.indices
        teacher.observe(indices, observed if indices is None else observed[indices], step=step)
        selections.append(selection)
    return selections, teacher.state_dict()


def drive(name: str, ranks: Ranks) -> dict:
    """The same run through DistributedTeacher: this rank scores its shard and reports its share's losses."""
    teaching, steps = DistributedTeacher(make_teacher(name), ranks), CASES[name][1]
    records = []
    for step in range(steps):
        selection = teaching.select(step, step / steps, lambda score: synthetic(score, step)[teaching.shard])
        share = teaching.share(selection)
        observed = synthetic("observed", step)
        losses = observed if share.indices is None else observed[share.indices]
        if name in DATASET_TEACHERS:
            teaching.observe(share.indices, losses, step=step)
        else:
            teaching.observe_share(share, losses, step=step)
        records.append({"indices": selection.indices, "weights": selection.weights,
                        "share": share.indices, "share_weights": share.weights})
    return {"records": records, "state": teaching.state_dict(), "event_bytes": teaching.event_bytes}


def small_siren() -> torch.nn.Module:
    torch.manual_seed(0)
    return make_model("siren", 2, 1, width=16, depth=2)


def ntk_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    coords = grid((13, 11))  # 143 points: unequal shards
    return coords, torch.sin(3 * coords[:, :1]) * coords[:, 1:]


def rank_main(out: Path) -> None:
    """One rank of ``torchrun tests/test_distributed.py OUT``: every two-rank check, written to OUT."""
    torch.set_num_threads(1)
    with process_group_from_env(torch.device("cpu")) as (ranks, _):
        results = {name: drive(name, ranks) for name in CASES}
        coords, targets = ntk_inputs()
        rows = DistributedTeacher(Teacher("uniform", len(coords)), ranks).shard
        local = ntk_score(small_siren(), coords[rows], targets[rows], chunk=32, process_group=ranks.group)
        results["ntk"] = gather_rows(local, ranks, ranks.shard_sizes(len(coords)))
        results["agreed"] = agree_on_progress(10.0 + ranks.rank, ranks.rank == 1, ranks)

        def fails() -> None:
            raise UserError("only rank 0 looked")

        try:
            on_main(fails, ranks)
        except UserError as error:
            results["error"] = str(error)
        results["world"] = ranks.size
        torch.save(results, out / f"rank{ranks.rank}.pt")


def same(got: torch.Tensor | None, expected: torch.Tensor | None) -> bool:
    return got is None and expected is None or (got is not None and expected is not None
                                                and torch.equal(got, expected))


def assert_same_state(got, expected) -> None:
    if isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for key in expected:
            assert_same_state(got[key], expected[key])
    elif isinstance(expected, torch.Tensor):
        assert torch.equal(got, expected)
    else:
        assert got == expected


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    """What each of two torchrun ranks saw (one launch for every test that reads it)."""
    out = tmp_path_factory.mktemp("ranks")
    done = subprocess.run(TORCHRUN + [__file__, str(out)], capture_output=True, text=True, env=ENV,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(2)]


@pytest.mark.parametrize("name", list(CASES))
def test_two_ranks_select_what_one_process_selects(two_ranks, name):
    selections, state = one_process(name)
    for rank in two_ranks:
        assert rank["world"] == 2
        got = rank[name]
        for record, selection in zip(got["records"], selections, strict=True):
            assert same(record["indices"], selection.indices) and same(record["weights"], selection.weights)
        assert_same_state(got["state"], state)  # what the teacher learnt, generator included


@pytest.mark.parametrize("name", list(CASES))
def test_each_selected_example_is_trained_once_per_event(two_ranks, name):
    for step, (first, second) in enumerate(zip(two_ranks[0][name]["records"], two_ranks[1][name]["records"])):
        selected = torch.arange(POOL) if first["indices"] is None else first["indices"]
        shares = torch.cat([first["share"], second["share"]])
        assert len(shares) == len(selected) and torch.equal(shares.sort().values, selected.sort().values)
        if first["weights"] is not None:
            by_index = dict(zip(selected.tolist(), first["weights"].tolist()))
            for rank in (first, second):
                assert rank["share_weights"].tolist() == [by_index[i] for i in rank["share"].tolist()]


def test_score_traffic_is_the_padded_pool(two_ranks):
    one_score = 2 * 51 * 4  # two ranks x the longer shard of 101 x float32
    assert two_ranks[0]["uniform"]["event_bytes"] == [0] * 5  # uniform asks for no score
    nint = two_ranks[0]["nint"]["event_bytes"]
    assert nint[0] == 2 * one_score and nint[1] == one_score  # residual + NTK, then residual alone


def test_distributed_ntk_score_equals_one_process(two_ranks):
    coords, targets = ntk_inputs()
    expected = ntk_score(small_siren(), coords, targets)
    for rank in two_ranks:
        assert torch.linalg.norm(rank["ntk"] - expected) / torch.linalg.norm(expected) < 1e-5


def test_ranks_agree_on_rank_0s_clock_and_any_stop_and_errors(two_ranks):
    for rank in two_ranks:
        assert rank["agreed"] == (10.0, True)
        assert rank["error"] == "only rank 0 looked"


def test_one_rank_is_the_plain_teacher():
    for name in CASES:
        selections, state = one_process(name)
        got = drive(name, Ranks())
        assert_same_state(got["state"], state)
        for record, selection in zip(got["records"], selections, strict=True):
            assert record["share"] is record["indices"] and record["share_weights"] is record["weights"]
            assert same(record["indices"], selection.indices) and same(record["weights"], selection.weights)


def test_shares_split_the_selection_and_its_mean_loss():
    teacher = Teacher("uniform", 10)
    selection = Selection(indices=torch.tensor([7, 2, 9, 4, 0]), weights=torch.tensor([1., 2., 3., 4., 5.]))
    errors = torch.rand(10)
    shares = [DistributedTeacher(teacher, Ranks(rank, 2)).share(selection) for rank in range(2)]
    assert shares[0].indices.tolist() == [7, 9, 0] and shares[1].indices.tolist() == [2, 4]
    # DDP averages the ranks' gradients: the ranks' losses average to the one-process weighted mean
    one_process_loss = (errors[selection.indices] * selection.weights).mean()
    mean_of_ranks = sum(share.loss(errors[share.indices]) for share in shares) / 2
    assert torch.allclose(mean_of_ranks, one_process_loss)
    whole = [DistributedTeacher(teacher, Ranks(rank, 3)).share(Selection(indices=None)) for rank in range(3)]
    assert [share.indices.tolist() for share in whole] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert [DistributedTeacher(teacher, Ranks(rank, 3)).shard for rank in range(3)] == [
        slice(0, 4), slice(4, 7), slice(7, 10)]
    with pytest.raises(ValueError, match="do not cut"):
        DistributedTeacher(teacher, Ranks(0, 2), shard_sizes=[3, 3])


def test_a_teacher_with_whole_signal_loss_terms_is_refused_under_ddp(tiny_signal):
    evos, model = Teacher("evos", len(tiny_signal)), make_model("siren", 2, 3, width=8, depth=1)
    with pytest.raises(UserError, match="evos adds a loss term over the whole signal"):
        Fit(tiny_signal, model, evos, Budget(steps=5), ranks=Ranks(0, 2))


if __name__ == "__main__":
    rank_main(Path(sys.argv[1]))
    exit_code_of_launched(0)  # gloo may abort in the interpreter's shutdown, after the files are written
