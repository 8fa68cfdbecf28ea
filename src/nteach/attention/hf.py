"""Teaching inside Hugging Face ``Trainer.train()``: one sampler, one ``compute_loss``, one callback.

    teacher = Teacher("attent_simple", len(train), total_steps=3)                  # +
    trainer = TeachingTrainer(model=model, args=args, train_dataset=train,          # ~ was Trainer
                              data_collator=collate, teacher=teacher)
    trainer.train()

One Trainer epoch is one teaching round. At its start the teacher selects
(scoring the pool without grad when it asks for the "loss" score); the
sampler then yields the selection, permuted by seed + round and cycled up
to a multiple of batch x world x accumulation, in the GLOBAL order (the
same on every rank: accelerate shards it, it never shards itself). The
training forward's per-example losses go back to the teacher and carry the
selection's weights. Rounds may be shorter than the pool (AtteNT-Simple,
InfoBatch): the learning rate follows the run's progress in rounds, so the
schedule reaches its end exactly at the last step taken, and resuming uses
the round position saved beside each checkpoint, not the Trainer's
steps-per-epoch arithmetic (so ``args.ignore_data_skip`` is set to True).
``args.remove_unused_columns`` is set to False: the dataset index travels as
``idx`` (added here; the collator must turn it into a tensor).

Under torchrun or ``accelerate launch`` each rank scores its shard of the
pool and the scores are gathered; every rank's teacher observes every
rank's losses and filters every rank's batch (Selective Backprop), so the
teachers stay identical and select the same examples without a broadcast
(nteach.teaching.distributed).
"""

from __future__ import annotations

import math
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from torch.utils.data import DataLoader, Sampler, Subset
from transformers import Trainer, TrainerCallback, get_scheduler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from nteach.attention.data import IndexedDataset
from nteach.attention.loop import new_work
from nteach.attention.losses import causal_lm_losses, classification_losses
from nteach.errors import UserError
from nteach.teaching import Selection, Teacher
from nteach.teaching.distributed import DistributedTeacher, Ranks
from nteach.timing import TrainClock

TEACHING_STATE = "teaching.pt"  # written into every checkpoint-*/ folder
ExampleLosses = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def causal_lm_example_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(losses, valid): mean next-token cross-entropy per sequence over its labelled tokens."""
    return causal_lm_losses(logits, labels)


def padded_causal_lm_example_losses(logits: torch.Tensor, labels: torch.Tensor
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """As above, divided by the padded length (what AtteNT's released code does)."""
    return causal_lm_losses(logits, labels, padded_length_mean=True)


def classification_example_losses(logits: torch.Tensor, labels: torch.Tensor
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(losses, valid): cross-entropy per example; every example is valid."""
    return classification_losses(logits, labels), torch.ones_like(labels, dtype=torch.bool)


class RoundSampler(Sampler[int]):
    """This round's global order: the selection permuted by ``seed + round``, cycled up to ``count``,
    without its first ``skip`` (already trained, on resume). ``len`` is the largest round: constant."""

    def __init__(self, pool_size: int, capacity: int, seed: int) -> None:
        self.pool_size, self.capacity, self.seed = pool_size, capacity, seed
        self.round, self.count, self.skip = 0, capacity, 0
        self.indices: torch.Tensor | None = None  # None: the whole pool

    def set_round(self, round: int, indices: torch.Tensor | None, count: int, skip: int = 0) -> None:
        self.round, self.count, self.skip = round, count, skip
        self.indices = None if indices is None else indices.cpu()

    def __len__(self) -> int:
        return self.capacity

    def __iter__(self):
        pool = torch.arange(self.pool_size) if self.indices is None else self.indices
        generator = torch.Generator().manual_seed(self.seed + self.round)
        cycles = -(-self.count // len(pool))
        order = torch.cat([pool[torch.randperm(len(pool), generator=generator)] for _ in range(cycles)])
        return iter(order[self.skip:self.count].tolist())


class RoundScheduler(LRScheduler):
    """A Hugging Face schedule (warm-up, decay) read at the run's progress in rounds, not at its step
    count: round r of ``length`` steps sweeps [r, r + 1) / rounds of it, however short the round."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: LambdaLR, rounds: int,
                 full_steps: int) -> None:
        self.lambdas = schedule.lr_lambdas
        self.rounds, self.full_steps = rounds, full_steps
        self.round, self.start, self.length = 0, 0, full_steps
        super().__init__(optimizer)

    def begin_round(self, round: int, length: int, done: int = 0) -> None:
        """Round ``round`` of ``length`` optimizer steps starts (``done`` of them already taken)."""
        self.round, self.length, self.start = round, max(1, length), self.last_epoch - done

    def progress(self) -> float:
        return min(1.0, (self.round + (self.last_epoch - self.start) / self.length) / self.rounds)

    def get_lr(self) -> list[float]:
        step = self.progress() * self.rounds * self.full_steps
        return [base * schedule(step) for base, schedule in zip(self.base_lrs, self.lambdas)]

    def state_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "lambdas")}


