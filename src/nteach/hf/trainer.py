"""``TeachingTrainer``: a ``Trainer`` with a ``TeachingCallback`` attached, for users who start from scratch.

    teacher = Teacher("selective_backprop", len(train), total_steps=3)             # +
    trainer = TeachingTrainer(model=model, args=args, train_dataset=train,          # ~ was Trainer
                              data_collator=collate, teacher=teacher)
    trainer.train()

Beyond the callback it does two things a callback cannot: Selective Backprop's no-grad forward that
picks which examples of a batch to backpropagate, and the exact random state of a run resumed
mid-round (the Trainer restores it at its own epochs, which are not the rounds). The latter uses the
Trainer's private ``_load_rng_state``: no public hook restores a checkpoint's RNG states.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from nteach.errors import UserError
from nteach.hf.callback import TeachingCallback
from nteach.hf.losses import ExampleLosses, default_example_losses
from nteach.teaching import Teacher


class _RestoreRng(TrainerCallback):
    """After a resume, the checkpoint's RNG states where the run that wrote it stood: before the round's
    DataLoader starts (it draws from the global generator) at a round's start, before the next step
    mid-round. Runs after the TeachingCallback, whose scoring pass also draws."""

    def __init__(self, trainer: TeachingTrainer) -> None:
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.trainer.teaching.steps == 0:
            self.trainer.restore_rng()

    def on_step_begin(self, args, state, control, **kwargs):
        self.trainer.restore_rng()


class TeachingTrainer(Trainer):
    """``Trainer`` whose every epoch trains on what ``teacher`` selects (``teacher.total_steps`` = epochs)."""

    runs_batch_filters = True  # compute_loss below runs Selective Backprop's filter

    def __init__(self, *args, teacher: Teacher, example_losses: ExampleLosses = default_example_losses,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher
        self.teaching = TeachingCallback(teacher, example_losses).attach(self)
        self.add_callback(_RestoreRng(self))
        self._rng_checkpoint: str | None = None

    def restore_rng(self) -> None:
        if self._rng_checkpoint is not None:
            self._load_rng_state(self._rng_checkpoint)
            self._rng_checkpoint = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        inputs.pop("idx", None)  # collators written for explicit indices: the callback knows them
        labels = inputs.pop("labels")
        if not model.training:  # evaluation: the mean example loss
            outputs = model(**inputs)
            losses, valid = self.teaching.example_losses(outputs.logits, labels)
            loss = (losses * valid).sum() / valid.sum().clamp_min(1)
            return (loss, outputs) if return_outputs else loss
        index = self.teaching.batch_indices(len(labels)).to(labels.device)
        if self.teacher.filters_batches:  # Selective Backprop: a no-grad forward picks what to backprop
            self.teaching.count("forwarded", inputs)
            with torch.no_grad():
                losses, valid = self.teaching.example_losses(model(**inputs).logits, labels)
            self.teaching.observe(index, losses, valid)
            keep = self.teaching.global_teacher.filter_batch(torch.where(valid, losses, 0.0))
            inputs = {name: value[keep] for name, value in inputs.items()}
            labels, index = labels[keep], index[keep]
            self.teaching.count("trained", inputs)
            outputs = model(**inputs)
            losses, valid = self.teaching.example_losses(outputs.logits, labels)
            loss = (losses * valid).sum() / valid.sum().clamp_min(1)
        else:
            self.teaching.count("trained", inputs)
            outputs = model(**inputs)
            loss = self.teaching.learn(index, outputs.logits, labels)
        return (loss, outputs) if return_outputs else loss

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        """``Trainer.train``; a checkpoint also restores the teacher and the position in the round."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise UserError(f"no checkpoint to resume in {self.args.output_dir}")
        if resume_from_checkpoint:
            self.teaching.resume_from = Path(resume_from_checkpoint)
            self._rng_checkpoint = os.fspath(resume_from_checkpoint)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
