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
    """The model's output on every input, computed ``chunk`` rows at a time without gradients."""
    return torch.cat([model(part) for part in inputs.split(chunk)])


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
    """
    params = _trainable(model)

    def outputs(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (x,))

    v = {name: torch.zeros_like(p) for name, p in params.items()}
    for x, r in zip(inputs.split(chunk), residuals.split(chunk)):
        _, pullback = vjp(lambda p: outputs(p, x), params)
        (grads,) = pullback(r.to(x.dtype))
        for name in v:
            v[name] += grads[name]
    if process_group is not None:
        all_reduce_sum(list(v.values()), process_group)

    products = []
    for x in inputs.split(chunk):
        _, tangent_out = jvp(lambda p: outputs(p, x), (params,), (v,))
        products.append(tangent_out.detach())
    return torch.cat(products)


def ntk_score(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
              chunk: int = 16384, process_group: ProcessGroup | None = None) -> torch.Tensor:
    """NINT's score s_i = sum_c (K r)_{i,c}^2, with r = f(X) - Y.

    With a ``process_group``, the scores of this rank's shard (``inputs``, ``targets``) of a pool
    split over its ranks: gathered in rank order, they are the one-process scores of the pool.
    """
    residuals = predict(model, inputs, chunk) - targets
    w = ntk_product(model, inputs, residuals, chunk, process_group)
    return w.pow(2).flatten(1).sum(dim=1)
