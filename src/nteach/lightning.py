"""Teaching in a PyTorch Lightning run: one callback beside the plain-loop ``Teaching`` helper.

    teacher = Teacher("infobatch", len(train), total_steps=epochs, seed=0)                    # +
    teaching = Teaching(teacher, seed=0)                                                       # +
    loader = DataLoader(IndexedDataset(train), batch_size=64, sampler=teaching.sampler)       # ~ not shuffle
    trainer = L.Trainer(max_epochs=epochs, callbacks=[TeachingCallback(teaching)])              # ~

    # in the LightningModule, with the module holding ``teaching``:
    def training_step(self, batch, batch_idx):
        images, labels, index = batch                                                          # ~ the index
        losses = F.cross_entropy(self(images), labels, reduction="none")                       # ~ per example
        return self.teaching.loss(index, losses)                                               # ~

At each epoch's start the callback selects (before Lightning starts the epoch's DataLoader, so the
sampler yields the new selection); ``score(module, name)`` is asked for teachers that score the pool
(AtteNT-Complex's "loss"), run without grad in eval mode. The teacher's state travels in Lightning's
checkpoints (the callback's ``state_dict``): a run resumed from an epoch-end checkpoint, such as
``ModelCheckpoint`` writes by default, selects exactly as the straight run. Under DDP give the Trainer
``use_distributed_sampler=False`` and the loader ``batch_sampler=teaching.batches(64)``.
"""

from __future__ import annotations

from typing import Callable

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from nteach.attention.loop import Teaching
from nteach.teaching.teacher import ScoreFn

ModuleScore = Callable[[LightningModule, str], torch.Tensor]


class TeachingCallback(Callback):
    """Run ``teaching``'s selection at every training epoch's start; save and restore its teacher."""

    def __init__(self, teaching: Teaching, score: ModuleScore | None = None) -> None:
        self.teaching, self.score = teaching, score

    @property
    def state_key(self) -> str:
        return f"nteach.TeachingCallback[{self.teaching.teacher.strategy.name}]"

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.teaching.start_epoch(trainer.current_epoch, self._scores(pl_module))

    def _scores(self, module: LightningModule) -> ScoreFn | None:
        if self.score is None:
            return None

        @torch.no_grad()
        def score(name: str) -> torch.Tensor:
            was_training = module.training
            module.eval()
            try:
                return self.score(module, name)
            finally:
                module.train(was_training)

        return score

    def state_dict(self) -> dict:
        return {"teacher": self.teaching.teacher.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.teaching.teacher.load_state_dict(state_dict["teacher"])
