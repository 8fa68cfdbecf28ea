"""The hash-grid INR: levels, hashing and interpolation by hand, sparse gradients, its NTK product."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, jacrev

from nteach.errors import UserError
from nteach.inr.hashgrid import HashGrid, level_resolutions, vertex_index
from nteach.teaching.scores import ntk_product


def test_level_resolutions_grow_geometrically():
    assert level_resolutions(3, 2, 8) == [2, 4, 8]
    assert level_resolutions(16, 16, 512)[0] == 16 and level_resolutions(16, 16, 512)[-1] == 512


def test_vertices_are_indexed_one_to_one_while_they_fit_and_hashed_beyond():
    assert vertex_index(torch.tensor([[1, 2]]), resolution=2, table_size=16).item() == 1 + 2 * 3
    # (3 * 1) xor (5 * 2654435761), mod 16: 2654435761 = 0x9E3779B1 ends in 1, so 5 * it ends in 5; 3 ^ 5 = 6
    assert vertex_index(torch.tensor([[3, 5]]), resolution=100, table_size=16).item() == 6
    assert vertex_index(torch.tensor([[7]]), resolution=100, table_size=64).item() == 7  # 1-D: the prime is 1


def one_level(dim_in: int, resolution: int, values: list[float]) -> HashGrid:
    model = HashGrid(dim_in, 1, width=4, depth=1, levels=1, log2_table=2 if dim_in == 2 else 3, features=1,
                     coarsest=resolution)
    with torch.no_grad():
        model.table.zero_()
        model.table[0, :len(values), 0] = torch.tensor(values)
    return model


def test_linear_interpolation_in_1d_by_hand():
    model = one_level(1, 2, [0.0, 10.0, 20.0])  # vertices at u = 0, 0.5, 1
    x = torch.tensor([[0.0], [-0.5], [1.0], [-1.0]])  # u = 0.5, 0.25, 1, 0
    assert model.encode(x)[:, 0].tolist() == [10.0, 5.0, 20.0, 0.0]


def test_bilinear_interpolation_in_2d_by_hand():
    model = one_level(2, 1, [0.0, 1.0, 2.0, 3.0])  # vertex (a, b) holds a + 2 b: a linear function
    x = torch.tensor([[0.0, 0.0], [-0.5, 0.5]])  # u = (0.5, 0.5), (0.25, 0.75)
    torch.testing.assert_close(model.encode(x)[:, 0], torch.tensor([1.5, 0.25 + 2 * 0.75]))


def test_gradients_reach_only_the_entries_around_the_coordinates():
    torch.manual_seed(0)
    model = HashGrid(2, 3, width=8, depth=1, levels=4, log2_table=10, coarsest=4, finest=64)
    x = torch.rand(5, 2) * 2 - 1
    model(x).square().sum().backward()
    for level, resolution in enumerate(model.resolutions):
        cell = ((x + 1) / 2 * resolution).floor().clamp(max=resolution - 1).long()
        touched = vertex_index(cell[:, None, :] + model.corners[None], resolution, model.table_size).unique()
        moved = model.table.grad[level].abs().sum(-1).nonzero().flatten()
        assert set(moved.tolist()) <= set(touched.tolist()) and len(moved) > 0


def test_ntk_product_matches_the_materialised_jacobian_on_a_tiny_grid():
    torch.manual_seed(0)
    model = HashGrid(2, 2, width=6, depth=1, levels=3, log2_table=5, coarsest=2, finest=16).double()
    x = torch.rand(9, 2, dtype=torch.float64) * 2 - 1
    r = torch.randn(9, 2, dtype=torch.float64)
    params = {name: p.detach() for name, p in model.named_parameters()}
    jacobian = jacrev(lambda p: functional_call(model, p, (x,)))(params)
    J = torch.cat([j.reshape(r.numel(), -1) for j in jacobian.values()], dim=1)
    expected = (J @ (J.T @ r.reshape(-1))).reshape(r.shape)
    torch.testing.assert_close(ntk_product(model, x, r, chunk=4), expected)


def test_coordinates_get_gradients_and_bad_dimensions_are_refused():
    model = HashGrid(3, 1, width=8, depth=1, levels=2, log2_table=8)
    x = (torch.rand(4, 3) * 2 - 1).requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(UserError, match="1-D, 2-D or 3-D"):
        HashGrid(4, 1)


def test_the_table_size_reaches_the_model_from_the_fit_options():
    from nteach.inr.models import make_model

    assert make_model("hashgrid", 2, 3, width=8, depth=1, table_log2=10).table.shape == (16, 1024, 2)
    with pytest.raises(UserError, match="table_log2"):
        make_model("hashgrid", 2, 3, table_log2=30)
