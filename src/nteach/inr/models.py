"""INR architectures that map coordinates to signal values, registered by name."""

from __future__ import annotations

import math

import torch
from torch import nn

from nteach.errors import UserError
from nteach.inr.hashgrid import HashGrid


def relu_mlp(dim_in: int, dim_out: int, width: int, depth: int) -> nn.Sequential:
    """``depth`` ReLU layers of ``width`` units and a linear output, PyTorch's default init."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(dim_in if i == 0 else width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, dim_out))


class SineLayer(nn.Module):
    """sin(omega_0 * (W x + b)) with SIREN's initialisation.

    ``first_bias_scale`` k, when given, draws a first layer's bias from U(-k, k) (FINER);
    otherwise the bias keeps PyTorch's default init (SIREN).
    """

    def __init__(self, dim_in: int, dim_out: int, omega_0: float = 30.0, is_first: bool = False,
                 first_bias_scale: float | None = None) -> None:
        super().__init__()
        self.omega_0 = omega_0
        self.is_first = is_first
        self.first_bias_scale = first_bias_scale
        self.linear = nn.Linear(dim_in, dim_out)
        self.init_()

    @torch.no_grad()
    def init_(self) -> None:
        dim_in = self.linear.in_features
        bound = 1.0 / dim_in if self.is_first else math.sqrt(6.0 / dim_in) / self.omega_0
        self.linear.weight.uniform_(-bound, bound)
        if self.is_first and self.first_bias_scale is not None:
            self.linear.bias.uniform_(-self.first_bias_scale, self.first_bias_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega_0 * self.linear(x))


class Siren(nn.Module):
    """SIREN: ``depth`` sine layers of ``width`` units and a linear output (Sitzmann et al., 2020).

    ``first_omega_0`` is the first layer's frequency factor (default ``omega_0``); SIREN's audio
    fits raise it to 3000 so that the first layer spans audible frequencies.
    """

    def __init__(self, dim_in: int, dim_out: int, width: int = 256, depth: int = 5,
                 omega_0: float = 30.0, first_omega_0: float | None = None) -> None:
        super().__init__()
        layers = [SineLayer(dim_in, width, first_omega_0 or omega_0, is_first=True)]
        layers += [SineLayer(width, width, omega_0) for _ in range(depth - 1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, dim_out)
        with torch.no_grad():
            bound = math.sqrt(6.0 / width) / omega_0
            self.head.weight.uniform_(-bound, bound)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:  # (N, dim_in) -> (N, dim_out)
        return self.head(self.body(coords))


class FourierFeatures(nn.Module):
    """Random Fourier features and a ReLU MLP (Tancik et al., 2020).

    Coordinates x go to [sin(2 pi x B), cos(2 pi x B)], with B a fixed (dim_in, n_features)
    Gaussian matrix of standard deviation ``sigma``, drawn from torch's default generator.
    """

    def __init__(self, dim_in: int, dim_out: int, width: int = 256, depth: int = 5,
                 sigma: float = 10.0, n_features: int = 256) -> None:
        super().__init__()
        self.register_buffer("B", sigma * torch.randn(dim_in, n_features))
        self.mlp = relu_mlp(2 * n_features, dim_out, width, depth)

    def encode(self, coords: torch.Tensor) -> torch.Tensor:  # (N, dim_in) -> (N, 2 n_features)
        projected = 2 * math.pi * coords @ self.B
        return torch.cat([torch.sin(projected), torch.cos(projected)], dim=1)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.encode(coords))


class PositionalEncoding(nn.Module):
    """PE-MLP: NeRF's positional encoding and a ReLU MLP (Mildenhall et al., 2020).

    Coordinates x go to [x, sin(2^k pi x_d), cos(2^k pi x_d)], the sines and cosines
    ordered by dimension d, then by frequency k = 0 .. n_frequencies - 1.
    """

    def __init__(self, dim_in: int, dim_out: int, width: int = 256, depth: int = 5,
                 n_frequencies: int = 10) -> None:
        super().__init__()
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(n_frequencies))
        self.mlp = relu_mlp(dim_in * (1 + 2 * n_frequencies), dim_out, width, depth)

    def encode(self, coords: torch.Tensor) -> torch.Tensor:  # (N, dim_in) -> (N, dim_in (1 + 2 L))
        scaled = (coords[:, :, None] * self.frequencies).flatten(1)
        return torch.cat([coords, torch.sin(scaled), torch.cos(scaled)], dim=1)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.encode(coords))


class FinerLayer(SineLayer):
    """sin(omega_0 * (|z| + 1) * z), z = W x + b, initialised like a SIREN layer.

    As in FINER's code, the scale |z| + 1 is treated as a constant by autograd.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return torch.sin(self.omega_0 * (z.abs() + 1).detach() * z)


FINER_FIRST_BIAS_SCALE = 1.0  # k: FINER draws the first layer's bias from U(-k, k)


