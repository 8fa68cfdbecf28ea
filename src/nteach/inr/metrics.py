"""Quality measures for fitted signals."""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import structural_similarity


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; infinite for an exact match."""
    mse = torch.mean((prediction.double() - target.double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(prediction: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity of two H x W x C images (scikit-image's implementation)."""
    return float(structural_similarity(prediction, target, data_range=data_range, channel_axis=-1))
