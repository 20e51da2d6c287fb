"""The certified-training loss of the ``certified`` recipe: interval bound propagation (Gowal et al. 2018) or
CROWN-IBP (Zhang et al. 2020) on the training batch. Budgets in [0, 1] pixel units.

Schedule by epoch (fractional, per iteration): ``warmup_epochs`` of clean training, then over ``ramp_epochs``
the training budget rises linearly from 0 to ``eps * eps_train_scale``, the clean share ``kappa`` of the loss
falls from 1 to ``kappa_end`` and (CROWN-IBP) the CROWN share ``beta`` falls from 1 to 0; then all three
hold. Loss = ``kappa * CE(f(x), y) + (1 - kappa) * CE(-m, y)`` with ``m`` the lower bounds of the margins
``f_y - f_j`` (0 at ``j = y``): the worst-case logits of Gowal et al.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from honestbench.certify.bounds import margin_bounds
from honestbench.certify.graph import build_graph
from honestbench.train.recipe import Recipe


def ramp(epoch: float, warmup: float, length: float) -> float:
    """0 before ``warmup``, then linear to 1 over ``length`` epochs."""
    if epoch <= warmup:
        return 0.0
    return 1.0 if length <= 0 else min(1.0, (epoch - warmup) / length)


class CertifiedLoss:
    """The loss above for ``model`` (plain ReLU network: :mod:`honestbench.certify` must bound it)."""

    def __init__(self, model: nn.Module, recipe: Recipe, steps_per_epoch: int):
        self.graph = build_graph(model)
        self.r, self.steps_per_epoch = recipe, max(steps_per_epoch, 1)

    def schedule(self, step: int) -> tuple[float, float, float]:
        """(training eps, kappa, beta) at optimiser step ``step``."""
        r = self.r
        t = ramp(step / self.steps_per_epoch, r.warmup_epochs, r.ramp_epochs)
        return r.eps * r.eps_train_scale * t, 1.0 - (1.0 - r.kappa_end) * t, (1.0 - t) if r.bound == "crown-ibp" \
            else 0.0

    def __call__(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        eps, kappa, beta = self.schedule(step)
        clean = F.cross_entropy(logits.float(), y)
        if eps <= 0:
            return clean
        lb = margin_bounds(self.graph, x, y, eps, refine=False, relax_final=False)
        if beta > 0:
            lb = beta * margin_bounds(self.graph, x, y, eps, refine=False, relax_final=True) + (1 - beta) * lb
        worst = -lb.scatter(1, y.unsqueeze(1), 0.0)
        return kappa * clean + (1 - kappa) * F.cross_entropy(worst, y)
