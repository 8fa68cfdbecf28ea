"""Datasets whose items carry their dataset index, and the image sets the ViT recipe trains on.

A teacher keys what it learns by dataset index, so every item a loader
yields must say which example it is: ``IndexedDataset`` appends the index
to each item (or adds ``"idx"`` to a dict item, the Hugging Face way).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from nteach.errors import UserError

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
IDX_FILES = {  # what load_idx_images reads from a folder, with or without .gz
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IndexedDataset(Dataset):
    """Item ``i`` of ``dataset`` carrying ``i``: (*item, i) for tuples, {..., "idx": i} for dicts."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        item = self.dataset[index]
        if isinstance(item, dict):
            return {**item, "idx": index}
        if isinstance(item, tuple):
            return (*item, index)
        return item, index


class ImageSet(NamedTuple):
    """Images (N, C, H, W) float, standardised, and labels (N,) long."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices])


class ImageData(NamedTuple):
    """What a classification recipe trains and validates on; ``test`` may be None."""

    name: str
    train: ImageSet
    test: ImageSet | None
    num_classes: int


def read_idx(path: Path) -> np.ndarray:
    """An array from an IDX file (the MNIST format), plain or gzip-compressed."""
    try:
        with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise UserError(f"{path} is not an IDX file")
    ndim = raw[3]
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    offset = 4 + 4 * ndim
    if len(raw) - offset != dtype.itemsize * int(np.prod(shape)):
        raise UserError(f"{path} is truncated or corrupt: expected shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def _idx_path(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _standardise(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    return ((torch.from_numpy(images.astype(np.float32)) - mean) / std).unsqueeze(1)  # (N, 1, H, W)


def load_idx_images(folder: str | Path, name: str = "fashion-mnist") -> ImageData:
    """MNIST-format images from a folder of IDX files (Fashion-MNIST, MNIST, KMNIST, ...)."""
    folder = Path(folder)
    paths = {key: _idx_path(folder, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[key] for key in ("train_images", "train_labels") if paths[key] is None]
    if missing:
        raise UserError(f"no {' or '.join(missing)}[.gz] in {folder} (expected a folder of IDX files)")
    images, labels = read_idx(paths["train_images"]), read_idx(paths["train_labels"])
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise UserError(f"{folder}: images {images.shape} and labels {labels.shape} do not match")
    mean, std = float(images.mean()), float(images.std())
    train = ImageSet(_standardise(images, mean, std), torch.from_numpy(labels.astype(np.int64)))
    test = None
    if paths["test_images"] is not None and paths["test_labels"] is not None:
        test = ImageSet(_standardise(read_idx(paths["test_images"]), mean, std),
                        torch.from_numpy(read_idx(paths["test_labels"]).astype(np.int64)))
    return ImageData(name, train, test, num_classes=int(labels.max()) + 1)


def load_digits() -> ImageData:
    """scikit-learn's 1797 handwritten 8x8 digits: a tiny set for tests and quick tries."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = digits.images.astype(np.float32)
    train = ImageSet(_standardise(images, float(images.mean()), float(images.std())),
                     torch.from_numpy(digits.target.astype(np.int64)))
    return ImageData("digits", train, None, num_classes=10)


def load_image_data(source: str) -> ImageData:
    """'digits', 'fashion-mnist' (Debian's copy) or a folder of MNIST-format IDX files."""
    if source == "digits":
        return load_digits()
    folder = FASHION_MNIST if source == "fashion-mnist" else Path(source)
    if not folder.is_dir():
        hint = " (install Debian's dataset-fashion-mnist)" if source == "fashion-mnist" else ""
        raise UserError(f"no such dataset folder: {folder}{hint}")
    return load_idx_images(folder, name=folder.name if source != "fashion-mnist" else source)


def split(size: int, validation: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(size)`` into (train, validation) indices, ``validation`` held out."""
    if not 0 < validation < size:
        raise UserError(f"the validation split must hold between 1 and {size - 1} examples, got {validation}")
    order = torch.randperm(size, generator=generator)
    return order[validation:], order[:validation]


def by_length(data: Dataset, batch_size: int) -> list[list[int]]:
    """Batches of the rows of ``data`` (items with "input_ids") in order of length: padded to their
    longest, batches of similar lengths waste the least compute (for evaluation, where order is free)."""
    order = sorted(range(len(data)), key=lambda i: len(data[i]["input_ids"]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def accuracy_se(accuracy: float, count: int) -> float:
    """The standard error of an accuracy measured on ``count`` examples: sqrt(p (1 - p) / n)."""
    return (accuracy * (1.0 - accuracy) / count) ** 0.5


def subset(count: int, limit: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded random ``limit`` of ``count`` rows (all of them if no limit)."""
    if limit is None or limit >= count:
        return torch.arange(count)
    return torch.sort(torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:limit]).values
