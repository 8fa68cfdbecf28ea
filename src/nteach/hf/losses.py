"""Per-example losses from a Hugging Face model's logits and labels: what the teacher observes."""

from __future__ import annotations

from typing import Callable

import torch

from nteach.attention.losses import causal_lm_losses, classification_losses

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


def default_example_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The common cases by the labels' shape: one label per example is sequence classification, one per
    token is a causal language model (shifted). Token classification needs its own function."""
    if labels.dim() == 1:
        return classification_example_losses(logits, labels)
    return causal_lm_example_losses(logits, labels)
