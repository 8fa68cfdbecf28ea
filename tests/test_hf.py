"""The Hugging Face integration: real Trainer runs on a tiny GPT-2, with and without LoRA."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback, TrainingArguments  # noqa: E402

from nteach.hf import TeachingTrainer, causal_lm_example_losses  # noqa: E402
from nteach.teaching import Selection, Strategy, Teacher  # noqa: E402

POOL, LENGTH, VOCAB = 48, 8, 64


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1, n_head=2, bos_token_id=0,
                        eos_token_id=1, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def pool(masked: tuple[int, ...] = ()) -> list[dict]:
    """Example i starts with token i (so a forward tells which examples it saw); ``masked`` have no labels."""
    generator = torch.Generator().manual_seed(1)
    rows = []
    for i in range(POOL):
        ids = torch.cat([torch.tensor([i]), torch.randint(0, VOCAB, (LENGTH - 1,), generator=generator)])
        labels = torch.full_like(ids, -100) if i in masked else ids.clone()
        labels[:2] = -100  # a prompt: no loss on it
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def collate(items: list[dict]) -> dict:
    batch = {name: torch.stack([item[name] for item in items]) for name in ("input_ids", "labels")}
    if "idx" in items[0]:
        batch["idx"] = torch.tensor([item["idx"] for item in items])
    return batch


class Recorder(TrainerCallback):
    """Which examples each round's training forwards saw, read from the model's input."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.rounds: list[list[int]] = []
        model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        if module.training and torch.is_grad_enabled():  # training forwards, not TRL's no-grad extras
            self.rounds[-1].extend(kwargs["input_ids"][:, 0].tolist())

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.rounds.append([])


def make_trainer(model, teacher: Teacher, tmp_path, callbacks=(), data=None, **options) -> TeachingTrainer:
    settings = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, learning_rate=1e-2,
                    num_train_epochs=teacher.total_steps, lr_scheduler_type="linear", save_strategy="no",
                    logging_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, seed=0)
    args = TrainingArguments(**{**settings, **options})
    return TeachingTrainer(model=model, args=args, train_dataset=data or pool(), data_collator=collate,
                           teacher=teacher, callbacks=list(callbacks))


def test_per_example_loss_is_the_models_own_loss_for_a_batch_of_one():
    model, rows = tiny_gpt2().eval(), pool()
    for row in rows[:3]:
        ids, labels = row["input_ids"][None], row["labels"][None]
        out = model(input_ids=ids, labels=labels)
        losses, valid = causal_lm_example_losses(out.logits, labels)
        assert bool(valid.all())
        torch.testing.assert_close(losses[0], out.loss, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing")  # peft's own deprecation warning
@pytest.mark.parametrize("lora", [False, True])
def test_trainer_trains_only_on_the_selected_examples(tmp_path, lora):
    base = tiny_gpt2()
    before = {name: p.detach().clone() for name, p in base.named_parameters()}
    model = base
    if lora:
        config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True,
                                 task_type="CAUSAL_LM", lora_dropout=0.0)
        model = peft.get_peft_model(base, config)
    recorder = Recorder(base)
    teacher = Teacher("attent_simple", POOL, total_steps=3, seed=0)
    snapshot = {}

    class Snapshot(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            snapshot.setdefault("losses", teacher.state["losses"].clone())

    trainer = make_trainer(model, teacher, tmp_path, callbacks=[recorder, Snapshot()])
    trainer.train()
    subset = teacher.state["subset"]
    assert len(subset) == round(0.7 * POOL) == 34
    assert sorted(recorder.rounds[0]) == list(range(POOL))  # warm-up: every example once
    assert set(subset.tolist()) == set(torch.topk(snapshot["losses"], 34).indices.tolist())
    for seen in recorder.rounds[1:]:  # 34 selected, cycled up to whole batches of 4
        assert len(seen) == 36 and set(seen) == set(subset.tolist())
    assert trainer.state.global_step == 12 + 9 + 9
    moved = {name for name, p in base.named_parameters() if not torch.equal(p, before.get(name, p))}
    if lora:
        assert moved == set() and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
        assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in model.named_parameters()
                   if "lora_B" in n)
    else:
        assert moved == set(before)


