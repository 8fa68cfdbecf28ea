"""TeachingCallback on trainers it does not own: the plain Trainer and TRL's SFTTrainer, on a tiny GPT-2."""

from __future__ import annotations

import logging

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from nteach.errors import UserError  # noqa: E402
from nteach.hf import TeachingCallback, causal_lm_example_losses  # noqa: E402
from nteach.teaching import Teacher  # noqa: E402
from test_hf import POOL, VOCAB, Recorder, collate, pool, tiny_gpt2  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = dict(per_device_train_batch_size=4, learning_rate=1e-2, lr_scheduler_type="linear",
                save_strategy="no", logging_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
                seed=0)


class Spy(TrainerCallback):
    """The indices the teacher was told it trained on, in order, and the learning rate of every step."""

    def __init__(self, teacher: Teacher) -> None:
        self.observed: list[int] = []
        self.rates: list[float] = []
        observe = teacher.observe

        def spy(index, losses, *args, **kwargs):
            self.observed.extend(index.tolist())
            return observe(index, losses, *args, **kwargs)

        teacher.observe = spy  # an instance attribute of the test's own object

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        self.rates.append(lr_scheduler.get_last_lr()[0])


class StopAt(TrainerCallback):
    """Save and stop after optimizer step ``step`` (None: never)."""

    def __init__(self, step: int | None) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = control.should_training_stop = True


def plain_run(folder, teacher: Teacher, stop_at: int | None = None, resume: bool = False, **options):
    model = tiny_gpt2()
    recorder, spy = Recorder(model), Spy(teacher)

    args = TrainingArguments(output_dir=str(folder), num_train_epochs=teacher.total_steps,
                             **{**SETTINGS, **options})
    trainer = Trainer(model=model, args=args, train_dataset=pool(), data_collator=collate,
                      callbacks=[recorder, spy, StopAt(stop_at)])
    TeachingCallback(teacher).attach(trainer)
    trainer.train(resume_from_checkpoint=resume or None)
    return model, trainer, recorder, spy


def test_plain_trainer_trains_the_selection_and_tells_the_teacher_what_it_trained(tmp_path):
    teacher = Teacher("attent_simple", POOL, total_steps=3, seed=0, ratio=0.5)
    _, trainer, recorder, spy = plain_run(tmp_path, teacher, per_device_train_batch_size=2,
                                          gradient_accumulation_steps=2, warmup_steps=2)
    seen = [i for round in recorder.rounds for i in round]
    assert spy.observed == seen  # the callback's indices are the examples each batch really held
    assert sorted(recorder.rounds[0]) == list(range(POOL))
    subset = set(teacher.state["subset"].tolist())
    assert len(subset) == 24 and all(set(r) == subset and len(r) == 24 for r in recorder.rounds[1:])
    assert trainer.state.global_step == len(spy.rates) == 12 + 6 + 6
    assert spy.rates[-1] == 0.0 and min(spy.rates[:-1]) > 0.0  # the schedule ends at the last step taken


def test_the_users_arguments_are_left_alone_and_the_change_is_said(tmp_path, caplog):
    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=2, **SETTINGS)
    trainer = Trainer(model=tiny_gpt2(), args=args, train_dataset=pool(), data_collator=collate)
    with caplog.at_level(logging.WARNING, logger="nteach.hf.callback"):
        TeachingCallback(Teacher("attent_simple", POOL, total_steps=2)).attach(trainer)
    assert args.train_sampling_strategy == "random" and not args.ignore_data_skip
    assert trainer.args.train_sampling_strategy == "sequential" and trainer.args.ignore_data_skip
    assert "train_sampling_strategy='sequential'" in caplog.text


