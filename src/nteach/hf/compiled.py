"""Compiling off the teaching clock when a Trainer runs with ``torch_compile=True``.

The Trainer compiles its model lazily: the first training step would pay for the compilation on the
clock, and each new batch shape (a round's short last batch, a longer padded sequence) for another.
``warm_up`` runs before the first round instead: forwards and backwards of the compiled model at two
batch sizes and lengths (after the second, torch compiles one graph for every size between; a length
neither batch had may still compile once more, on the clock), then
no-grad evaluation-mode forwards likewise, for the scoring passes. It never steps the optimizer,
leaves no gradients behind and puts the random state back, so the run's path does not change. Forward
hooks on the model see these forwards too.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from nteach.timing import synchronize


def _batch(pool, collate: Callable, rows: range, device: torch.device) -> dict:
    """The examples ``rows`` of ``pool`` collated, on ``device``, without labels or indices."""
    batch = collate([pool[i] for i in rows])
    return {name: value.to(device) for name, value in batch.items() if name not in ("idx", "labels")}


def _two_shapes(count: int, size: int) -> tuple[range, range]:
    """A batch of ``size`` from the pool's start and one of half as many from its end: two sizes, and
    (padded to their longest example) most likely two lengths."""
    size = min(size, count)
    half = max(2, size // 2)
    return range(size), range(max(0, count - half), count)


def _logits(outputs) -> torch.Tensor:
    return outputs["logits"] if isinstance(outputs, dict) else outputs[0]


def warm_up(learner: torch.nn.Module, scorer: torch.nn.Module | None, pool, collate: Callable,
            train_size: int, score_size: int, device: torch.device, filters: bool = False) -> float:
    """Compile ``learner``'s training forward and backward (and its no-grad training-mode forward, for
    a teacher that ``filters`` each batch; and ``scorer``'s no-grad forward, if given) on batches of
    ``pool``; the seconds it took."""
    start = time.perf_counter()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # dropout draws here must not shift the run's draws
        was_training = learner.training
        learner.train()
        for rows in _two_shapes(len(pool), train_size):
            _logits(learner(**_batch(pool, collate, rows, device))).float().mean().backward()
            if filters:
                with torch.no_grad():
                    learner(**_batch(pool, collate, rows, device))
        learner.zero_grad(set_to_none=True)
        learner.train(was_training)
        if scorer is not None:
            was_training = scorer.training
            scorer.eval()
            with torch.no_grad():
                for rows in _two_shapes(len(pool), score_size):
                    scorer(**_batch(pool, collate, rows, device))
            scorer.train(was_training)
    synchronize(device)
    return time.perf_counter() - start
