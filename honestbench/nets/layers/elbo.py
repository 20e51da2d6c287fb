"""The ELBO of the Bayesian defence layers (LWTA, IBP): cross-entropy plus the KL terms the layers store in
``self.kl`` during a training forward pass, scaled by the training-set size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from honestbench.nets.layers.stochastic import StochasticLayer


def model_kl(model: nn.Module) -> torch.Tensor:
    """Sum of the KL terms stored by the model's LWTA / IBP layers in the last training forward pass."""
    total = None
    for m in model.modules():
        kl = getattr(m, "kl", None)
        if isinstance(m, StochasticLayer) and isinstance(kl, torch.Tensor) and kl.requires_grad:
            total = kl if total is None else total + kl
    if total is None:
        p = next(model.parameters())
        return torch.zeros((), device=p.device)
    return total


def elbo_loss(logits: torch.Tensor, y: torch.Tensor, model: nn.Module, n_train: int,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """Negative ELBO per sample: mean cross-entropy + (sum of the layers' KL) / ``n_train``."""
    ce = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return ce + model_kl(model) / n_train
