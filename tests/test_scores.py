import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from nteach.inr.models import Siren
from nteach.teaching.scores import l1_residual, ntk_product, ntk_score, predict


def materialised_ntk_times_residual(model: nn.Module, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Build the full Jacobian J ((N*C) x P), then K r = J J^T r explicitly."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (x,)))(params)
    J = torch.cat([j.reshape(r.numel(), -1) for j in jac.values()], dim=1)
    return (J @ (J.T @ r.reshape(-1))).reshape(r.shape)


def tiny_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def test_ntk_product_matches_materialised_jacobian():
    model = tiny_mlp()
    x = torch.rand(11, 2, dtype=torch.float64) * 2 - 1
    r = torch.randn(11, 3, dtype=torch.float64)
    expected = materialised_ntk_times_residual(model, x, r)
    got = ntk_product(model, x, r)
    assert torch.linalg.norm(got - expected) / torch.linalg.norm(expected) < 1e-4


def test_ntk_product_on_siren_float32():
    torch.manual_seed(1)
    model = Siren(2, 1, width=16, depth=3)
    x = torch.rand(20, 2) * 2 - 1
    r = torch.randn(20, 1)
    expected = materialised_ntk_times_residual(model, x, r)
    got = ntk_product(model, x, r)
    assert torch.linalg.norm(got - expected) / torch.linalg.norm(expected) < 1e-4


def test_chunked_equals_unchunked():
    model = tiny_mlp()
    x = torch.rand(50, 2, dtype=torch.float64)
    y = torch.rand(50, 3, dtype=torch.float64)
    whole = ntk_score(model, x, y, chunk=1000)
    chunked = ntk_score(model, x, y, chunk=7)
    torch.testing.assert_close(chunked, whole, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(predict(model, x, chunk=7), predict(model, x, chunk=1000))


def test_ntk_score_is_squared_norm_of_k_r():
    model = tiny_mlp()
    x = torch.rand(9, 2, dtype=torch.float64)
    y = torch.rand(9, 3, dtype=torch.float64)
    w = materialised_ntk_times_residual(model, x, model(x).detach() - y)
    torch.testing.assert_close(ntk_score(model, x, y), (w**2).sum(dim=1))


def test_l1_residual_by_hand():
    predictions = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.25]])
    targets = torch.tensor([[0.0, 1.0, 0.5], [1.0, 1.0, 0.0]])
    assert l1_residual(predictions, targets).tolist() == [1.0, 1.25]


class OldStyleSine(torch.autograd.Function):
    """A custom op written the way fused CUDA kernels are (tiny-cuda-nn's): forward(ctx, ...), no
    setup_context, no forward-mode rule, so torch.func cannot transform it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x.cos()


class FusedLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.first, self.last = nn.Linear(2, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.last(OldStyleSine.apply(self.first(x)))


def test_ntk_product_of_a_model_torch_func_cannot_transform():
    torch.manual_seed(0)
    model = FusedLike().double()
    x = torch.rand(9, 2, dtype=torch.float64) * 2 - 1
    r = torch.randn(9, 3, dtype=torch.float64)
    params = dict(model.named_parameters())
    with pytest.raises(RuntimeError, match="setup_context"):
        jacrev(lambda p: functional_call(model, p, (x,)))({n: p.detach() for n, p in params.items()})
    outputs = model(x).reshape(-1)  # the Jacobian row by row, by plain backward passes
    J = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(o, list(params.values()),
                                                                          retain_graph=True)])
                     for o in outputs])
    expected = (J @ (J.T @ r.reshape(-1))).reshape(r.shape)
    got = ntk_product(model, x, r, chunk=4)
    assert torch.linalg.norm(got - expected) / torch.linalg.norm(expected) < 1e-8


class ReusedOutput(nn.Module):
    """Writes every call's output into one buffer, as a model replayed from a CUDA graph does."""

    def __init__(self):
        super().__init__()
        self.buffer = torch.empty(0)

    def forward(self, x):
        if self.buffer.shape != (len(x), 2):
            self.buffer = torch.empty(len(x), 2)
        return self.buffer.copy_(torch.stack([x.sum(dim=1), x.prod(dim=1)], dim=1))


def test_predict_keeps_each_chunk_when_the_model_reuses_its_output_memory():
    inputs = torch.randn(10, 3)
    expected = torch.stack([inputs.sum(dim=1), inputs.prod(dim=1)], dim=1)
    assert torch.equal(predict(ReusedOutput(), inputs, chunk=4), expected)  # chunks of 4, 4 and 2
    assert torch.equal(predict(ReusedOutput(), inputs, chunk=5), expected)  # two chunks that share the buffer
