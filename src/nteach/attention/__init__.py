"""Teaching attention learners (ViTs, encoders, causal LMs): data, losses, loops, HF integration."""

from nteach.attention.data import IndexedDataset, load_image_data, split
from nteach.attention.loop import Teaching, TeachingSampler
from nteach.attention.losses import causal_lm_losses, classification_losses
from nteach.attention.vit import ViT, make_vit

__all__ = [
    "IndexedDataset", "Teaching", "TeachingSampler", "ViT", "causal_lm_losses", "classification_losses",
    "load_image_data", "make_vit", "split",
]
