"""Signals to fit: coordinates in [-1, 1]^d, targets in [0, 1], and how to judge a fit."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from skimage import color, data, io, transform, util

from nteach.errors import UserError
from nteach.inr import features
from nteach.inr.metrics import psnr, ssim
from nteach.runs import atomic_write

# scikit-image's images that ship inside the package (no download at run time)
BUNDLED_IMAGES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")
EGRA_CANNY = (30, 40)  # EGRA's Canny thresholds on the uint8 gray image
LAPLACIAN_ERROR_SCALE = 1e-5  # EVOS's weight of the squared Laplacian difference


class Signal(Protocol):
    """What the fit loop, the comparisons and the run folders need from any signal."""

    name: str
    metric: str  # the quality measure that targets refer to ("psnr", "iou", ...)
    coords: torch.Tensor  # (N, d) in [-1, 1]
    targets: torch.Tensor  # (N, C)

    def __len__(self) -> int: ...

    def evaluate(self, predictions: torch.Tensor) -> dict[str, float]:
        """Quality of a whole prediction, including ``metric``."""

    def export(self, predictions: torch.Tensor, folder: Path) -> None:
        """Write the reconstruction in a form a person can look at or listen to."""

    def preview(self, predictions: torch.Tensor) -> np.ndarray:
        """An H x W x C picture in [0, 1] of a prediction (or of ``targets``) for side-by-side panels."""

    def selection_picture(self, frequency: torch.Tensor) -> np.ndarray:
        """A 2-D array showing a per-example quantity (how often each was selected) in place."""

    def score(self, name: str, predict: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A signal-specific per-example score (edges, Laplacian error, ...); ``predict()`` gives f(X)."""

    def extra_loss(self, name: str, predictions: torch.Tensor, indices: torch.Tensor | None) -> torch.Tensor:
        """A signal-specific loss term on the predictions for ``indices`` (None: the whole signal)."""


def grid(shape: tuple[int, ...]) -> torch.Tensor:
    """Row-major coordinates of a grid of ``shape``, each axis spanning [-1, 1]: (prod(shape), len(shape))."""
    axes = [torch.linspace(-1.0, 1.0, n) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))


