"""The Lightning callback: real Lightning fits on the CPU, selections, feedback, and checkpoint resume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

L = pytest.importorskip("lightning")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from nteach.attention.data import IndexedDataset  # noqa: E402
from nteach.attention.loop import Teaching  # noqa: E402
from nteach.lightning import TeachingCallback  # noqa: E402
from nteach.teaching import Teacher  # noqa: E402

POOL, EPOCHS = 96, 4
pytestmark = pytest.mark.usefixtures("one_thread")


class Classifier(L.LightningModule):
    def __init__(self, teaching: Teaching) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.net = torch.nn.Linear(8, 3)
        self.teaching = teaching
        self.seen: list[list[int]] = []

    def on_train_epoch_start(self) -> None:
        self.seen.append([])

    def training_step(self, batch, batch_idx):
        x, y, index = batch
        self.seen[-1].extend(index.tolist())
        return self.teaching.loss(index, F.cross_entropy(self.net(x), y, reduction="none"))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)

    def losses(self, name: str) -> torch.Tensor:  # the score AtteNT-Complex asks for
        x, y = DATA.tensors
        return F.cross_entropy(self.net(x), y, reduction="none")


generator = torch.Generator().manual_seed(0)
DATA = TensorDataset(torch.randn(POOL, 8, generator=generator),
                     torch.randint(0, 3, (POOL,), generator=generator))


def fit(folder, teacher_name: str, epochs: int = EPOCHS, resume: str | None = None, **options):
    teaching = Teaching(Teacher(teacher_name, POOL, total_steps=EPOCHS, seed=0, **options), seed=0)
    module = Classifier(teaching)
    loader = DataLoader(IndexedDataset(DATA), batch_size=16, sampler=teaching.sampler)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(folder),
                        callbacks=[TeachingCallback(teaching, score=Classifier.losses),
                                   ModelCheckpoint(dirpath=str(folder), save_last=True)])
    trainer.fit(module, loader, ckpt_path=resume)
    return module, teaching


def test_lightning_trains_the_selection_and_the_teacher_learns_from_its_losses(tmp_path):
    module, teaching = fit(tmp_path, "attent_complex", cycles=1, k0=1, k_max=1, r0=0.5, r1=0.5,
                           selection="hard")
    assert sorted(module.seen[0]) == list(range(POOL))  # the warm-up epoch: everything once
    subset = sorted(module.seen[1])
    scores = teaching.teacher.scores["loss"]
    assert len(subset) == POOL // 2 and len(set(subset)) == POOL // 2
    assert set(subset) == set(torch.topk(scores, POOL // 2).indices.tolist())  # the hardest, scored in eval
    assert [sorted(seen) for seen in module.seen[2:]] == [list(range(POOL))] * 2  # the rest of the cycle: all
    assert scores.shape == (POOL,) and torch.isfinite(scores).all()


def test_lightning_resumed_from_an_epoch_checkpoint_equals_the_straight_run(tmp_path):
    straight, _ = fit(tmp_path / "a", "infobatch")
    fit(tmp_path / "b", "infobatch", epochs=2)
    resumed, teaching = fit(tmp_path / "b", "infobatch", resume=str(tmp_path / "b" / "last.ckpt"))
    assert resumed.seen == straight.seen[2:]
    assert len(straight.seen[1]) < POOL  # InfoBatch pruned: the teacher learnt from the first epoch's losses
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
