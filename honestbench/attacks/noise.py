"""Random noise inside the L-inf ball: the baseline every gradient attack must beat.

``dist='uniform'``: each pixel moves by U(-eps, eps). ``dist='gaussian'``: N(0, sigma^2) per pixel
(``sigma`` None means ``eps / 2``), clipped to the ball. Then clipped to [0, 1]. With ``samples > 1`` the
attack draws up to that many noise images per sample and keeps the first one that fools the model
(samples already fooled are not drawn again). Units: pixels in [0, 1], ``eps`` and ``sigma`` in the same units.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from honestbench.attacks.base import Attack, project_linf_
from honestbench.attacks.registry import register_attack
from honestbench.core.budgets import EPS_LINF
from honestbench.core.errors import AttackConfigError

DISTS = ("uniform", "gaussian")


@register_attack("noise")
@dataclasses.dataclass
class Noise(Attack):
    """Uniform (or Gaussian) noise in the L-inf ball of radius ``eps``; no gradient."""

    name: ClassVar[str] = "noise"
    norm: ClassVar[str] = "linf"
    description: ClassVar[str] = "random noise in the L-inf ball (uniform or gaussian): the baseline"
    randomized: ClassVar[bool] = True

    eps: float = EPS_LINF
    dist: str = "uniform"
    sigma: float | None = None
    samples: int = 1

    def validate(self) -> None:
        super().validate()
        if self.dist not in DISTS:
            raise AttackConfigError(f"{self.name}: unknown dist {self.dist!r}, choose one of {DISTS}")

    def cost(self) -> float:
        """No gradient: half a forward+backward pass per image."""
        return 0.5

    def _draw(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.dist == "uniform":
            noise = torch.empty_like(x).uniform_(-self.eps, self.eps, generator=generator)
        else:
            sigma = self.eps / 2 if self.sigma is None else self.sigma
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype).mul_(sigma)
        return project_linf_(noise.add_(x), x, self.eps)

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        out = self._draw(x, generator)
        if self.samples == 1:
            return out
        with torch.no_grad():
            todo = (model(out).argmax(1) == y).nonzero().squeeze(1)
            for _ in range(self.samples - 1):
                if todo.numel() == 0:
                    break
                cand = self._draw(x[todo], generator)
                out.index_copy_(0, todo, cand)
                todo = todo[model(cand).argmax(1) == y[todo]]
        return out
