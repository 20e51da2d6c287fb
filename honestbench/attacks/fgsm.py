"""Fast gradient sign method (Goodfellow et al. 2015): ``x' = clip(x + eps * sign(grad_x CE), 0, 1)``.

One forward and one input-gradient pass (``eot`` of them for a stochastic model). ``eps`` is an L-inf
budget in [0, 1] pixel units (default :data:`honestbench.core.budgets.EPS_LINF`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from honestbench.attacks.base import Attack, input_grad
from honestbench.attacks.registry import register_attack
from honestbench.core.budgets import EPS_LINF


@register_attack("fgsm")
@dataclasses.dataclass
class FGSM(Attack):
    """One signed-gradient step of size ``eps`` from the clean image, clipped to [0, 1]."""

    name: ClassVar[str] = "fgsm"
    norm: ClassVar[str] = "linf"
    description: ClassVar[str] = "FGSM (Goodfellow): one signed-gradient step of size eps"
    roles: ClassVar[frozenset[str]] = frozenset({"single-step", "white-box", "own", "eot"})

    eps: float = EPS_LINF
    eot: int = 1
    loss: str = "ce"

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        grad, _ = input_grad(model, x, y, self.loss, self.eot)
        # x + eps * sign(g) in the same operation order as torchattacks (exact: eps * (+-1) is exact)
        return grad.sign_().mul_(self.eps).add_(x).clamp_(min=0, max=1)
