"""Instruction pairs as chat examples for a causal LM: the prompt in the model's chat template, the loss
on the response alone.

Each example is the tokenizer's chat template applied to the user's prompt
(with the generation prompt, so the assistant turn is open), then the
response and the end-of-turn token. The prompt's tokens carry the label
IGNORE: the loss, the teacher's per-example score and the validation loss
are all means over response tokens, as in instruction tuning.
"""

from __future__ import annotations

import math

import torch

from nteach.attention.data import by_length
from nteach.attention.losses import IGNORE, causal_lm_losses

Pair = tuple[str, str]


def prompt_text(tokenizer, prompt: str, system: str = "") -> str:
    """The prompt as the model sees it: its chat template with the assistant's turn opened (after the
    ``system`` message, if any; else the template's default), or a plain question-and-answer frame for a
    tokenizer without a template."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}] if system else []
        return tokenizer.apply_chat_template([*messages, {"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    frame = f"Question: {prompt}\nAnswer: "
    return f"{system}\n{frame}" if system else frame


def encode_pair(tokenizer, pair: Pair, max_tokens: int, system: str = "") -> dict:
    """{"input_ids", "labels"} of one pair, cut to ``max_tokens``; prompt tokens labelled IGNORE."""
    prompt, response = pair
    prompt_ids = tokenizer(prompt_text(tokenizer, prompt, system), add_special_tokens=False)["input_ids"]
    end = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + end
    ids = (prompt_ids + response_ids)[:max_tokens]
    labels = ([IGNORE] * len(prompt_ids) + response_ids)[:max_tokens]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}


class ChatExamples(torch.utils.data.Dataset):
    """Encoded pairs; an example whose response was cut away entirely is dropped when built."""

    def __init__(self, tokenizer, pairs: list[Pair], max_tokens: int, system: str = "") -> None:
        encoded = [encode_pair(tokenizer, pair, max_tokens, system) for pair in pairs]
        self.items = [item for item in encoded if bool((item["labels"][1:] != IGNORE).any())]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class PadCollator:
    """Pads a batch to its longest example: ids with ``pad_id``, labels with IGNORE, and an attention
    mask; carries "idx" as a tensor when the items have it (teaching needs it)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict]) -> dict:
        length = max(len(item["input_ids"]) for item in items)

        def padded(name: str, value: int) -> torch.Tensor:
            return torch.stack([torch.nn.functional.pad(item[name], (0, length - len(item[name])),
                                                        value=value) for item in items])

        batch = {"input_ids": padded("input_ids", self.pad_id), "labels": padded("labels", IGNORE),
                 "attention_mask": torch.stack([torch.arange(length) < len(item["input_ids"])
                                                for item in items]).long()}
        if "idx" in items[0]:
            batch["idx"] = torch.tensor([item["idx"] for item in items])
        return batch


@torch.no_grad()
def response_loss(model, data: ChatExamples, collate: PadCollator, batch_size: int,
                  device: torch.device) -> dict:
    """Validation loss (mean over every response token of ``data``), its standard error over the
    examples (a ratio estimate: examples differ in length) and its perplexity."""
    was_training = model.training
    model.eval()
    sums, counts = [], []
    for rows in by_length(data, batch_size):
        batch = collate([data[i] for i in rows])
        batch = {name: value.to(device) for name, value in batch.items()}
        labels = batch.pop("labels")
        losses, _ = causal_lm_losses(model(**batch).logits, labels)
        tokens = (labels[:, 1:] != IGNORE).sum(dim=1)
        sums.append((losses * tokens).double().cpu())
        counts.append(tokens.double().cpu())
    model.train(was_training)
    sums, counts = torch.cat(sums), torch.cat(counts)
    loss = float(sums.sum() / counts.sum())
    n = len(sums)
    spread = float(((sums - loss * counts).pow(2).sum() / max(n - 1, 1)).sqrt())
    return {"val_loss": loss, "val_loss_se": spread * math.sqrt(n) / float(counts.sum()),
            "val_perplexity": math.exp(min(loss, 50.0))}
