import math

import pytest
import torch
from torch.func import functional_call, jacrev

from nteach.errors import UserError
from nteach.inr.models import LEARNING_RATES, MODELS, FinerLayer, make_model
from nteach.inr.signals import grid
from nteach.teaching.scores import ntk_product

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("dim_in, dim_out", [(2, 3), (1, 1)])
def test_models_map_float_coordinates_to_float_outputs(name, dim_in, dim_out):
    torch.manual_seed(0)
    model = make_model(name, dim_in, dim_out, width=16, depth=2)
    out = model(torch.rand(5, dim_in) * 2 - 1)
    assert out.shape == (5, dim_out) and out.dtype == torch.float32


def test_learning_rates():
    assert LEARNING_RATES == {"siren": 1e-4, "ffn": 1e-3, "pe": 1e-3, "finer": 5e-4,
                              "gauss": 5e-3, "wire": 5e-3, "hashgrid": 1e-2}


def test_make_model_rejects_bad_names_and_sizes():
    with pytest.raises(UserError, match="unknown model 'mlp'"):
        make_model("mlp", 2, 3)
    for width, depth in [(0, 2), (16, 0), (-1, 2)]:
        with pytest.raises(UserError, match="must be > 0"):
            make_model("ffn", 2, 3, width=width, depth=depth)


def test_omega_0_reaches_siren_and_finer_only():
    assert make_model("finer", 2, 1, width=8, depth=2, omega_0=10.0).body[1].omega_0 == 10.0
    assert make_model("siren", 2, 1, width=8, depth=2, omega_0=10.0).body[1].omega_0 == 10.0
    wire = make_model("wire", 2, 1, width=8, depth=2, omega_0=10.0)
    assert [layer.omega_0 for layer in wire.body] == [20.0, 20.0]
    assert [layer.s_0 for layer in wire.body] == [10.0, 10.0]


def test_ffn_gaussian_matrix_is_a_fixed_seeded_buffer():
    torch.manual_seed(0)
    model = make_model("ffn", 2, 3, width=16, depth=2)
    assert model.B.shape == (2, 256) and model.B.std().item() == pytest.approx(10.0, rel=0.15)
    assert "B" in dict(model.named_buffers()) and "B" in model.state_dict()
    assert all(p is not model.B for p in model.parameters())
    assert not model.B.requires_grad
    torch.manual_seed(0)
    assert torch.equal(make_model("ffn", 2, 3, width=16, depth=2).B, model.B)
    assert not torch.equal(make_model("ffn", 2, 3, width=16, depth=2).B, model.B)
    x = torch.tensor([[0.1, -0.3]])
    angles = 2 * math.pi * (0.1 * model.B[0] - 0.3 * model.B[1])
    assert torch.allclose(model.encode(x), torch.cat([angles.sin(), angles.cos()])[None], atol=1e-4)


def test_pe_features_by_hand():
    model = make_model("pe", 2, 1, width=8, depth=1)
    features = model.encode(torch.tensor([[0.25, -0.5]]))[0]
    assert features.shape == (2 * 21,)
    h = math.sqrt(0.5)
    # angles 2^k pi x: x = 0.25 gives pi/4, pi/2, pi, 2 pi, ...; x = -0.5 gives -pi/2, -pi, -2 pi, ...
    sin_a, cos_a = [h, 1, 0] + [0] * 7, [h, 0, -1] + [1] * 7
    sin_b, cos_b = [-1, 0] + [0] * 8, [0, -1] + [1] * 8
    expected = torch.tensor([0.25, -0.5] + sin_a + sin_b + cos_a + cos_b)
    assert torch.allclose(features, expected, atol=1e-4)


def test_finer_activation_matches_formula():
    layer = FinerLayer(1, 1, omega_0=30.0)
    with torch.no_grad():
        layer.linear.weight.fill_(1.0)
        layer.linear.bias.zero_()
    z = [-1.5, -0.2, 0.0, 0.1, 0.3, 2.0]
    expected = torch.tensor([[math.sin(30 * (abs(v) + 1) * v)] for v in z])
    assert torch.allclose(layer(torch.tensor(z)[:, None]), expected, atol=1e-4)
    assert layer(torch.tensor([[0.1]])).item() == pytest.approx(math.sin(3.3), abs=1e-5)


