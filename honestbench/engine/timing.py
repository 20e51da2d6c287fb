"""Indicative clean inference time inside ``bench run`` (ms per image at batch 1 and 256); ``bench speed``
measures properly."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from honestbench.attacks.base import frozen_eval
from honestbench.core.rng import seeded_rng

B1_BUDGET_S = 1.0  # at most ~1 s of batch-1 timing per model inside `bench run`


def inference_ms(
    model: nn.Module, x: torch.Tensor, device: torch.device, seed: int = 0, b256: float | None = None
) -> tuple[float, float]:
    """Clean inference time in ms per image (warm model, inference mode): at batch 1 the median over up to
    8 single images (at most ~1 s) after one warm-up; at batch 256 ``b256`` when the caller timed a full
    batch already, else one pass over the images repeated up to 256. Indicative only (``bench speed``
    measures properly): it must stay cheap inside ``bench run``."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    k = min(8, len(x))
    with frozen_eval(model), torch.inference_mode(), seeded_rng(seed, device):
        model(x[:1].to(device, copy=True))
        singles: list[float] = []
        for i in range(k):
            if len(singles) >= 2 and sum(singles) > B1_BUDGET_S:
                break  # a slow (or oversubscribed) model: enough samples for an indicative median
            sync()
            t0 = time.perf_counter()
            model(x[i:i + 1].to(device, copy=True))
            sync()
            singles.append(time.perf_counter() - t0)
        b1 = float(np.median(singles)) * 1000
        if b256 is None:
            big = x[torch.arange(256) % len(x)].to(device)
            sync()
            t0 = time.perf_counter()
            model(big)
            sync()
            b256 = (time.perf_counter() - t0) * 1000 / 256
    return b1, b256

