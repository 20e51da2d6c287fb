"""``surrogate-pgd``: PGD (our kernel, :class:`honestbench.attacks.pgd.PGDLinf`) or APGD (torchattacks) run on the
model inside :func:`honestbench.nets.surrogate`, every stochastic layer replaced by its smooth deterministic
stand-in (LWTA ``h * softmax(h_block / T)``, PNI and smoothing without noise). The harness then evaluates the
adversarial images on the real, stochastic model. L-inf, pixels in [0, 1], ``eps`` in the same units.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from honestbench.attacks.adaptive_pgd import AdaptivePGD
from honestbench.attacks.autoattack import AutoAttack
from honestbench.attacks.registry import register_attack
from honestbench.core.errors import AttackConfigError
from honestbench.nets import surrogate

KERNELS = ("pgd", "apgd")


@register_attack("surrogate-pgd")
@dataclasses.dataclass
class SurrogatePGD(AdaptivePGD):
    """PGD (``kernel='pgd'``, our kernel) or APGD (``kernel='apgd'``, torchattacks; ``loss`` ce -> APGD-CE,
    margin -> APGD-DLR) on the smooth deterministic surrogate of the model at ``temperature``; the images are
    meant to be evaluated on the real model. Equal to plain PGD on a model without stochastic layers."""

    name: ClassVar[str] = "surrogate-pgd"
    description: ClassVar[str] = "PGD/APGD on the smooth deterministic surrogate, evaluated on the real model"
    roles: ClassVar[frozenset[str]] = frozenset({"adaptive", "own"})

    temperature: float = 1.0
    kernel: str = "pgd"

    def validate(self) -> None:
        super().validate()
        if not self.temperature > 0:
            raise AttackConfigError(f"{self.name}: temperature must be > 0, got {self.temperature}")
        if self.kernel not in KERNELS:
            raise AttackConfigError(f"{self.name}: kernel must be one of {KERNELS}, got {self.kernel!r}")

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        with surrogate(model, temperature=self.temperature):
            if self.kernel == "pgd":
                return self.pgd().perturb(model, x, y, generator)
            comp = "apgd-ce" if self.loss == "ce" else "apgd-dlr"
            aa = AutoAttack(norm="linf", eps=self.eps, components=comp, steps=self.steps)
            out = aa.perturb(model, x, y, generator)
            for _ in range(self.restarts - 1):  # restart the samples the surrogate still classifies right
                out = _keep_fooled(model, x, y, out, aa, generator)
            return out


def _keep_fooled(model, x, y, prev, attack, generator) -> torch.Tensor:
    with torch.no_grad():
        alive = (model(prev).argmax(1) == y).nonzero().squeeze(1)
    if alive.numel():
        prev = prev.clone()
        prev[alive] = attack.perturb(model, x[alive], y[alive], generator)
    return prev
