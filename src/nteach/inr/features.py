"""Image features that peer samplers and losses need: edges, gradient magnitude, Laplacian.

Pure functions on H x W gray images (float in [0, 1], or uint8 where the
thresholds are on the 0-255 scale), built on scikit-image and scipy.
``torch_laplacian`` is the differentiable twin of ``laplacian`` for losses.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from skimage import feature, filters, util

GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)  # scikit-image's rgb2gray weights (ITU-R BT.709)
# the 4-neighbour kernel of scipy.ndimage.laplace and cv2.Laplacian(ksize=1)
LAPLACIAN_KERNEL = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def to_gray(image: np.ndarray) -> np.ndarray:
    """H x W x C in [0, 1] to H x W gray (C = 1: the channel itself; C = 3: luminance)."""
    if image.shape[-1] == 1:
        return image[..., 0]
    return image @ np.asarray(GRAY_WEIGHTS, dtype=image.dtype)


def torch_gray(pixels: torch.Tensor) -> torch.Tensor:
    """``to_gray`` for a (..., C) tensor, differentiable."""
    if pixels.shape[-1] == 1:
        return pixels[..., 0]
    return pixels @ pixels.new_tensor(GRAY_WEIGHTS)


def canny_edges(gray_uint8: np.ndarray, low: float, high: float) -> np.ndarray:
    """Canny edge map (bool H x W) with hysteresis thresholds ``low``/``high`` on the uint8 scale.

    Meant to stand in for cv2.Canny(gray_uint8, low, high). Differences: sigma = 0
    skips the Gaussian blur, as OpenCV's Canny does, but scikit-image measures the
    gradient as the L2 norm of the Sobel pair (OpenCV's default is the L1 norm, up to
    sqrt(2) larger, so OpenCV finds somewhat more edges), interpolates in non-maximum
    suppression, and keeps ties, so a step edge is two pixels wide where OpenCV's is one.
    Like OpenCV, swapped thresholds are put back in order.
    """
    low, high = sorted((low, high))
    return feature.canny(gray_uint8, sigma=0.0, low_threshold=low, high_threshold=high)


def adaptive_canny(gray: np.ndarray, rho: float, rounds: int = 100) -> tuple[np.ndarray, float]:
    """Canny with thresholds (0.5 o, theta o), o the Otsu threshold, theta adapted to an edge area of ~rho.

    theta <- theta * (1 + 15 (area - rho)), starting from 1, until the edge
    fraction is within [0.8 rho, 1.2 rho] or ``rounds`` runs of Canny are spent.
    Returns the edges whose area came closest to rho (the last ones, when they are
    within the range) and the theta that gave them.
    """
    gray_uint8 = util.img_as_ubyte(gray)
    otsu = float(filters.threshold_otsu(gray_uint8))
    theta = 1.0
    best: tuple[np.ndarray, float] | None = None
    for _ in range(rounds):
        edges = canny_edges(gray_uint8, 0.5 * otsu, theta * otsu)
        area = edges.mean()
        if best is None or abs(area - rho) < abs(best[0].mean() - rho):
            best = (edges, theta)  # the update can oscillate without converging: keep the closest
        if 0.8 * rho <= area <= 1.2 * rho:
            break
        # the paper's factor turns negative when the area is far below rho; a floor keeps theta > 0
        theta *= max(1.0 + 15.0 * (area - rho), 0.1)
    return best


def expansive_edge_mask(gray: np.ndarray, rho: float, rounds: int = 100) -> np.ndarray:
    """Expansive Supervision's anchor region: adaptive Canny edges (area ~rho), dilated 2x2 (bool H x W)."""
    edges, _ = adaptive_canny(gray, rho, rounds)
    return ndimage.binary_dilation(edges, structure=np.ones((2, 2), dtype=bool))


def sobel_magnitude(gray: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude (scikit-image's normalisation: at most ~1 on a [0, 1] image)."""
    return filters.sobel(gray)


def laplacian(gray: np.ndarray) -> np.ndarray:
    """3x3 Laplacian (4-neighbour kernel), edges padded by repeating the border pixel."""
    return ndimage.laplace(gray, mode="nearest")


def torch_laplacian(gray: torch.Tensor) -> torch.Tensor:
    """``laplacian`` for an H x W tensor, differentiable and on the tensor's device."""
    kernel = gray.new_tensor(LAPLACIAN_KERNEL).view(1, 1, 3, 3)
    padded = torch.nn.functional.pad(gray[None, None], (1, 1, 1, 1), mode="replicate")
    return torch.nn.functional.conv2d(padded, kernel)[0, 0]
