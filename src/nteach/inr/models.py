"""INR architectures that map coordinates to signal values, registered by name."""

from __future__ import annotations

import math

import torch
from torch import nn

from nteach.errors import UserError


class SineLayer(nn.Module):
    """sin(omega_0 * (W x + b)) with SIREN's initialisation."""

    def __init__(self, dim_in: int, dim_out: int, omega_0: float = 30.0, is_first: bool = False) -> None:
        super().__init__()
        self.omega_0 = omega_0
        self.is_first = is_first
        self.linear = nn.Linear(dim_in, dim_out)
        self.init_()

    @torch.no_grad()
    def init_(self) -> None:
        dim_in = self.linear.in_features
        bound = 1.0 / dim_in if self.is_first else math.sqrt(6.0 / dim_in) / self.omega_0
        self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega_0 * self.linear(x))


class Siren(nn.Module):
    """SIREN: ``depth`` sine layers of ``width`` units and a linear output (Sitzmann et al., 2020)."""

    def __init__(self, dim_in: int, dim_out: int, width: int = 256, depth: int = 5,
                 omega_0: float = 30.0) -> None:
        super().__init__()
        layers = [SineLayer(dim_in, width, omega_0, is_first=True)]
        layers += [SineLayer(width, width, omega_0) for _ in range(depth - 1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, dim_out)
        with torch.no_grad():
            bound = math.sqrt(6.0 / width) / omega_0
            self.head.weight.uniform_(-bound, bound)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:  # (N, dim_in) -> (N, dim_out)
        return self.head(self.body(coords))


MODELS = {"siren": Siren}
LEARNING_RATES = {"siren": 1e-4}


def make_model(name: str, dim_in: int, dim_out: int, width: int = 256, depth: int = 5,
               omega_0: float = 30.0) -> nn.Module:
    """Build the architecture registered as ``name``."""
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    if width <= 0 or depth <= 0:
        raise UserError(f"width and depth must be > 0, got width {width}, depth {depth}")
    return MODELS[name](dim_in, dim_out, width=width, depth=depth, omega_0=omega_0)