class _Rounds(TrainerCallback):
    """Hands the Trainer's epoch and save events to the TeachingTrainer, which runs the rounds."""

    def __init__(self, trainer: TeachingTrainer) -> None:
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.trainer.begin_round()

    def on_step_begin(self, args, state, control, **kwargs):
        self.trainer.restore_rng()

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer.steps += 1
        self.trainer.work["steps"] += 1

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.trainer.end_round():
            control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            torch.save(self.trainer.teaching_state(), folder / TEACHING_STATE)


class TeachingTrainer(Trainer):
    """``Trainer`` whose every epoch trains on what ``teacher`` selects (``teacher.total_steps`` = epochs)."""

    loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean: divide by accumulation

    def __init__(self, *args, teacher: Teacher, example_losses: ExampleLosses = causal_lm_example_losses,
                 **kwargs) -> None:
        callbacks = [_Rounds(self), *(kwargs.pop("callbacks", None) or [])]  # first: the clock stops first
        super().__init__(*args, callbacks=callbacks, **kwargs)
        if self.lr_scheduler is not None:
            raise UserError("TeachingTrainer makes its own learning-rate schedule: pass no scheduler")
        rounds = self.args.num_train_epochs
        if teacher.total_steps is None or teacher.total_steps != rounds or self.args.max_steps > 0:
            raise UserError(f"teaching runs whole epochs: give num_train_epochs (not max_steps) and a "
                            f"Teacher with total_steps = that, got {teacher.total_steps} and {rounds}")
        if self.train_dataset is None or len(self.train_dataset) != teacher.pool_size:
            raise UserError(f"the teacher's pool has {teacher.pool_size} examples, the training set "
                            f"{None if self.train_dataset is None else len(self.train_dataset)}")
        self.args.remove_unused_columns = False  # keep "idx"
        self.args.ignore_data_skip = True  # the sampler itself resumes mid-round
        self.train_dataset = IndexedDataset(self.train_dataset)
        self.teacher, self.example_losses, self.rounds = teacher, example_losses, int(rounds)
        self.global_teacher = DistributedTeacher(teacher, Ranks.current())  # accelerate has joined the group
        if self.global_teacher.ranks.size != self.args.world_size:
            raise UserError(f"torch.distributed has {self.global_teacher.ranks.size} ranks, the Trainer "
                            f"{self.args.world_size}: on CPUs give TrainingArguments use_cpu=True")
        self.round = self.steps = self.examples = 0  # round, optimizer steps into it, examples trained
        self.length = 1  # this round's optimizer steps
        self.round_examples, self.loss_sum = 0, 0.0  # examples trained this round and their summed losses
        self.work = new_work()  # this process's, for clock-robust time (nteach.bench.attention_probe)
        self.clock = TrainClock(self.args.device)
        self.weights: torch.Tensor | None = None  # per dataset index; None: all ones
        self.round_sampler: RoundSampler | None = None
        self._timing = ExitStack()
        self._rng_checkpoint: str | None = None  # the checkpoint a resume restores the RNG states of

    @property
    def unit(self) -> int:
        """Examples per optimizer step over all ranks: round sizes are multiples of it."""
        return self.args.train_batch_size * self.args.world_size * self.args.gradient_accumulation_steps

    def _get_train_sampler(self, train_dataset=None) -> RoundSampler:
        # Sharded once, by accelerate: the Trainer's prepared DataLoader deals the sampler's batches
        # out over the ranks (rank r takes batches r, r + world, ...), so the sampler yields the global
        # order, the same on every rank. A per-rank sampler would be sharded twice (half the steps,
        # half the selection never seen). Rounds are multiples of batch x world x accumulation, so
        # accelerate neither pads (repeating examples) nor drops any.
        capacity = math.ceil(self.teacher.pool_size / self.unit) * self.unit
        seed = self.args.data_seed or self.args.seed
        self.round_sampler = RoundSampler(self.teacher.pool_size, capacity, seed)
        return self.round_sampler

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_scheduler is None:
            optimizer = optimizer or self.optimizer
            full_steps = self.round_sampler.capacity // self.unit
            schedule = get_scheduler(self.args.lr_scheduler_type, optimizer=optimizer,
                                     num_warmup_steps=self.args.get_warmup_steps(self.rounds * full_steps),
                                     num_training_steps=self.rounds * full_steps,
                                     scheduler_specific_kwargs=self.args.lr_scheduler_kwargs)
            if not isinstance(schedule, LambdaLR):
                raise UserError(f"lr_scheduler_type {self.args.lr_scheduler_type!r} is not a function of the "
                                "step; choose linear, cosine, constant, ... ")
            self.lr_scheduler = RoundScheduler(optimizer, schedule, self.rounds, full_steps)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def score(self, name: str) -> torch.Tensor:
        """A per-example score of this rank's shard of the pool (all of it in one process), for teachers
        that ask: "loss" (no grad)."""
        if name != "loss":
            raise UserError(f"the Hugging Face integration cannot compute the score {name!r}")
        return self.pool_losses(self.global_teacher.shard)

    @torch.no_grad()
    def pool_losses(self, rows: slice | None = None) -> torch.Tensor:
        """The loss of every training example (of ``rows``) in dataset order (eval mode); -inf where no
        token is labelled."""
        model, was_training = self.model, self.model.training
        model.eval()
        losses = []
        data = Subset(self.train_dataset, range(len(self.train_dataset))[rows or slice(None)])
        for batch in DataLoader(data, self.args.eval_batch_size, collate_fn=self.data_collator):
            batch = {name: value.to(self.args.device) for name, value in batch.items() if name != "idx"}
            self.count("forwarded", batch)
            labels = batch.pop("labels")
            loss, valid = self.example_losses(model(**batch).logits, labels)
            losses.append(torch.where(valid, loss.float(), float("-inf")).cpu())
        model.train(was_training)
        return torch.cat(losses)

    def select(self) -> Selection:
        """This round's selection: global, the same on every rank."""
        return self.global_teacher.select(self.round, self.round / self.rounds, self.score)

    def begin_round(self) -> None:
        """Select this round's examples and point the sampler and the schedule at them (on the clock)."""
        self._timing.enter_context(self.clock.running())
        if self.round >= self.rounds:  # resumed from the end: an empty epoch stops the Trainer
            self.round_sampler.set_round(self.round, None, 0)
            return
        selection = self.select()
        size = selection.size(self.teacher.pool_size)
        self.length = math.ceil(size / self.unit)
        self.weights = None
        if selection.weights is not None:
            self.weights = torch.ones(self.teacher.pool_size, device=self.args.device)
            self.weights[selection.indices] = selection.weights.to(self.args.device)
        if self.steps == 0:
            self.round_examples, self.loss_sum = 0, 0.0
        count, skip = self.length * self.unit, self.steps * self.unit
        self.round_sampler.set_round(self.round, selection.indices, count, skip)
        self.lr_scheduler.begin_round(self.round, self.length, done=self.steps)
        if self.steps == 0:  # resumed at a round's start: before the DataLoader starts, as then
            self.restore_rng()

    def restore_rng(self) -> None:
        """After a resume, the checkpoint's RNG states (dropout's, each rank's own), where the run that
        wrote it stood: before the round's DataLoader starts (starting draws from the global generator)
        at a round's start, just before the next step mid-round. The Trainer's own restore follows its
        epochs, which are not the rounds, and is off mid-epoch with ignore_data_skip."""
        if self._rng_checkpoint is not None:
            self._load_rng_state(self._rng_checkpoint)
            self._rng_checkpoint = None

    def end_round(self) -> bool:
        """Stop the clock; if the round is complete, move on. True when the last round is done."""
        self._timing.close()
        if self.steps >= self.length:
            self.round, self.steps = self.round + 1, 0
        return self.round >= self.rounds

    def progress(self) -> float:
        """Rounds done, in [0, rounds]: the round plus the share of its steps taken."""
        return min(self.round + self.steps / self.length, self.rounds)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        index, labels = inputs.pop("idx", None), inputs.pop("labels")
        if index is None or not model.training:  # evaluation: the mean example loss
            outputs = model(**inputs)
            losses, valid = self.example_losses(outputs.logits, labels)
            loss = (losses * valid).sum() / valid.sum().clamp_min(1)
            return (loss, outputs) if return_outputs else loss
        if self.teacher.filters_batches:  # Selective Backprop: a no-grad forward picks what to backprop
            self.count("forwarded", inputs)
            with torch.no_grad():
                losses, valid = self.example_losses(model(**inputs).logits, labels)
            self.observe(index, losses, valid)
            keep = self.global_teacher.filter_batch(torch.where(valid, losses, 0.0))
            inputs = {name: value[keep] for name, value in inputs.items()}
            labels, index = labels[keep], index[keep]
        self.count("trained", inputs)
        outputs = model(**inputs)
        losses, valid = self.example_losses(outputs.logits, labels)
        if not self.teacher.filters_batches:
            self.observe(index, losses, valid)
        weights = valid.to(losses.dtype)
        if self.weights is not None:
            weights = weights * self.weights[index].to(losses.dtype)
        loss = (weights * losses).sum() / valid.sum().clamp_min(1)
        return (loss, outputs) if return_outputs else loss

    def count(self, kind: str, inputs: dict) -> None:
        """Count a forward of ``inputs`` ("trained": with backward, "forwarded": without grad): examples,
        and token positions (padding included: they cost compute too) when the inputs are token ids."""
        ids = inputs.get("input_ids")
        self.work[kind] += len(next(iter(inputs.values()))) if ids is None else len(ids)
        self.work[f"{kind}_tokens"] += 0 if ids is None else ids.numel()

    def observe(self, index: torch.Tensor, losses: torch.Tensor, valid: torch.Tensor) -> None:
        """Report the batch's per-example losses (every rank's) to the teacher; skip unlabelled ones."""
        index, losses, valid = index.detach(), losses.detach().float(), valid.detach()
        observed = self.global_teacher.observe(index[valid], losses[valid], step=self.round)
        self.examples += len(observed)
        self.round_examples += len(observed)
        self.loss_sum += float(observed.sum())

    def teaching_state(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "round": self.round, "steps": self.steps,
                "examples": self.examples, "round_examples": self.round_examples, "loss_sum": self.loss_sum,
                "seconds": self.clock.seconds, "unit": self.unit, "work": dict(self.work)}

    def load_teaching_state(self, state: dict) -> None:
        unit = state.get("unit", self.unit)
        if state["steps"] and unit != self.unit:  # the position in the round is counted in steps of ``unit``
            raise UserError(f"this checkpoint stopped mid-round at {unit} examples per step (batch x ranks "
                            f"x accumulation); this run takes {self.unit}: resume it with the same")
        self.teacher.load_state_dict(state["teacher"])
        self.round, self.steps, self.examples = state["round"], state["steps"], state["examples"]
        self.round_examples, self.loss_sum = state["round_examples"], state["loss_sum"]
        self.clock.seconds = state["seconds"]
        self.work = dict(state.get("work", new_work()))

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        """``Trainer.train``; a checkpoint also restores the teacher and the position in the round."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise UserError(f"no checkpoint to resume in {self.args.output_dir}")
        if resume_from_checkpoint:
            path = Path(resume_from_checkpoint) / TEACHING_STATE
            if not path.is_file():
                raise UserError(f"{os.fspath(resume_from_checkpoint)} holds no {TEACHING_STATE}")
            self.load_teaching_state(torch.load(path, map_location="cpu", weights_only=True))
            self._rng_checkpoint = os.fspath(resume_from_checkpoint)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