def test_learning_rate_ends_exactly_at_the_last_step_taken(tmp_path):
    rates: list[float] = []

    class Rates(TrainerCallback):
        def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
            rates.append(lr_scheduler.get_last_lr()[0])

    teacher = Teacher("attent_simple", POOL, total_steps=4, seed=0, ratio=0.5)
    trainer = make_trainer(tiny_gpt2(), teacher, tmp_path, callbacks=[Rates()], per_device_train_batch_size=2,
                           gradient_accumulation_steps=2, warmup_steps=2)
    trainer.train()
    steps = 12 + 3 * 6  # batch 2 x accumulation 2: 48 then 24 examples a round
    assert trainer.state.global_step == len(rates) == steps
    assert rates[-1] == 0.0 and min(rates[:-1]) > 0.0  # the schedule's end, reached by the last step only
    assert rates[1] == pytest.approx(1e-2)  # warm-up of 2 steps, then linear decay
    assert all(a > b for a, b in zip(rates[1:], rates[2:]))


@dataclass(frozen=True)
class HalfWeighted(Strategy):
    """Even examples only, weighted 3 (a test of the weights path)."""

    name = "half_weighted"

    def select(self, ctx) -> Selection:
        indices = torch.arange(0, ctx.pool_size, 2)
        return Selection(indices=indices, weights=torch.full((len(indices),), 3.0))


def test_weights_scale_each_examples_loss(tmp_path):
    teacher = Teacher(HalfWeighted(), POOL, total_steps=1)
    model = tiny_gpt2()
    recorder = Recorder(model)
    trainer = make_trainer(model, teacher, tmp_path, callbacks=[recorder])
    trainer.train()
    assert sorted(recorder.rounds[0]) == list(range(0, POOL, 2))
    batch = collate(pool()[:4])
    logits = model(input_ids=batch["input_ids"]).logits
    losses, _ = causal_lm_example_losses(logits, batch["labels"])
    loss = trainer.teaching.learn(torch.arange(4), logits, batch["labels"])  # what a training batch backprops
    torch.testing.assert_close(loss, (losses * torch.tensor([3.0, 1.0, 3.0, 1.0])).mean())


def test_scoring_pass_picks_the_hardest_and_skips_unlabelled_examples(tmp_path):
    teacher = Teacher("attent_complex", POOL, total_steps=2, seed=0, cycles=1, k0=1, k_max=1, r0=0.5, r1=0.5,
                      selection="hard")
    model = tiny_gpt2()
    recorder = Recorder(model)
    checked = {}

    class Check(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            if "loss" in teacher.scores and not checked:
                checked["scores"] = trainer.teaching.pool_losses(trainer.model)
                checked["selection"] = teacher.selection.indices.clone()

    with pytest.warns(UserWarning, match="no labelled tokens"):
        trainer = make_trainer(model, teacher, tmp_path, callbacks=[recorder, Check()],
                               data=pool(masked=(5,)))
        trainer.train()
    scores = checked["scores"]
    assert scores[5] == float("-inf") and not torch.isnan(scores).any()
    torch.testing.assert_close(teacher.scores["loss"], scores)
    assert set(checked["selection"].tolist()) == set(torch.topk(scores, 24).indices.tolist())
    assert set(recorder.rounds[1]) == set(checked["selection"].tolist()) and 5 not in recorder.rounds[1]
    assert trainer.teaching.clock.seconds > 0


def test_resume_mid_round_continues_exactly(tmp_path):
    def run(folder, stop_at=None, resume=False):
        model = tiny_gpt2()
        recorder = Recorder(model)

        class Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == stop_at:
                    control.should_save = control.should_training_stop = True

        teacher = Teacher("attent_simple", POOL, total_steps=3, seed=0)
        trainer = make_trainer(model, teacher, folder, callbacks=[recorder, Stop()], save_strategy="epoch")
        trainer.train(resume_from_checkpoint=resume or None)
        return [i for seen in recorder.rounds for i in seen], model, trainer

    whole, model, _ = run(tmp_path / "a")
    first, _, _ = run(tmp_path / "b", stop_at=17)  # round 1, 5 of its 9 steps done
    rest, resumed, trainer = run(tmp_path / "b", resume=True)
    assert first + rest == whole and trainer.state.global_step == 30
    for a, b in zip(model.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
