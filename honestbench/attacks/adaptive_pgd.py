"""The shared shape of the adaptive attacks (Athalye et al. 2018; Tramer et al. 2020): PGD L-inf whose
gradients come from somewhere other than the real model's plain backward pass (:mod:`honestbench.attacks.surrogate`,
:mod:`honestbench.attacks.bpda`, :mod:`honestbench.attacks.transfer`; methods.md, "Adaptive attacks").

Pixels in [0, 1]; ``eps`` and ``alpha`` in the same units (``eps`` default
:data:`honestbench.core.budgets.EPS_LINF`). Each attack touches the target model only through forward/backward passes
inside the base class's ``frozen_eval``; the surrogate / BPDA switches are context managers that restore
every layer on exit.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from honestbench.attacks.base import Attack
from honestbench.attacks.pgd import PGDLinf
from honestbench.core.budgets import EPS_LINF


@dataclasses.dataclass
class AdaptivePGD(Attack):
    """Shared fields: the PGD L-inf budget and schedule (``alpha`` None: 2.5 * eps / steps)."""

    norm: ClassVar[str] = "linf"
    randomized: ClassVar[bool] = True
    roles: ClassVar[frozenset[str]] = frozenset({"adaptive"})

    eps: float = EPS_LINF
    alpha: float | None = None
    steps: int = 100
    random_start: bool = True
    restarts: int = 1
    #: False: every sample does every step (push the loss beyond the first fooling iterate, which the real,
    #: stochastic model may not agree with).
    early_stop: bool = False
    loss: str = "ce"

    def pgd(self, eot: int = 1) -> PGDLinf:
        """Our PGD L-inf kernel with these fields and ``eot`` gradient passes per step."""
        return PGDLinf(eps=self.eps, alpha=self.alpha, steps=self.steps, random_start=self.random_start,
                       restarts=self.restarts, early_stop=self.early_stop, eot=eot, loss=self.loss)

    def cost(self) -> float:
        """``steps x restarts x eot`` forward+backward passes per image (``eot`` 1 for subclasses without it)."""
        return float(self.steps * self.restarts * getattr(self, "eot", 1))

    def effective_eps(self) -> float:
        return self.pgd().effective_eps()
