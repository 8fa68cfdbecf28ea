"""Per-example scores for teachers: L1 residual and the NTK-augmented score.

Everything is chunked over examples so that memory stays bounded for
millions of coordinates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call, jvp, vjp

from nteach.teaching.distributed import all_reduce_sum

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """The model's output on every input, computed ``chunk`` rows at a time without gradients.

    Each chunk's output is copied out before the next chunk runs: a model compiled with CUDA graphs
    (``--compile graphs``) starts a new iteration at each no-grad call and reuses its output memory."""
    parts = inputs.split(chunk)
    first = model(parts[0])
    outputs = first.new_empty((len(inputs), *first.shape[1:]))
    outputs[:len(first)] = first
    start = len(first)
    for part in parts[1:]:
        outputs[start:start + len(part)] = model(part)
        start += len(part)
    return outputs


def l1_residual(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """s_i = sum over channels of |f(x_i) - y_i| (INT's score)."""
    return (predictions - targets).abs().flatten(1).sum(dim=1)


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def ntk_product(model: nn.Module, inputs: torch.Tensor, residuals: torch.Tensor,
                chunk: int = 16384, process_group: ProcessGroup | None = None) -> torch.Tensor:
    """w = K r with K = J J^T, matrix-free: v = J^T r by VJPs, then w = J v by JVPs.

    J is the Jacobian of the flattened outputs over all trainable parameters.
    J^T r is a sum of per-chunk VJPs; J v is computed chunk by chunk.
    With a ``process_group``, ``inputs`` and ``residuals`` are this rank's shard of the pool:
    J^T r, a sum over examples, is summed over the ranks too (one all_reduce of as many
    numbers as the model has parameters), J v stays local, and w is this shard's part of K r.

    A model that torch.func cannot transform (a custom autograd.Function without ``setup_context``
    or a forward-mode rule, as fused CUDA kernels such as tiny-cuda-nn's are) gets the same product
    from plain backward passes and a central difference of two forwards for J v.
    """
    params = _trainable(model)

    def outputs(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (x,))

    try:
        return _product(outputs, params, inputs, residuals, chunk, process_group, _func_vjp, _func_jvp)
    except (RuntimeError, NotImplementedError):
        return _product(outputs, params, inputs, residuals, chunk, process_group, _autograd_vjp,
                        _difference_jvp)


def _product(outputs, params, inputs, residuals, chunk, process_group, transpose, forward) -> torch.Tensor:
    v = {name: torch.zeros_like(p) for name, p in params.items()}
    for x, r in zip(inputs.split(chunk), residuals.split(chunk)):
        grads = transpose(outputs, params, x, r.to(x.dtype))
        for name in v:
            v[name] += grads[name]
    if process_group is not None:
        all_reduce_sum(list(v.values()), process_group)
    return torch.cat([forward(outputs, params, v, x).detach() for x in inputs.split(chunk)])


def _func_vjp(outputs, params, x, r):
    _, pullback = vjp(lambda p: outputs(p, x), params)
    return pullback(r)[0]


def _func_jvp(outputs, params, v, x):
    return jvp(lambda p: outputs(p, x), (params,), (v,))[1]


def _autograd_vjp(outputs, params, x, r):
    live = {name: p.detach().requires_grad_() for name, p in params.items()}
    grads = torch.autograd.grad(outputs(live, x), list(live.values()), r, allow_unused=True)
    return {name: torch.zeros_like(p) if g is None else g for (name, p), g in zip(live.items(), grads)}


@torch.no_grad()
def _difference_jvp(outputs, params, v, x):
    """J v ~ (f(p + e v) - f(p - e v)) / 2e, e scaled so that e v is a cube-root-of-epsilon step."""
    size = torch.sqrt(sum(t.pow(2).sum() for t in v.values()))
    if size == 0:
        return torch.zeros_like(outputs(params, x))
    scale = 1.0 + torch.sqrt(sum(p.pow(2).sum() for p in params.values()))
    step = torch.finfo(x.dtype).eps ** (1 / 3) * scale / size
    plus = {name: p + step * v[name] for name, p in params.items()}
    minus = {name: p - step * v[name] for name, p in params.items()}
    return (outputs(plus, x) - outputs(minus, x)) / (2 * step)


def ntk_score(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
              chunk: int = 16384, process_group: ProcessGroup | None = None) -> torch.Tensor:
    """NINT's score s_i = sum_c (K r)_{i,c}^2, with r = f(X) - Y.

    With a ``process_group``, the scores of this rank's shard (``inputs``, ``targets``) of a pool
    split over its ranks: gathered in rank order, they are the one-process scores of the pool.
    """
    residuals = predict(model, inputs, chunk) - targets
    w = ntk_product(model, inputs, residuals, chunk, process_group)
    return w.pow(2).flatten(1).sum(dim=1)
