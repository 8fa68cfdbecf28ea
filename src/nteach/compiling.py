"""Compiled forwards for training and scoring: ``torch.compile``, warmed up off the training clock.

A teacher saves steps; compiling makes each step cheaper, for every teacher alike. Modes:

- ``off``: eager PyTorch;
- ``on``: ``torch.compile`` of the model, which the training step (forward and backward) and the
  no-grad scoring and evaluation passes call;
- ``graphs``: the same, captured as CUDA graphs (``mode="reduce-overhead"``), for a GPU, where a small
  network's step is mostly kernel launches;
- ``auto``: ``on`` for the architectures where the committed CPU benchmark measured it to pay (see
  ``COMPILE_PAYS``), ``off`` for the rest and on a GPU (not measured there yet).

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
# larger (benchmarks/results/compile-cpu.json; a test keeps this set and that file in agreement).
COMPILE_PAYS: frozenset[str] = frozenset({"finer", "siren"})


def resolve_compile(mode: str, model_name: str, device: torch.device) -> str:
    """The mode a run uses: ``auto`` made concrete; a mode the device cannot run is a UserError."""
    if mode not in COMPILE_MODES:
        raise UserError(f"unknown compile mode {mode!r}; use one of {', '.join(COMPILE_MODES)}")
    if mode == "graphs" and device.type != "cuda":
        raise UserError("--compile graphs captures CUDA graphs: it needs --device cuda")
    if mode == "auto":
        return "on" if device.type == "cpu" and model_name in COMPILE_PAYS else "off"
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

