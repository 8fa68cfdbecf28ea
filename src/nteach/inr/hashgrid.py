"""A multiresolution hash encoding with a small ReLU MLP head (Mueller et al., instant-NGP, 2022), in plain
PyTorch, for 1-D, 2-D and 3-D coordinates in [-1, 1]^d.

Level l has a grid of resolution N_l = floor(N_min * b^l), b = exp((ln N_max - ln N_min) / (L - 1)). A
coordinate's features at level l interpolate (d-linearly) the table entries of the 2^d vertices of its
cell. A level whose (N_l + 1)^d vertices fit in the table indexes them one to one; a finer one hashes a
vertex v to (v_1 * 1 XOR v_2 * 2654435761 XOR v_3 * 805459861) mod T, T a power of two, as the paper does.
The L levels' features, concatenated, feed the MLP. Entries start in U(-1e-4, 1e-4).

Each coordinate touches 2^d entries per level: a step moves only the cells its examples fall in, so where
a teacher samples decides which regions learn. Everything here is differentiable in the table, the head
and the coordinates (input gradients, for Soft Mining), and runs under torch.func (the NTK score).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from nteach.errors import UserError

PRIMES = (1, 2654435761, 805459861)  # the paper's per-dimension hash factors
FINEST = {1: 16384, 2: 512, 3: 256}  # N_max per input dimension, sized for a CPU (see the README)


def level_resolutions(levels: int, coarsest: int, finest: int) -> list[int]:
    """N_l for l = 0 .. levels - 1: a geometric progression from ``coarsest`` to ``finest``."""
    if levels == 1:
        return [coarsest]
    growth = math.exp((math.log(finest) - math.log(coarsest)) / (levels - 1))
    return [math.floor(coarsest * growth ** level + 1e-9) for level in range(levels)]  # 1e-9: float noise


def vertex_index(vertices: torch.Tensor, resolution: torch.Tensor | int, table_size: int) -> torch.Tensor:
    """Table rows of integer grid ``vertices`` (..., d) at levels of ``resolution`` (broadcast against
    ``vertices[..., 0]``): one to one while a level's (resolution + 1)^d vertices fit the table, hashed
    beyond."""
    dims = vertices.shape[-1]
    side = torch.as_tensor(resolution, device=vertices.device) + 1
    dense = (vertices * torch.stack([side ** i for i in range(dims)], -1).expand_as(vertices)).sum(-1)
    hashed = vertices[..., 0] * PRIMES[0]
    for i in range(1, dims):
        hashed = hashed ^ (vertices[..., i] * PRIMES[i])
    return torch.where(side ** dims <= table_size, dense, hashed & (table_size - 1))


class HashGrid(nn.Module):
    """``levels`` hash tables of 2^``log2_table`` entries of ``features`` each, then ``depth`` ReLU layers
    of ``width`` units and a linear output."""

    def __init__(self, dim_in: int, dim_out: int, width: int = 64, depth: int = 2, levels: int = 16,
                 log2_table: int = 15, features: int = 2, coarsest: int = 16,
                 finest: int | None = None) -> None:
        super().__init__()
        if dim_in not in FINEST:
            raise UserError(f"the hash grid takes 1-D, 2-D or 3-D coordinates, got {dim_in}-D")
        self.table_size = 2 ** log2_table
        self.resolutions = level_resolutions(levels, coarsest, finest or FINEST[dim_in])
        resolution = torch.tensor(self.resolutions, dtype=torch.float32)
        self.register_buffer("resolution", resolution, persistent=False)
        self.table = nn.Parameter(torch.empty(levels, self.table_size, features).uniform_(-1e-4, 1e-4))
        corners = torch.tensor(list(itertools.product((0, 1), repeat=dim_in)))  # (2^d, d), bit i: dim i
        self.register_buffer("corners", corners, persistent=False)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(levels * features if i == 0 else width, width), nn.ReLU()]
        self.head = nn.Sequential(*layers, nn.Linear(width if depth else levels * features, dim_out))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, d) coordinates in [-1, 1] -> (N, levels * features) interpolated table features (every level
        at once: (levels, N, 2^d) vertices, one gather from the flattened tables)."""
        levels, size, features = self.table.shape
        resolution = self.resolution.view(levels, 1, 1)
        position = ((coords + 1) / 2).clamp(0, 1)[None] * resolution  # (L, N, d)
        cell = position.detach().floor().clamp(max=resolution - 1)  # the far edge falls in the last cell
        offset = position - cell  # in [0, 1]: the weights of the cell's upper vertices
        upper = self.corners.bool()  # (2^d, d): per vertex and dimension, the cell's upper side
        weights = torch.where(upper, offset[:, :, None, :], 1 - offset[:, :, None, :]).prod(-1)  # (L, N, 2^d)
        vertices = cell.long()[:, :, None, :] + self.corners  # (L, N, 2^d, d)
        rows = vertex_index(vertices, self.resolution.long().view(levels, 1, 1), size)
        rows = rows + torch.arange(levels, device=rows.device).view(levels, 1, 1) * size
        entries = self.table.view(levels * size, features).index_select(0, rows.flatten()).view(
            *rows.shape, features)
        return (weights[..., None] * entries).sum(2).permute(1, 0, 2).reshape(len(coords), -1)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(coords))
