import gzip
import json
import sys

import numpy as np
import pytest
import torch

from helpers import StopAfter
from nteach.attention.data import IndexedDataset, load_idx_images, read_idx, split
from nteach.attention.recipes.vit import ViTConfig, image_sets, parse_options, run, split_indices
from nteach.attention.recipes.vit_training import Training, learning_rate, teacher_settings
from nteach.attention.vit import ViT
from nteach.cli import main
from nteach.errors import UserError

QUICK = ["--data", "digits", "--model", "micro", "--batch-size", "32", "--lr", "3e-3", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    (gzip.open if compress else open)(path, "wb").write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_folder(tmp_path):
    """A tiny MNIST-format set: 60 training and 20 test images of 8x8, two classes."""
    g = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    for stem, count, compress in (("train", 60, True), ("t10k", 20, False)):
        labels = np.arange(count) % 2
        images = g.integers(0, 100, (count, 8, 8)) + 150 * labels[:, None, None] * (np.arange(8) < 4)
        write_idx(folder / f"{stem}-images-idx3-ubyte{'.gz' if compress else ''}", images, compress)
        write_idx(folder / f"{stem}-labels-idx1-ubyte{'.gz' if compress else ''}", labels, compress)
    return folder


def test_idx_files_plain_and_gzip(idx_folder):
    assert read_idx(idx_folder / "t10k-labels-idx1-ubyte").tolist() == [0, 1] * 10
    data = load_idx_images(idx_folder)
    assert data.train.images.shape == (60, 1, 8, 8) and data.test.images.shape == (20, 1, 8, 8)
    assert data.num_classes == 2 and abs(float(data.train.images.mean())) < 1e-5
    (idx_folder / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09\x01")
    with pytest.raises(UserError, match="truncated"):
        load_idx_images(idx_folder)


def test_indexed_dataset_and_seeded_split():
    assert IndexedDataset([(10, 1), (20, 0)])[1] == (20, 0, 1)
    assert IndexedDataset([{"x": 5}])[0] == {"x": 5, "idx": 0}
    train, val = split(100, 10, torch.Generator().manual_seed(3))
    assert len(val) == 10 and sorted(train.tolist() + val.tolist()) == list(range(100))
    assert torch.equal(val, split(100, 10, torch.Generator().manual_seed(3))[1])


def test_vit_shapes():
    model = ViT(image_size=28, patch_size=7, num_classes=10, dim=32, depth=2, heads=2)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert model.pos_embed.shape == (1, 17, 32)  # 16 patches + [class]


def test_max_examples_is_a_seeded_subset_of_each_side_of_the_split():
    whole_train, whole_val = split_indices(ViTConfig(validation=0.2), 1000)
    train, val = split_indices(ViTConfig(validation=0.2, max_examples=200), 1000)
    assert len(train) == 200 and len(val) == 50  # validation: a quarter as many
    assert set(train.tolist()) <= set(whole_train.tolist()) and set(val.tolist()) <= set(whole_val.tolist())
    assert torch.equal(train, split_indices(ViTConfig(validation=0.2, max_examples=200), 1000)[0])
    assert len(split_indices(ViTConfig(max_examples=20), 1000)[1]) == 16  # at least 16


def test_learning_rate_warms_up_then_decays_to_zero():
    assert learning_rate(0.025, 1.0, "cosine", 0.05) == pytest.approx(0.5)
    assert learning_rate(0.05, 1.0, "cosine", 0.05) == pytest.approx(1.0)
    assert learning_rate(0.525, 1.0, "cosine", 0.05) == pytest.approx(0.5)
    assert learning_rate(0.525, 1.0, "linear", 0.05) == pytest.approx(0.5)
    assert learning_rate(1.0, 1.0, "cosine", 0.05) == pytest.approx(0.0)


def test_teacher_options_are_typed():
    assert parse_options("attent_complex", "selection=hard, cycles=3,r1=0.5") == {
        "selection": "hard", "cycles": 3, "r1": 0.5}
    with pytest.raises(UserError, match="teacher option cycles must be int, got 'many'"):
        parse_options("attent_complex", "cycles=many")


def test_a_short_run_on_digits_improves_validation_accuracy(tmp_path):
    config = ViTConfig(data="digits", model="micro", teacher="full", epochs=8, batch_size=32, lr=3e-3,
                       validation=0.2, out=str(tmp_path / "run"))
    summary, _ = run(config, show_progress=False)
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert history[0]["val_accuracy"] < 0.3 and summary["final_val_accuracy"] > 0.5
    assert summary["examples_trained"] == 8 * 1438 and summary["finished"]


@pytest.mark.parametrize("teacher", ["attent_simple", "attent_complex", "infobatch", "selective_backprop",
                                     "uniform_subset", "full"])
def test_every_attention_teacher_trains(tmp_path, teacher):
    summary, _ = run(ViTConfig(data="digits", model="micro", teacher=teacher, epochs=3, batch_size=64,
                               out=str(tmp_path / teacher)), show_progress=False)
    assert summary["finished"] and summary["epochs"] == 3
    full = 3 * 1617  # 3 epochs of the 1617 training digits
    assert summary["examples_trained"] == full if teacher == "full" else summary["examples_trained"] < full


def test_skip_first_eval_starts_the_history_after_the_first_epoch(tmp_path):
    config = ViTConfig(data="digits", model="micro", epochs=2, batch_size=64, skip_first_eval=True,
                       out=str(tmp_path / "run"))
    _, folder = run(config, show_progress=False)
    epochs = [json.loads(line)["epoch"] for line in (folder / "history.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_cli_writes_a_complete_run_folder(tmp_path, capsys, idx_folder):
    out = tmp_path / "run"
    assert main(["train", "vit", "--data", str(idx_folder), "--epochs", "2", "--out", str(out),
                 "--teacher", "attent_simple", "--quiet", "--model", "micro"]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"history.jsonl", "summary.json", "config.json", "checkpoint.pt",
                     "val_accuracy_vs_time.png"}  # and no temporary files left behind
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["teacher"] == "attent_simple" and "test_accuracy" in summary
    assert summary["examples_trained"] == 54 + round(0.7 * 54)  # one full epoch, then the top 70%
    assert "teacher" in torch.load(out / "checkpoint.pt", weights_only=True)
    assert "best_val_accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--data", "EMPTY"], "no train-images-idx3-ubyte or train-labels-idx1-ubyte[.gz] in"),
    (["--data", "nowhere"], "no such dataset folder: nowhere"),
    (["--data", "digits", "--batch-size", "0"], "batch size must be > 0, got 0"),
    (["--data", "digits", "--max-examples", "0"], "max examples must be > 0, got 0"),
    (["--data", "digits", "--teacher", "magic"], "unknown teacher 'magic'"),
    (["--data", "digits", "--teacher", "attent_complex", "--options", "cycles=x"],
     "teacher option cycles must be int, got 'x'"),
    (["--data", "digits", "--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTY").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(main(["train", "vit", *args, "--out", str(tmp_path / "run"), "--quiet"]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("nteach: error:")
    assert not (tmp_path / "run").exists()



@pytest.mark.parametrize("teacher,options", [("attent_complex", "cycles=2,k0=1,k_max=2"),
                                             ("infobatch", ""), ("selective_backprop", "")])
def test_resume_after_a_stop_equals_an_uninterrupted_run(tmp_path, teacher, options):
    def config(name):
        return ViTConfig(data="digits", model="micro", teacher=teacher, options=options, epochs=4,
                         batch_size=64, out=str(tmp_path / name))

    straight, _ = run(config("straight"), show_progress=False)
    cut, folder = run(config("cut"), show_progress=False, stop=StopAfter(40))
    assert not cut["finished"]
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["batch"] > 0  # stopped mid-epoch
    resumed, _ = run(config("cut"), resume_folder=folder, show_progress=False)
    assert resumed["finished"] and resumed["examples_trained"] == straight["examples_trained"]
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(folder / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    assert resumed["final_val_accuracy"] == straight["final_val_accuracy"]


def test_validation_passes_build_no_autograd_graph():
    config = ViTConfig(data="digits", model="micro", teacher="full", epochs=1, batch_size=32, validation=0.2)
    sets = image_sets(config)
    training = Training(config, sets.train, sets.validation, sets.num_classes)
    outputs, scorer = [], training.scorer
    training.scorer = lambda images: outputs.append(scorer(images)) or outputs[-1]
    training.accuracy(training.validation)
    assert outputs and not any(out.requires_grad for out in outputs)


def test_paced_sweep_on_the_vit_takes_the_recipes_weights_and_share_unless_the_user_gives_them():
    assert teacher_settings(ViTConfig(teacher="paced_sweep")) == ({"weighted": True}, 0.5)
    assert teacher_settings(ViTConfig(teacher="paced_sweep", ratio=0.7, options="weighted=false")) == (
        {"weighted": False}, 0.7)
    assert teacher_settings(ViTConfig(teacher="infobatch")) == ({}, None)
