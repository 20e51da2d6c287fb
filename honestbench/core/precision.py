"""Arithmetic precision of forward and backward passes: the words ``fp32`` and ``bf16``, the autocast they mean,
and a model wrapper that runs under it.

bf16 is ``torch.autocast(device_type, dtype=torch.bfloat16)``: convolutions and matrix products (and their
backward) run in bfloat16, while images, perturbations, input gradients and the returned logits stay float32.
Used by ``bench speed --precision`` and, where the hardware computes bf16 natively, by AutoAttack's standard
flavour (:mod:`honestbench.attacks.autoattack`), whose every claimed break is judged by the float32 model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from honestbench.core.errors import BenchError

PRECISIONS = ("fp32", "bf16")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """``torch.autocast(device.type, dtype=torch.bfloat16)`` for ``bf16``; nothing for ``fp32``."""
    if precision == "fp32":
        yield
    elif precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        raise BenchError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CPU with AVX512-BF16 or AMX (oneDNN says so). A CPU
    without it emulates bf16, slower than fp32; GPUs are left at fp32 (their fp32 is fast enough here)."""
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class AutocastForward(nn.Module):
    """``model`` whose forward runs under :func:`autocast` and returns float32 logits (for libraries that call
    the model themselves: ART, torchattacks); it starts in the wrapped model's mode, and ``train()`` / ``eval()``
    reach the wrapped model."""

    def __init__(self, model: nn.Module, precision: str):
        super().__init__()
        self.model, self.precision = model, precision
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.precision, x.device):
            return self.model(x).float()
