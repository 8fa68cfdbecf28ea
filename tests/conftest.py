import numpy as np
import pytest
import torch
from skimage import io

from nteach.inr.signals import ImageSignal


def smooth_image(size: int = 24, channels: int = 3) -> np.ndarray:
    """A small image with gradients and one sine: quick to fit, not trivial."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    planes = [x, y, 0.5 + 0.5 * np.sin(6 * x * y)][:channels]
    return np.stack(planes, axis=-1).astype(np.float32)


@pytest.fixture
def tiny_signal() -> ImageSignal:
    return ImageSignal(name="tiny", image=smooth_image())


@pytest.fixture
def tiny_png(tmp_path):
    path = tmp_path / "tiny.png"
    io.imsave(path, (smooth_image() * 255).astype(np.uint8), check_contrast=False)
    return path


@pytest.fixture
def one_thread():
    """Tiny networks: one thread is fastest and steady on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