def fraction_in_name(text: str, name: str) -> float:
    """The number in a score name such as "expansive_edges:0.1", checked to lie in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"score {name!r}: {text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise UserError(f"score {name!r}: the area fraction must be in (0, 1], got {value}")
    return value


@dataclass
class ImageSignal:
    """An H x W x C image as N = H W coordinate/value pairs."""

    name: str
    image: np.ndarray  # H x W x C float in [0, 1]
    metric = "psnr"

    def __post_init__(self) -> None:
        self.coords = grid(self.image.shape[:2])
        self.targets = torch.from_numpy(self.image.reshape(-1, self.image.shape[2])).float()

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.image.shape

    def __len__(self) -> int:
        return len(self.coords)

    def to_image(self, values: torch.Tensor) -> np.ndarray:
        """Predictions (N x C) back to an H x W x C array clipped to [0, 1]."""
        return values.detach().clamp(0, 1).cpu().numpy().reshape(self.shape)

    def evaluate(self, predictions: torch.Tensor) -> dict[str, float]:
        """PSNR and SSIM of predictions over the whole image, after clipping to [0, 1]."""
        clipped = predictions.detach().clamp(0, 1).cpu()
        return {"psnr": psnr(clipped, self.targets),
                "ssim": ssim(self.to_image(clipped), self.image)}

    def export(self, predictions: torch.Tensor, folder: Path) -> None:
        pixels = util.img_as_ubyte(self.to_image(predictions))
        pixels = pixels[..., 0] if self.shape[2] == 1 else pixels
        atomic_write(Path(folder) / "reconstruction.png",
                     lambda tmp: io.imsave(tmp, pixels, check_contrast=False))

    def preview(self, predictions: torch.Tensor) -> np.ndarray:
        return self.to_image(predictions)

    def selection_picture(self, frequency: torch.Tensor) -> np.ndarray:
        return frequency.detach().cpu().numpy().reshape(self.shape[:2])

    @property
    def gray(self) -> np.ndarray:
        """The target's H x W luminance, clipped to [0, 1] against float rounding."""
        return np.clip(features.to_gray(self.image), 0.0, 1.0)

    def score(self, name: str, predict: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Per-pixel scores, row-major (N,) float32 on the CPU:

        "edges" (0/1 Canny 30/40 of the gray target, EGRA), "expansive_edges:RHO"
        (0/1 dilated edges of area fraction ~RHO, Expansive Supervision),
        "edge_magnitude" (Sobel magnitude of the gray target) and "laplacian_error"
        (1e-5 (Laplacian of the gray prediction - that of the target)^2, EVOS).
        """
        kind, _, argument = name.partition(":")
        if name == "edges":
            values = features.canny_edges(util.img_as_ubyte(self.gray), *EGRA_CANNY)
        elif kind == "expansive_edges" and argument:
            values = features.expansive_edge_mask(self.gray, fraction_in_name(argument, name))
        elif name == "edge_magnitude":
            values = features.sobel_magnitude(self.gray)
        elif name == "laplacian_error":
            predicted = features.to_gray(predict().detach().cpu().numpy().reshape(self.shape))
            difference = features.laplacian(predicted) - features.laplacian(self.gray)
            values = LAPLACIAN_ERROR_SCALE * difference**2
        else:
            raise UserError(f"images have no score named {name!r}")
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))

    def extra_loss(self, name: str, predictions: torch.Tensor, indices: torch.Tensor | None) -> torch.Tensor:
        """The "laplacian" term: mean squared difference of the gray Laplacians of prediction and target.

        It needs the whole image, so it is zero on steps that trained on a subset (``indices``).
        """
        if name != "laplacian":
            raise UserError(f"images have no loss term named {name!r}")
        if indices is not None:
            return predictions.new_zeros(())
        height, width = self.shape[:2]
        predicted = features.torch_gray(predictions).reshape(height, width)
        target = features.torch_gray(self.targets.to(predictions.device)).reshape(height, width)
        return (features.torch_laplacian(predicted) - features.torch_laplacian(target)).pow(2).mean()


def _read(source: str) -> np.ndarray:
    if source in BUNDLED_IMAGES:
        return getattr(data, source)()
    path = Path(source)
    if not path.is_file():
        raise UserError(f"no such image: {source} (a path, or one of {', '.join(BUNDLED_IMAGES)})")
    try:
        return io.imread(path)
    except (OSError, ValueError, SyntaxError) as error:  # what imageio / Pillow raise for non-images
        raise UserError(f"cannot read {source} as an image: {str(error).splitlines()[0]}") from None


def load_image(source: str = "astronaut", size: int | None = None, gray: bool = False) -> ImageSignal:
    """An image from a file path (PNG, JPEG, TIFF, ...) or a bundled scikit-image name.

    ``size`` resizes so that the longer side has ``size`` pixels; ``gray``
    converts RGB to one channel. An alpha channel is composited on white.
    """
    pixels = _read(source)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        warnings.warn(f"{source}: alpha channel composited on white", stacklevel=2)
        pixels = color.rgba2rgb(pixels)
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 3)):
        raise UserError(f"{source}: expected a gray or RGB image, got an array of shape {pixels.shape}")
    image = util.img_as_float(pixels).astype(np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if gray and image.shape[2] == 3:
        image = color.rgb2gray(image)[..., None].astype(np.float32)
    if size is not None:
        if size <= 0:
            raise UserError(f"size must be > 0, got {size}")
        scale = size / max(image.shape[:2])
        new_shape = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
        image = transform.resize(image, new_shape, anti_aliasing=True).astype(np.float32)
    name = source if source in BUNDLED_IMAGES else Path(source).stem
    return ImageSignal(name=name, image=np.clip(image, 0.0, 1.0))