def test_finer_initialisation_bounds():
    torch.manual_seed(0)
    width = 128
    model = make_model("finer", 2, 3, width=width, depth=3)
    first = model.body[0].linear
    assert 0.9 / 2 < first.weight.abs().max() <= 1 / 2
    assert 0.9 < first.bias.abs().max() <= 1.0  # FINER's U(-1, 1), wider than PyTorch's 1/sqrt(2)
    bound = math.sqrt(6 / width) / 30
    for layer in model.body[1:]:
        assert 0.9 * bound < layer.linear.weight.abs().max() <= bound
        assert layer.linear.bias.abs().max() <= 1 / math.sqrt(width)
    assert model.head.weight.abs().max() <= bound


def test_wire_is_complex_inside_with_reduced_width():
    model = make_model("wire", 2, 3, width=32, depth=3)
    assert [layer.linear.out_features for layer in model.body] == [22, 22, 22]
    assert model.body[0].linear.weight.dtype == torch.float32
    assert {layer.linear.weight.dtype for layer in model.body[1:]} == {torch.cfloat}
    assert model.head.weight.dtype == torch.cfloat
    assert model.body(torch.zeros(4, 2)).dtype == torch.cfloat


def _explicit_ntk_product(model, x, r):
    """J J^T r with J the Jacobian over parameters, complex ones counted as (real, imag) pairs."""
    params = {k: p.detach() for k, p in model.named_parameters()}
    real = {k: torch.view_as_real(p) if p.is_complex() else p for k, p in params.items()}

    def outputs(theta):
        p, i = {}, 0
        for k, v in real.items():
            piece = theta[i:i + v.numel()].view(v.shape)
            i += v.numel()
            p[k] = torch.complex(piece[..., 0], piece[..., 1]) if params[k].is_complex() else piece
        return functional_call(model, p, (x,)).flatten()

    jacobian = jacrev(outputs)(torch.cat([v.flatten() for v in real.values()]))
    return (jacobian @ (jacobian.T @ r.flatten())).view(r.shape)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_ntk_product_matches_explicit_jacobian(name):
    torch.manual_seed(0)
    model = make_model(name, 2, 3, width=8, depth=2)
    x, r = torch.rand(10, 2) * 2 - 1, torch.randn(10, 3)
    w = ntk_product(model, x, r, chunk=4)
    assert w.shape == (10, 3) and w.dtype == torch.float32
    assert torch.allclose(w, _explicit_ntk_product(model, x, r), rtol=1e-4, atol=1e-5 * w.abs().max())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_fits_a_tiny_image(name):
    coords = grid((16, 16))
    rows, cols = coords[:, :1], coords[:, 1:]
    image = 0.25 * (cols + 1) + 0.25 + 0.2 * torch.sin(3 * math.pi * rows)  # gradient plus sine
    torch.manual_seed(0)
    model = make_model(name, 2, 1, width=32, depth=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATES[name])
    with torch.no_grad():
        before = (model(coords) - image).pow(2).mean().item()
    for _ in range(150):
        optimizer.zero_grad()
        loss = (model(coords) - image).pow(2).mean()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = (model(coords) - image).pow(2).mean().item()
    assert after <= 0.5 * before


def test_first_omega_0_sets_only_the_first_layer():
    for name in ("siren", "finer"):
        model = make_model(name, 1, 1, width=8, depth=3, omega_0=30.0, first_omega_0=3000.0)
        assert [layer.omega_0 for layer in model.body] == [3000.0, 30.0, 30.0]
        assert model.body[0].linear.weight.abs().max() <= 1.0  # first-layer init U(-1/dim_in, 1/dim_in)
    assert make_model("siren", 1, 1, width=8, depth=2).body[0].omega_0 == 30.0
    with pytest.raises(UserError, match="must be > 0"):
        make_model("siren", 1, 1, first_omega_0=0.0)
