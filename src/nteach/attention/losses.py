"""Per-example losses: what a teacher scores attention learners by."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

IGNORE = -100  # the label value Hugging Face uses for tokens that carry no loss


def classification_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each example: (B, classes), (B,) -> (B,)."""
    return F.cross_entropy(logits, labels, reduction="none")


def causal_lm_losses(logits: torch.Tensor, labels: torch.Tensor, padded_length_mean: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean next-token cross-entropy of each sequence over its labelled tokens.

    logits (B, T, V), labels (B, T) with IGNORE on prompt and padding tokens.
    Returns (losses (B,), valid (B,) bool). An example with no labelled token
    gets loss 0 and valid False, never NaN. ``padded_length_mean`` divides by
    the padded length T - 1 instead (what AtteNT's released code does).
    """
    shifted_logits, shifted_labels = logits[:, :-1], labels[:, 1:]
    mask = shifted_labels != IGNORE
    tokens = F.cross_entropy(shifted_logits.reshape(-1, shifted_logits.shape[-1]),
                             shifted_labels.reshape(-1).clamp_min(0), reduction="none")
    tokens = tokens.view(shifted_labels.shape) * mask
    counts = mask.sum(dim=1)
    valid = counts > 0
    if not bool(valid.all()):
        warnings.warn(f"{int((~valid).sum())} example(s) have no labelled tokens; they are skipped",
                      stacklevel=2)
    if padded_length_mean:
        return tokens.sum(dim=1) / shifted_labels.shape[1], valid
    return tokens.sum(dim=1) / counts.clamp_min(1), valid
