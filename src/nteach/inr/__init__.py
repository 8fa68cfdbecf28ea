"""Implicit neural representations: signals, architectures, the fit loop and metrics."""

from nteach.inr.fit import Budget, Diverged, Fit
from nteach.inr.metrics import psnr, ssim
from nteach.inr.models import MODELS, Siren, make_model
from nteach.inr.signals import BUNDLED_IMAGES, ImageSignal, grid, load_image

__all__ = ["BUNDLED_IMAGES", "Budget", "Diverged", "Fit", "ImageSignal", "MODELS", "Siren",
           "grid", "load_image", "make_model", "psnr", "ssim"]
