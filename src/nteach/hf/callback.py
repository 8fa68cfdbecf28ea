"""Teaching for any Hugging Face ``Trainer`` (or subclass, such as TRL's ``SFTTrainer``): one callback.

    trainer = SFTTrainer(model=model, args=args, train_dataset=train)               # yours, unchanged
    teacher = Teacher("attent_simple", len(trainer.train_dataset), total_steps=3)    # +
    TeachingCallback(teacher).attach(trainer)                                        # +
    trainer.train()

One Trainer epoch is one teaching round. At its start the teacher selects (scoring the pool without
grad when it asks for the "loss" score) and the training set, read by a sequential sampler, becomes
the round's order: the selection permuted by seed + round, cycled up to whole optimizer steps over
every rank. The epoch stops after the round's steps, and the learning-rate schedule reads the run's
progress in rounds, so it ends exactly at the last step taken. The per-example losses of each
training batch reach the teacher through the Trainer's ``compute_loss_func`` hook; which examples a
batch holds follows from the order (rank r takes batches r, r + world, ... as accelerate deals them).

``attach`` gives the Trainer a copy of its ``TrainingArguments`` with the sequential sampler and
``ignore_data_skip`` (resuming mid-round is the callback's job), and says so; the user's object is
never changed. Everything else goes through public names: the Trainer's ``train_dataset``,
``compute_loss_func``, ``loss_is_scaled_for_ga`` and callback list, and the ``lr_lambdas`` of the
``LambdaLR`` it builds (each wrapped to read the progress in rounds). Teachers that filter each
batch (Selective Backprop) need a forward before the training one, which a callback cannot add: use
``TeachingTrainer``.
"""

from __future__ import annotations

import copy
import logging
import math
from contextlib import ExitStack
from pathlib import Path

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Subset
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from nteach.attention.loop import new_work
from nteach.errors import UserError
from nteach.hf.compiled import warm_up
from nteach.hf.losses import ExampleLosses, default_example_losses
from nteach.hf.rounds import RoundView, progress_schedule, round_order
from nteach.launch import Ranks
from nteach.run_state import RunState, WithRunState
from nteach.runs import load_checkpoint, save_checkpoint
from nteach.teaching import Teacher
from nteach.teaching.distributed import DistributedTeacher

TEACHING_STATE = "teaching.pt"  # written into every checkpoint-*/ folder
REQUIRED_ARGUMENTS = {"train_sampling_strategy": "sequential", "ignore_data_skip": True}
log = logging.getLogger(__name__)