@pytest.mark.parametrize("problem, message", [
    (dict(teacher="selective_backprop"), "TeachingTrainer"),
    (dict(max_steps=5), "num_train_epochs"),
    (dict(pool=POOL + 1), "pool has 49"),
])
def test_what_a_callback_cannot_teach_is_refused_in_one_line(tmp_path, problem, message):
    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=2,
                             max_steps=problem.get("max_steps", -1), **SETTINGS)
    trainer = Trainer(model=tiny_gpt2(), args=args, train_dataset=pool(), data_collator=collate)
    teacher = Teacher(problem.get("teacher", "infobatch"), problem.get("pool", POOL), total_steps=2)
    with pytest.raises(UserError, match=message):
        TeachingCallback(teacher).attach(trainer)


def test_plain_trainer_resumed_mid_round_equals_the_straight_run(tmp_path):
    def teacher():
        return Teacher("infobatch", POOL, total_steps=3, seed=0)

    model, _, straight, _ = plain_run(tmp_path / "a", teacher())
    plain_run(tmp_path / "b", teacher(), stop_at=15, save_strategy="epoch")
    saved = sorted(path.name for path in (tmp_path / "b" / "checkpoint-15").iterdir())
    assert "teaching.pt" in saved and not [name for name in saved if name.startswith(".teaching")]  # atomic
    resumed_model, trainer, rest, _ = plain_run(tmp_path / "b", teacher(), resume=True, save_strategy="epoch")
    assert trainer.state.global_step == sum(len(r) for r in straight.rounds) // 4
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        torch.testing.assert_close(a, b)


# -- TRL ------------------------------------------------------------------------------------------

def sft_parts(tmp_path, epochs: int, **options):
    trl = pytest.importorskip("trl")
    datasets = pytest.importorskip("datasets")
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(VOCAB)}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="t2")),
                                        pad_token="t3", eos_token="t1")
    rows = pool()  # example i starts with token i: the recorder reads which examples a forward saw
    data = datasets.Dataset.from_dict({"input_ids": [row["input_ids"].tolist() for row in rows]})
    config = trl.SFTConfig(output_dir=str(tmp_path), num_train_epochs=epochs, max_length=16, packing=False,
                           dataset_num_proc=None, **{**SETTINGS, **options})
    return trl, data, tokenizer, config


def sft_run(tmp_path, teacher: Teacher, stop_at: int | None = None, resume: bool = False, **options):
    trl, data, tokenizer, config = sft_parts(tmp_path, teacher.total_steps, **options)
    model = tiny_gpt2()
    recorder, spy = Recorder(model), Spy(teacher)

    trainer = trl.SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer,
                             callbacks=[recorder, spy, StopAt(stop_at)])
    TeachingCallback(teacher, causal_lm_example_losses).attach(trainer)
    trainer.train(resume_from_checkpoint=resume or None)
    return model, trainer, recorder, spy


def test_sft_trainer_teaches_with_the_callback(tmp_path):
    teacher = Teacher("attent_complex", POOL, total_steps=4, seed=0, cycles=1, k0=1, k_max=1, r0=0.5, r1=0.5,
                      selection="hard")
    _, trainer, recorder, spy = sft_run(tmp_path, teacher)
    seen = [i for round in recorder.rounds for i in round]
    assert spy.observed == seen and sorted(recorder.rounds[0]) == list(range(POOL))
    assert any(len(set(r)) == 24 for r in recorder.rounds[1:])  # a subset round: half the pool, the hardest
    assert spy.rates[-1] == 0.0 and min(spy.rates[:-1]) > 0.0
    assert trainer.state.global_step == sum(len(r) for r in recorder.rounds) // 4


def test_sft_trainer_resumed_mid_round_equals_the_straight_run(tmp_path):
    def teacher():
        return Teacher("attent_simple", POOL, total_steps=3, seed=0)

    model, _, straight, _ = sft_run(tmp_path / "a", teacher())
    sft_run(tmp_path / "b", teacher(), stop_at=16, save_strategy="epoch")
    resumed, trainer, _, _ = sft_run(tmp_path / "b", teacher(), resume=True, save_strategy="epoch")
    assert trainer.state.global_step == sum(len(r) for r in straight.rounds) // 4
    for a, b in zip(model.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