class Finer(nn.Module):
    """FINER: SIREN with variable-periodic activations (Liu et al., CVPR 2024)."""

    def __init__(self, dim_in: int, dim_out: int, width: int = 256, depth: int = 5,
                 omega_0: float = 30.0, first_omega_0: float | None = None,
                 first_bias_scale: float = FINER_FIRST_BIAS_SCALE) -> None:
        super().__init__()
        layers = [FinerLayer(dim_in, width, first_omega_0 or omega_0, is_first=True,
                             first_bias_scale=first_bias_scale)]
        layers += [FinerLayer(width, width, omega_0) for _ in range(depth - 1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, dim_out)
        with torch.no_grad():
            bound = math.sqrt(6.0 / width) / omega_0
            self.head.weight.uniform_(-bound, bound)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(coords))


class GaussLayer(nn.Module):
    """exp(-(s z)^2), z = W x + b, PyTorch's default init."""

    def __init__(self, dim_in: int, dim_out: int, s: float = 30.0) -> None:
        super().__init__()
        self.s = s
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(self.s * self.linear(x)).square())


class Gauss(nn.Module):
    """Gaussian-activation MLP (Ramasinghe & Lucey, ECCV 2022)."""

    def __init__(self, dim_in: int, dim_out: int, width: int = 256, depth: int = 5,
                 s: float = 30.0) -> None:
        super().__init__()
        layers = [GaussLayer(dim_in if i == 0 else width, width, s) for i in range(depth)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, dim_out)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(coords))


class GaborLayer(nn.Module):
    """Complex Gabor wavelet exp(1j omega_0 z - |s_0 z|^2), z = W x + b.

    The first layer takes real coordinates; the others have complex weights. Output is complex.
    """

    def __init__(self, dim_in: int, dim_out: int, omega_0: float = 20.0, s_0: float = 10.0,
                 is_first: bool = False) -> None:
        super().__init__()
        self.omega_0 = omega_0
        self.s_0 = s_0
        self.linear = nn.Linear(dim_in, dim_out, dtype=torch.float32 if is_first else torch.cfloat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return torch.exp(1j * self.omega_0 * z - (self.s_0 * z).abs().square())


class Wire(nn.Module):
    """WIRE: wavelet implicit neural representation (Saragadam et al., CVPR 2023).

    Hidden activations are complex, so layers have int(width / sqrt(2)) units, as in WIRE's
    code, to keep the parameter count near a real network's; the output is the real part
    of a complex linear layer.
    """

    def __init__(self, dim_in: int, dim_out: int, width: int = 256, depth: int = 5,
                 omega_0: float = 20.0, s_0: float = 10.0) -> None:
        super().__init__()
        hidden = int(width / math.sqrt(2))
        layers = [GaborLayer(dim_in, hidden, omega_0, s_0, is_first=True)]
        layers += [GaborLayer(hidden, hidden, omega_0, s_0) for _ in range(depth - 1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, dim_out, dtype=torch.cfloat)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(coords)).real


MODELS = {"siren": Siren, "ffn": FourierFeatures, "pe": PositionalEncoding, "finer": Finer,
          "gauss": Gauss, "wire": Wire, "hashgrid": HashGrid}
LEARNING_RATES = {"siren": 1e-4, "ffn": 1e-3, "pe": 1e-3, "finer": 5e-4, "gauss": 5e-3, "wire": 5e-3,
                  "hashgrid": 1e-2}
SIREN_FREQUENCY = {"siren", "finer"}  # the models make_model's omega_0 applies to


def make_model(name: str, dim_in: int, dim_out: int, width: int = 256, depth: int = 5,
               omega_0: float = 30.0, first_omega_0: float | None = None, table_log2: int = 15) -> nn.Module:
    """Build the architecture registered as ``name``.

    ``omega_0`` is SIREN's frequency factor and ``first_omega_0`` its first layer's (default
    ``omega_0``): only SIREN and FINER take them; the other models keep their own defaults
    (WIRE's omega_0 is 20). ``table_log2`` sizes the hash grid's tables (2^table_log2 entries a level).
    """
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    if width <= 0 or depth <= 0:
        raise UserError(f"width and depth must be > 0, got width {width}, depth {depth}")
    if omega_0 <= 0 or (first_omega_0 is not None and first_omega_0 <= 0):
        raise UserError(f"omega_0 and first_omega_0 must be > 0, got {omega_0} and {first_omega_0}")
    if not 4 <= table_log2 <= 24:
        raise UserError(f"table_log2 must be in [4, 24], got {table_log2}")
    extra = {"omega_0": omega_0, "first_omega_0": first_omega_0} if name in SIREN_FREQUENCY else {}
    if name == "hashgrid":
        extra = {"log2_table": table_log2}
    return MODELS[name](dim_in, dim_out, width=width, depth=depth, **extra)
