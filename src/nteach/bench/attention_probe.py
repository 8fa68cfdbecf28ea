"""A check on the attention clock (nteach.bench.attention_clock): what a unit of work costs, timed
before a case's runs, with the case's own model and data, alternated and repeated
(nteach.bench.probe.alternate):

- a training step (forward, backward, AdamW) on a batch and on its first half: the slope is the cost
  of one more unit trained on (a token for text, an image for the ViT);
- a no-grad forward of the batch: the cost of a unit scored.

The report sets these beside the prices fitted to the runs themselves. They are not the clock: timed
apart from the runs they miss the Trainer's own work, and one probe priced a step 1.2x what the same
step cost inside the runs (its large steps ran slow for a while), which the slope between two sizes
magnified: 1.6x the runs' price of a token trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from nteach.bench.probe import REPETITIONS, alternate

Batch = dict | tuple


@dataclass
class Kit:
    """A case's model, ready to time: ``batch(n)`` is n training examples on the device, ``loss(batch)``
    their mean loss (with grad), ``units(batch)`` what the work counts them as."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batch: Callable[[int], Batch]
    loss: Callable[[Batch], torch.Tensor]
    units: Callable[[Batch], int]
    unit: str  # "token" or "example"
    device: torch.device
    score_batch: int | None = None  # examples per scoring forward, if not the training batch's


def vit_kit(config) -> Kit:
    from nteach.attention.losses import classification_losses
    from nteach.attention.recipes.vit import Training, image_sets
    from nteach.attention.recipes.vit_training import CHUNK

    images = image_sets(config)
    training = Training(config, images.train, images.validation, images.num_classes)
    images, labels = training.train.images, training.train.labels
    # training.learner: compiled where the case compiles (the probe's untimed repetitions compile it)
    return Kit(training.model, training.optimizer, lambda n: (images[:n], labels[:n]),
               lambda b: classification_losses(training.learner(b[0]), b[1]).mean(), lambda b: len(b[0]),
               "example", training.device, score_batch=CHUNK)  # the recipe scores in chunks


def text_kit(recipe, config) -> Kit:
    """``recipe``: the lm or encoder recipe module (its check_inputs and prepare)."""
    from nteach.attention.recipes.text_training import hf_quiet
    from nteach.compiling import compiled, resolve_compile
    from nteach.devices import resolve_device

    device = resolve_device(config.device)
    with hf_quiet(show_bars=False, show_logs=False):  # the runs' own bars are the bench's to show
        model, train, collate, _, example_losses, _ = recipe.prepare(config, recipe.check_inputs(config))
    model.to(device).train()
    forward = compiled(model, resolve_compile(config.compile, "text", device))  # as the case's runs train
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)

    def batch(n: int) -> dict:
        return {k: v.to(device) for k, v in collate([train[i] for i in range(min(n, len(train)))]).items()}

    def loss(b: dict) -> torch.Tensor:
        inputs = {k: v for k, v in b.items() if k != "labels"}
        losses, valid = example_losses(forward(**inputs).logits, b["labels"])
        return (losses * valid).sum() / valid.sum().clamp_min(1)
    return Kit(model, optimizer, batch, loss, lambda b: b["input_ids"].numel(), "token", device)


def case_kit(recipe_name: str, config) -> Kit:
    from nteach.attention.recipes import encoder, lm

    if recipe_name == "vit":
        return vit_kit(config)
    return text_kit({"lm": lm, "encoder": encoder}[recipe_name], config)


def _half(batch: Batch) -> Batch:
    if isinstance(batch, dict):
        return {k: v[:len(v) // 2] for k, v in batch.items()}
    return tuple(v[:len(v) // 2] for v in batch)


def measure_units(kit: Kit, batch_size: int, repetitions: int = REPETITIONS) -> dict:
    """Seconds per unit trained on (a step on a batch of ``batch_size`` against one on its first half)
    and per unit forwarded without grad (on a batch of the size the recipe scores in)."""
    full, scored = kit.batch(max(batch_size, 2)), kit.batch(kit.score_batch or batch_size)
    half = _half(full)

    def train(batch: Batch) -> Callable[[], None]:
        def step() -> None:
            kit.optimizer.zero_grad(set_to_none=True)
            kit.loss(batch).backward()
            kit.optimizer.step()
        return step

    def forward() -> None:
        with torch.no_grad():
            kit.loss(scored)

    samples, paired = alternate({"train_all": train(full), "train_half": train(half), "forward_all": forward},
                                kit.device, repetitions)
    median = {name: paired(values) for name, values in samples.items()}
    units, half_units = kit.units(full), kit.units(half)
    return {"unit": kit.unit, "repetitions": repetitions, "batch_units": units, "medians": median,
            "trained": max((median["train_all"] - median["train_half"]) / max(units - half_units, 1), 0.0),
            "forwarded": median["forward_all"] / kit.units(scored), "samples": samples}
