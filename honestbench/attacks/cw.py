"""Carlini & Wagner (2017) L2 attack: the smallest L2 perturbation that fools the model.

Change of variable ``x' = (tanh(w) + 1) / 2`` (so ``x'`` stays in [0, 1]); Adam over ``w`` minimises, per
sample, ``||x' - x||_2^2 + c * max(Z_y(x') - max_{j != y} Z_j(x'), -kappa) + lam * ||w||_2^2`` with ``Z`` the
logits and the true class masked with -inf (right with negative logits, unlike torchattacks' CW).

Modes: ``'search'`` (standard): ``search_steps`` rounds of ``steps`` Adam steps, binary search over ``c``
per sample starting at ``c`` (x10 until a first success, then bisection); ``'fixed'``: one round at the given
``c`` (the report's variant uses c = 1e-4, kappa = 0.01). Per sample the attack keeps the smallest successful
perturbation (success = margin < -kappa) over every step of every round.

What it returns: CW is a minimum-norm attack, so ``__call__`` gives an image within the L2 ``threshold``
(default :data:`honestbench.core.budgets.EPS_L2`, methods.md's "robust at L2 <= 0.5"): the smallest adversarial
image when its norm is <= threshold, else the clean image. The unthresholded result is returned two ways:
:meth:`CWL2.minimize` gives a :class:`CWResult` (images, norms, success), and :meth:`CWL2.run` (the engine's
entry) an :class:`~honestbench.attacks.base.AttackOutput` whose ``raw_norms`` are the per-sample norms (``inf``
where no adversarial image was found, 0 where the clean image already fools the model). ``threshold=None``
returns the unthresholded images. Units: pixels in [0, 1]; norms are Euclidean norms of the whole-image perturbation.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from honestbench.attacks.base import (
    Attack,
    AttackOutput,
    _per_sample,
    check_inputs,
    frozen_eval,
    l2_norm,
    margin,
)
from honestbench.attacks.params import param
from honestbench.attacks.registry import register_attack
from honestbench.core.budgets import EPS_L2

MODES = ("search", "fixed")
#: arctanh argument scale, so pixels at exactly 0 or 1 stay movable (Carlini's reference code, ART)
TANH_SMOOTHER = 0.999999
C_UPPER = 1e10  # binary search: "no success yet" upper bound on c
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclasses.dataclass
class CWResult:
    """Unthresholded CW output: ``x_adv`` the smallest adversarial image found (the clean image where none),
    ``norms`` its L2 distance to ``x`` (inf where none), ``success`` a bool per sample."""

    x_adv: torch.Tensor
    norms: torch.Tensor
    success: torch.Tensor


@register_attack("cw-l2")
@dataclasses.dataclass
class CWL2(Attack):
    """CW-L2 with binary search over ``c`` (or fixed ``c``); returns the smallest adversarial image when it
    lies within ``threshold``, else the clean image (see the module docstring)."""

    name: ClassVar[str] = "cw-l2"
    norm: ClassVar[str] = "l2"
    description: ClassVar[str] = "Carlini-Wagner L2 (Adam, binary search over c), robust at L2 <= threshold"
    roles: ClassVar[frozenset[str]] = frozenset({"eot", "minimum-norm"})

    c: float = 0.1
    kappa: float = 0.0
    lam: float = 0.0
    steps: int = 100
    lr: float = 0.01
    search_steps: int = 9
    mode: str = param("search", choices=MODES)
    threshold: float | None = EPS_L2

    def cost(self) -> float:
        """``steps`` Adam steps per round: ``search_steps`` rounds in search mode, one with a fixed ``c``."""
        return float(self.steps * (self.search_steps if self.mode == "search" else 1))

    @property
    def budget(self) -> float | None:
        """The L2 threshold: returned images are within it (None = unbounded minimum-norm attack)."""
        return self.threshold

    # -- public entry for the unthresholded result
    def minimize(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> CWResult:
        """The smallest adversarial image per sample (not thresholded), its norm and success flag."""
        check_inputs(x, y)
        with frozen_eval(model):
            return self._minimize(model, x.detach(), y)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: torch.Generator | None = None) -> AttackOutput:
        """The thresholded images (as calling the attack gives) and the unthresholded norms (``raw_norms``)."""
        res = self.minimize(model, x, y)
        x_adv = self._within(res, x.detach()).detach()
        self.check_output(x_adv, x)
        return AttackOutput(x_adv, res.norms)

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        return self._within(self._minimize(model, x, y), x)

    def _within(self, res: CWResult, x: torch.Tensor) -> torch.Tensor:
        """The smallest adversarial image where its norm is within ``threshold``, else the clean image."""
        if self.threshold is None:
            return res.x_adv
        within = res.norms <= self.threshold
        return torch.where(_per_sample(within, x), res.x_adv, x)

    # -- the optimisation
    def _minimize(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> CWResult:
        n = len(x)
        best = x.clone()
        norms = torch.full((n,), float("inf"), device=x.device)
        with torch.no_grad():
            already = margin(model(x), y) < -self.kappa  # the clean image is adversarial: distance 0
        norms[already] = 0.0
        act = (~already).nonzero().squeeze(1)
        if act.numel():
            xs, ys = x[act], y[act]
            adv, d = self._optimise(model, xs, ys)
            best.index_copy_(0, act, adv)
            norms.index_copy_(0, act, d)
        return CWResult(best, norms, torch.isfinite(norms))

    def _optimise(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Adam in tanh space for every sample of ``x`` (all still benign); returns best images and norms."""
        n = len(x)
        w0 = torch.atanh((2 * x - 1) * TANH_SMOOTHER)
        best_d2 = torch.full((n,), float("inf"), device=x.device)
        best_adv = x.clone()
        c = torch.full((n,), float(self.c), device=x.device)
        lo = torch.zeros_like(c)
        hi = torch.full_like(c, C_UPPER)
        b1, b2 = ADAM_BETAS
        rounds = self.search_steps if self.mode == "search" else 1
        for _ in range(rounds):
            w = w0.clone()
            m = torch.zeros_like(w)
            v = torch.zeros_like(w)
            success = torch.zeros(n, dtype=torch.bool, device=x.device)
            for t in range(1, self.steps + 1):
                w.requires_grad_(True)
                xa = torch.tanh(w).add(1).mul(0.5)
                d2 = (xa - x).pow(2).flatten(1).sum(1)
                mg = margin(model(xa), y)
                objective = (d2 + c * mg.clamp(min=-self.kappa)).sum()
                if self.lam:
                    objective = objective + self.lam * w.pow(2).sum()
                (g,) = torch.autograd.grad(objective, w)
                with torch.no_grad():
                    xa, d2, mg = xa.detach(), d2.detach(), mg.detach()
                    ok = mg < -self.kappa
                    better = ok & (d2 < best_d2)
                    best_d2 = torch.where(better, d2, best_d2)
                    best_adv = torch.where(_per_sample(better, xa), xa, best_adv)
                    success |= ok
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    denom = v.div(1 - b2**t).sqrt_().add_(ADAM_EPS)
                    w = w.detach().addcdiv_(m, denom, value=-self.lr / (1 - b1**t))
            if self.mode == "search":
                hi = torch.where(success, torch.minimum(hi, c), hi)
                lo = torch.where(success, lo, torch.maximum(lo, c))
                c = torch.where(hi < C_UPPER / 10, (lo + hi) / 2, c * 10)
        found = torch.isfinite(best_d2)
        norms = torch.where(found, l2_norm(best_adv - x), torch.full_like(best_d2, float("inf")))
        return best_adv, norms