class TeachingCallback(TrainerCallback, WithRunState):
    """Teach ``teacher`` (``total_steps`` = the Trainer's epochs) inside a Trainer; see ``attach``."""

    def __init__(self, teacher: Teacher, example_losses: ExampleLosses = default_example_losses,
                 resume_from: str | Path | None = None) -> None:
        if teacher.total_steps is None:
            raise UserError("give the Teacher total_steps = the Trainer's num_train_epochs")
        self.teacher, self.example_losses = teacher, example_losses
        self.resume_from = resume_from  # a checkpoint outside output_dir to take the teaching state from
        self.rounds = int(teacher.total_steps)
        self.round = self.steps = self.batches = 0  # round; optimizer steps and micro-batches into it
        self.length = 1  # this round's optimizer steps
        self.examples, self.round_examples, self.loss_sum = 0, 0, 0.0
        self.weights: torch.Tensor | None = None  # per dataset index; None: all ones
        self.trainer = self.view = self.global_teacher = self.run_state = self.collate = None
        self.compile_seconds = 0.0  # the Trainer's torch_compile, warmed up off the clock (hf.compiled)
        self._timing = ExitStack()

    def attach(self, trainer) -> TeachingCallback:
        """Make ``trainer`` teach: its training set seen through the rounds, its loss per example."""
        args = trainer.args
        if self.teacher.filters_batches and not getattr(trainer, "runs_batch_filters", False):
            raise UserError(f"{self.teacher.strategy.name} filters each batch: use nteach.hf.TeachingTrainer")
        if args.max_steps > 0 or args.num_train_epochs != self.rounds:
            raise UserError(f"teaching runs whole epochs: give num_train_epochs = the Teacher's total_steps "
                            f"({self.rounds}) and no max_steps")
        if trainer.train_dataset is None or len(trainer.train_dataset) != self.teacher.pool_size:
            raise UserError(f"the teacher's pool has {self.teacher.pool_size} examples, the training set "
                            f"{None if trainer.train_dataset is None else len(trainer.train_dataset)}")
        if args.dataloader_persistent_workers or args.auto_find_batch_size:
            raise UserError("teaching needs dataloader_persistent_workers=False and "
                            "auto_find_batch_size=False")
        changed = {name: value for name, value in REQUIRED_ARGUMENTS.items() if getattr(args, name) != value}
        if changed:
            trainer.args = copy.copy(args)
            for name, value in changed.items():
                setattr(trainer.args, name, value)
            log.warning("nteach: the Trainer runs with %s (your TrainingArguments are unchanged)",
                        ", ".join(f"{name}={value!r}" for name, value in changed.items()))
        self.trainer = trainer
        self.run_state = RunState(args.device, new_work(), Ranks.current())  # accelerate joined the group
        self.global_teacher = DistributedTeacher(self.teacher, self.run_state.ranks)
        if self.global_teacher.ranks.size != args.world_size:
            raise UserError(f"torch.distributed has {self.global_teacher.ranks.size} ranks, the Trainer "
                            f"{args.world_size}: on CPUs give TrainingArguments use_cpu=True")
        capacity = math.ceil(self.teacher.pool_size / self.unit) * self.unit
        self.view = RoundView(trainer.train_dataset, capacity)
        trainer.train_dataset = self.view
        trainer.compute_loss_func = self.loss
        trainer.loss_is_scaled_for_ga = False  # the loss is a per-micro-batch mean: divide by accumulation
        # first: the other callbacks see the round's selection, and the clock stops before they run
        trainer.callback_handler.callbacks.insert(0, self)
        return self


    @property
    def unit(self) -> int:
        """Examples per optimizer step over all ranks: round sizes are multiples of it."""
        args = self.trainer.args
        return args.train_batch_size * args.world_size * args.gradient_accumulation_steps

    # -- the Trainer's events ------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, lr_scheduler=None, train_dataloader=None, **kwargs):
        if state.global_step > 0 and self.round == self.steps == 0:
            saved = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            self.load(self.resume_from or saved)
        if not isinstance(lr_scheduler, LambdaLR):
            raise UserError(f"teaching needs a learning-rate schedule that is a function of the step "
                            f"(linear, cosine, constant, ...), got {type(lr_scheduler).__name__}")
        full_steps = self.view.capacity // self.unit
        lr_scheduler.lr_lambdas = [progress_schedule(schedule, self.progress, full_steps)
                                   for schedule in lr_scheduler.lr_lambdas]
        self.collate = train_dataloader.collate_fn  # the Trainer's own, its column removal included
        if args.torch_compile and self.compile_seconds == 0:
            compiled_scorer = self.trainer.model_wrapped if self.run_state.ranks.size == 1 else None
            self.compile_seconds = warm_up(self.trainer.model_wrapped, compiled_scorer,  # see ``scorer``
                                           self.view.dataset, self.collate, args.train_batch_size,
                                           args.eval_batch_size, args.device, self.teacher.filters_batches)

    def on_epoch_begin(self, args, state, control, model=None, **kwargs):
        self._timing.enter_context(self.clock.running())
        self.batches = 0
        if self.round >= self.rounds:  # resumed from the end: an empty epoch stops the Trainer
            self.view.set_order(torch.zeros(0, dtype=torch.long))
            self.view.capacity = 0
            return
        selection = self.global_teacher.select(self.round, self.round / self.rounds, lambda name: self.score(
            name, self.scorer(model)))
        size = selection.size(self.teacher.pool_size)
        self.length = math.ceil(size / self.unit)
        self.weights = None
        if selection.weights is not None:
            self.weights = torch.ones(self.teacher.pool_size, device=args.device)
            self.weights[selection.indices] = selection.weights.to(args.device)
        if self.steps == 0:
            self.round_examples, self.loss_sum = 0, 0.0
        pool = torch.arange(self.teacher.pool_size) if selection.indices is None else selection.indices.cpu()
        seed = args.data_seed if args.data_seed is not None else args.seed
        order = round_order(pool, self.length * self.unit, seed + self.round)
        self.view.set_order(order[self.steps * self.unit:])

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.steps += 1  # before the scheduler steps: it reads progress()
        self.work["steps"] += 1

    def on_step_end(self, args, state, control, **kwargs):
        if self.steps >= self.length:
            control.should_epoch_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        self._timing.close()
        if self.steps >= self.length:
            self.round, self.steps = self.round + 1, 0
        if self.round >= self.rounds:
            control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            save_checkpoint(folder / TEACHING_STATE, self.state_dict())

    # -- selection, losses, progress ---------------------------------------------------------------------

    def progress(self) -> float:
        """Rounds done, in [0, rounds]: the round plus the share of its steps taken."""
        return min(self.round + self.steps / self.length, self.rounds)

    def scorer(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model scoring passes run: the Trainer's compiled one in one process, else ``model``."""
        compiled = self.trainer.args.torch_compile and self.run_state.ranks.size == 1
        return self.trainer.model_wrapped if compiled else model

    def score(self, name: str, model: torch.nn.Module) -> torch.Tensor:
        """A per-example score of this rank's shard of the pool, for teachers that ask: "loss" (no grad)."""
        if name != "loss":
            raise UserError(f"the Hugging Face integration cannot compute the score {name!r}")
        return self.pool_losses(model, self.global_teacher.shard)

    @torch.no_grad()
    def pool_losses(self, model: torch.nn.Module, rows: slice | None = None) -> torch.Tensor:
        """The loss of every training example (of ``rows``) in dataset order (eval mode); -inf where no
        token is labelled."""
        was_training, device = model.training, self.trainer.args.device
        model.eval()
        pool = self.view.dataset
        losses = []
        loader = DataLoader(Subset(pool, range(len(pool))[rows or slice(None)]),
                            self.trainer.args.eval_batch_size, collate_fn=self.collate)
        for batch in loader:
            batch = {name: value.to(device) for name, value in batch.items() if name != "idx"}
            self.count("forwarded", batch)
            labels = batch.pop("labels")
            loss, valid = self.example_losses(model(**batch).logits, labels)
            losses.append(torch.where(valid, loss.float(), float("-inf")).cpu())
        model.train(was_training)
        return torch.cat(losses)

    def batch_indices(self, count: int) -> torch.Tensor:
        """The dataset indices of the next training micro-batch of ``count`` examples on this rank."""
        ranks, size = self.global_teacher.ranks, self.trainer.args.train_batch_size
        start = (self.batches * ranks.size + ranks.rank) * size
        self.batches += 1
        return self.view.order[start:start + count]

    def loss(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        """The Trainer's ``compute_loss_func``: in training, report the per-example losses to the teacher
        and return their (weighted) mean; in evaluation (no grad), the mean example loss."""
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        if not torch.is_grad_enabled():
            losses, valid = self.example_losses(logits, labels)
            return (losses * valid).sum() / valid.sum().clamp_min(1)
        self.work["trained"] += len(labels)
        return self.learn(self.batch_indices(len(labels)).to(labels.device), logits, labels)

    def learn(self, index: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Report a training batch's per-example losses to the teacher; their weighted mean to backprop."""
        losses, valid = self.example_losses(logits, labels)
        self.observe(index, losses, valid)
        weights = valid.to(losses.dtype)
        if self.weights is not None:
            weights = weights * self.weights[index].to(losses.dtype)
        return (weights * losses).sum() / valid.sum().clamp_min(1)

    def observe(self, index: torch.Tensor, losses: torch.Tensor, valid: torch.Tensor) -> None:
        """Report per-example losses (every rank's) to the teacher; skip unlabelled ones."""
        index, losses, valid = index.detach(), losses.detach().float(), valid.detach()
        observed = self.global_teacher.observe(index[valid], losses[valid], step=self.round)
        self.examples += len(observed)
        self.round_examples += len(observed)
        self.loss_sum += float(observed.sum())

    def count(self, kind: str, inputs: dict) -> None:
        """Count a forward of ``inputs`` ("trained": with backward, "forwarded": without grad): examples,
        and token positions (padding included: they cost compute too) when the inputs are token ids."""
        ids = inputs.get("input_ids")
        self.work[kind] += len(next(iter(inputs.values()))) if ids is None else len(ids)
        self.work[f"{kind}_tokens"] += 0 if ids is None else ids.numel()

    # -- checkpoints ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "round": self.round, "steps": self.steps,
                "examples": self.examples, "round_examples": self.round_examples, "loss_sum": self.loss_sum,
                "unit": self.unit, **self.run_state.state_dict()}  # seconds and work (the Trainer owns RNG)

    def load_state_dict(self, state: dict) -> None:
        if state["steps"] and state["unit"] != self.unit:  # the round position is counted in steps of unit
            raise UserError(f"this checkpoint stopped mid-round at {state['unit']} examples per step "
                            f"(batch x ranks x accumulation); this run takes {self.unit}: resume it with "
                            "the same")
        self.teacher.load_state_dict(state["teacher"])
        self.round, self.steps, self.examples = state["round"], state["steps"], state["examples"]
        self.round_examples, self.loss_sum = state["round_examples"], state["loss_sum"]
        self.run_state.load_state_dict(state)

    def load(self, checkpoint: str | Path) -> None:
        """The teaching state saved beside a Trainer checkpoint."""
        path = Path(checkpoint) / TEACHING_STATE
        if not path.is_file():
            raise UserError(f"{checkpoint} holds no {TEACHING_STATE}: resume from a checkpoint of a teaching "
                            "run (or give TeachingCallback resume_from=)")
        self.load_state_dict(load_checkpoint(path))
