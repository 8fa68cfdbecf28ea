"""Quality measures for fitted signals."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree
from skimage.metrics import structural_similarity


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; infinite for an exact match."""
    mse = torch.mean((prediction.double() - target.double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(prediction: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity of two H x W x C images (scikit-image's implementation)."""
    return float(structural_similarity(prediction, target, data_range=data_range, channel_axis=-1))


def si_snr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Scale-invariant signal-to-noise ratio in dB of (N,) or (N, C) waveforms, averaged over channels.

    Per channel, after removing the means: s = (<p, t> / |t|^2) t, e = p - s,
    SI-SNR = 10 log10(|s|^2 / |e|^2); infinite for an exact match. Channels whose target
    is constant (silent) have no defined SI-SNR and are left out; NaN when all are. A prediction
    with nothing of the target in it (constant, or orthogonal) gives -inf.
    """
    p = prediction.double().reshape(len(prediction), -1)
    t = target.double().reshape(len(target), -1)
    p, t = p - p.mean(dim=0), t - t.mean(dim=0)
    energy = t.pow(2).sum(dim=0)
    values = []
    for channel in torch.nonzero(energy > 0).flatten().tolist():
        if torch.equal(p[:, channel], t[:, channel]):
            values.append(math.inf)
            continue
        scaled = (p[:, channel] @ t[:, channel]) / energy[channel] * t[:, channel]
        noise = (p[:, channel] - scaled).pow(2).sum().item()
        signal = scaled.pow(2).sum().item()
        ratio = -math.inf if signal == 0 else math.inf if noise == 0 else 10 * math.log10(signal / noise)
        values.append(ratio)
    return float(np.mean(values)) if values else math.nan


def iou(prediction: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Intersection over union of two boolean occupancies; 1 when both are empty."""
    prediction, target = np.asarray(prediction, dtype=bool), np.asarray(target, dtype=bool)
    union = np.logical_or(prediction, target).sum()
    return 1.0 if union == 0 else float(np.logical_and(prediction, target).sum() / union)


def chamfer(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """Symmetric Chamfer distance of two (n, d) point sets: the mean of the two mean nearest-neighbour
    (Euclidean) distances; infinite when either set is empty."""
    if len(points_a) == 0 or len(points_b) == 0:
        return math.inf
    a_to_b, _ = cKDTree(points_b).query(points_a)
    b_to_a, _ = cKDTree(points_a).query(points_b)
    return float((a_to_b.mean() + b_to_a.mean()) / 2)
