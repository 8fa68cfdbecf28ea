"""Compiled forwards for training and scoring: ``torch.compile``, warmed up off the training clock.

A teacher saves steps; compiling makes each step cheaper, for every teacher alike. Modes:

- ``off``: eager PyTorch;
- ``on``: ``torch.compile`` of the model, which the training step (forward and backward) and the
  no-grad scoring and evaluation passes call;
- ``graphs``: the same, captured as CUDA graphs (``mode="reduce-overhead"``), for a GPU, where a small
  network's step is mostly kernel launches;
- ``auto``: ``on`` for the architectures and step sizes where the committed CPU benchmarks measured it
  to pay (``COMPILE_PAYS``), ``off`` for the rest and on a GPU (not measured there yet).

Compilation happens in a warm-up before the clock starts: one training forward and backward on a batch
of the step's size and one on all examples (so that every later size, such as INT's rising ratio, runs
the dynamic-shape graph compiled there, not a fresh one on the clock), then a scoring pass. The
warm-up never steps the optimizer and draws no random numbers, so a compiled run follows the same path
as an eager one up to float rounding.

Compiled graphs are cached per model class for the whole process, so a second fit of the same model
compiles in milliseconds. Torch keeps at most 8 graphs per model (sizes, grad mode, ...); past that it
warns once and runs the model eagerly. One fit needs 3 to 5; a process that fits many differently
sized models calls ``torch.compiler.reset()`` between them, as the benchmark suites do between cases.
"""

from __future__ import annotations

import torch
from torch import nn

from nteach.errors import UserError

COMPILE_MODES = ("auto", "off", "on", "graphs")

# The architectures whose steps `nteach bench compile` measured at least 10 % faster compiled on the CPU,
# with quality at equal steps within 0.05 dB of eager, or within eager's own float noise where that is
# larger, and from what size of step: its points times the hidden width squared (the multiply-adds of one
# hidden layer). A compiled step pays a fixed cost in guards and calls that its fused kernels win back only
# on enough work. SIREN measured 0.93x at 288 points of width 128 (4.7e6), 1.01x at 1,843 of width 64
# (7.5e6), 1.05x at 720 of width 128 (1.2e7), then 1.15x at 1,440 (2.4e7) and 1.12x at 3,277 (5.4e7); FINER
# 1.02x at 4.7e6, 1.13x at 1.2e7. Each threshold sits between the largest step that did not pay and the
# smallest that did (benchmarks/results/compile-cpu*.json; a test keeps this table and those files in
# agreement). Scoring passes over the pool follow the same rule with the pool's size.
COMPILE_PAYS: dict[str, float] = {"finer": 8e6, "siren": 1.5e7}


def step_work(points: int, width: int) -> float:
    """What ``COMPILE_PAYS`` is compared with: a step's points times the hidden width squared."""
    return float(points) * width * width


def resolve_compile(mode: str, model_name: str, device: torch.device, work: float = float("inf")) -> str:
    """The mode a run uses: ``auto`` made concrete for a step of ``work`` (``step_work``; unknown: large);
    a mode the device cannot run is a UserError."""
    if mode not in COMPILE_MODES:
        raise UserError(f"unknown compile mode {mode!r}; use one of {', '.join(COMPILE_MODES)}")
    if mode == "graphs" and device.type != "cuda":
        raise UserError("--compile graphs captures CUDA graphs: it needs --device cuda")
    if mode == "auto":
        pays = device.type == "cpu" and model_name in COMPILE_PAYS and work >= COMPILE_PAYS[model_name]
        return "on" if pays else "off"
    return mode


def compiled(module: nn.Module, mode: str) -> nn.Module:
    """``module`` compiled for ``mode`` (a resolved one); the same module for ``off``. The compiled
    wrapper shares the module's parameters, so optimizers and checkpoints see no difference."""
    if mode == "off":
        return module
    return torch.compile(module, mode="reduce-overhead" if mode == "graphs" else None)


def mark_step(mode: str) -> None:
    """Tell CUDA graph capture that a new training step begins (its outputs of the last may be reused)."""
    if mode == "graphs":
        torch.compiler.cudagraph_mark_step_begin()

