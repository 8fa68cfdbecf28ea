"""A compact Vision Transformer (Dosovitskiy et al., 2021), small enough to train from scratch on a CPU.

Patches -> linear embedding + learned positions, a [class] token, pre-norm
transformer blocks (multi-head self-attention via scaled_dot_product_attention,
then an MLP), a final LayerNorm and a linear head on the [class] token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# dim, depth, heads: presets in the spirit of ViT-Ti/S/B, scaled down for 28x28 images
SIZES = {"micro": (32, 2, 2), "tiny": (64, 4, 4), "small": (128, 6, 4), "base": (192, 8, 6)}


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # BHNd
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, d)
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-norm transformer block: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Images (B, C, H, W) -> class logits (B, num_classes)."""

    def __init__(self, image_size: int, patch_size: int, num_classes: int, channels: int = 1,
                 dim: int = 64, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if image_size % patch_size or dim % heads:
            raise ValueError(f"patch_size {patch_size} must divide image_size {image_size} "
                             f"and heads {heads} must divide dim {dim}")
        num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """Truncated normal (std 0.02) for positions, tokens and linear layers; zero biases, unit norms."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)  # (B, N + 1, D)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))  # (B, num_classes)


def make_vit(size: str, image_size: int, patch_size: int, num_classes: int, channels: int = 1) -> ViT:
    """A ViT of one of the preset ``SIZES``."""
    dim, depth, heads = SIZES[size]
    return ViT(image_size, patch_size, num_classes, channels, dim=dim, depth=depth, heads=heads)
