"""Projected gradient descent (Madry et al. 2018) in the L-inf and L2 balls.

One loop, two step rules. Per sample, the attack keeps the FIRST iterate (over steps and restarts) that the
model misclassifies; with ``early_stop=True`` such samples leave the batch at once (active-set shrinking: the
batch gets smaller, it is not masked), deciding "fooled" from the logits of the forward pass that also gives
the gradient, so no extra forward is spent per step (the last iterate is returned whether it fools or not, so
it needs no check; with restarts, one forward on each restart's last iterate decides who restarts). With
``early_stop=False`` every sample does every step and the result is the last iterate: the exact torchattacks
iteration (same operations in the same order), which the cross-check matches to 1e-5.

Units: pixels in [0, 1]; ``eps``/``alpha`` in the same units (L-inf: per pixel; L2: Euclidean norm of the
whole image perturbation); defaults from :mod:`honestbench.core.budgets`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from honestbench.attacks.base import Attack, _per_sample, input_grad, l2_norm, project_l2_, project_linf_
from honestbench.attacks.registry import register_attack
from honestbench.core.budgets import ALPHA_LINF, EPS_L2, EPS_LINF

#: Added to the per-sample gradient norm before the L2 step divides by it (as torchattacks'
#: ``eps_for_division``).
GRAD_NORM_EPS = 1e-10


@dataclasses.dataclass
class _PGD(Attack):
    """Shared PGD loop; subclasses define the random start and the step (both in place)."""

    roles: ClassVar[frozenset[str]] = frozenset({"white-box", "own", "eot"})

    eps: float = EPS_LINF
    alpha: float | None = ALPHA_LINF
    steps: int = 10
    random_start: bool = True
    restarts: int = 1
    early_stop: bool = True
    eot: int = 1
    loss: str = "ce"

    def cost(self) -> float:
        """``steps x restarts x eot`` forward+backward passes per image (an upper bound under early stop)."""
        return float(self.steps * self.restarts * self.eot)

    @property
    def randomized(self) -> bool:  # type: ignore[override]
        return self.random_start

    @property
    def step_size(self) -> float:
        """``alpha``, or its default when ``alpha`` is None/0 (set by the subclass)."""
        return float(self.alpha) if self.alpha else self.default_alpha()

    def default_alpha(self) -> float:
        return 2.5 * self.eps / self.steps

    def effective_eps(self) -> float:
        """``min(eps, steps * alpha)`` without random start (a few small steps never reach a large eps)."""
        return self.eps if self.random_start else min(self.eps, self.steps * self.step_size)

    # -- the two norm-specific pieces (in place on a fresh tensor)
    def _start(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _step_(self, x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- the loop
    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """The loop of the module docstring. Hot path: per step one gradient pass and the in-place step; no host
        sync unless ``early_stop`` shrinks the batch; no copy of the result when no sample left the batch (the
        budget and box are asserted once, by :meth:`Attack.__call__`)."""
        if len(x) == 0:
            return torch.empty_like(x)
        out: torch.Tensor | None = None  # allocated once a sample leaves the batch or a restart runs
        todo: torch.Tensor | None = None  # indices still unfooled after a restart (None = all)
        for restart in range(self.restarts):
            if todo is None:
                idx, xs, ys = None, x, y
            else:
                if todo.numel() == 0:
                    break
                idx, xs, ys = todo, x[todo], y[todo]
            x_adv = self._start(xs, generator) if self.random_start else xs.clone()
            for _ in range(self.steps):
                grad, logits = input_grad(model, x_adv, ys, self.loss, self.eot)
                if self.early_stop:
                    fooled = logits.argmax(1) != ys
                    keep = (~fooled).nonzero().squeeze(1)  # the one host sync per step shrinking needs
                    if keep.numel() < len(ys):
                        pos = fooled.nonzero().squeeze(1)
                        out = torch.empty_like(x) if out is None else out
                        out.index_copy_(0, pos if idx is None else idx[pos], x_adv[pos])
                        idx = keep if idx is None else idx[keep]
                        x_adv, grad, xs, ys = x_adv[keep], grad[keep], xs[keep], ys[keep]
                        if keep.numel() == 0:
                            break
                x_adv = self._step_(x_adv, grad, xs)
            last = restart == self.restarts - 1 or (idx is not None and idx.numel() == 0)
            if idx is None and out is None and last:
                return x_adv  # every sample did every step: the last iterate is the answer, no copy
            out = torch.empty_like(x) if out is None else out
            if idx is None:
                out.copy_(x_adv)
            elif idx.numel():
                out.index_copy_(0, idx, x_adv)
            if last:
                break  # the last iterate is the answer whether it fools or not: no check needed
            with torch.no_grad():  # the final iterate: fooled samples are done, the others restart
                fooled = model(x_adv).argmax(1) != ys
            alive = (~fooled).nonzero().squeeze(1)
            todo = alive if idx is None else idx[alive]
        return out


@register_attack("pgd-linf")
@dataclasses.dataclass
class PGDLinf(_PGD):
    """PGD in the L-inf ball: ``x <- clip(Proj_eps(x + alpha * sign(g)), 0, 1)``; random start uniform in
    the ball. ``alpha`` None/0 means ``2.5 * eps / steps``."""

    name: ClassVar[str] = "pgd-linf"
    norm: ClassVar[str] = "linf"
    description: ClassVar[str] = "PGD L-inf (Madry): sign steps, first success kept per sample"
    roles: ClassVar[frozenset[str]] = frozenset({"iterative", "white-box", "own", "eot"})

    def _start(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.empty_like(x).uniform_(-self.eps, self.eps, generator=generator)
        return noise.add_(x).clamp_(min=0, max=1)

    def _step_(self, x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x_adv = x_adv.add_(grad.sign_(), alpha=self.step_size)
        return project_linf_(x_adv, x, self.eps)


@register_attack("pgd-l2")
@dataclasses.dataclass
class PGDL2(_PGD):
    """PGD in the L2 ball: ``x <- clip(Proj_eps(x + alpha * g / ||g||_2), 0, 1)``; random start uniform in
    the ball (direction uniform on the sphere, radius ``eps * u^(1/d)``). ``alpha`` None/0 means
    ``2.5 * eps / steps`` (methods.md's standard budget)."""

    eps: float = EPS_L2
    alpha: float | None = None
    steps: int = 20

    name: ClassVar[str] = "pgd-l2"
    norm: ClassVar[str] = "l2"
    description: ClassVar[str] = "PGD L2 (Madry): normalised-gradient steps, first success kept per sample"

    def _start(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        d = x[0].numel()
        delta = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        u = torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype)
        radius = u.pow_(1.0 / d).mul_(self.eps).div_(l2_norm(delta).clamp_(min=1e-12))
        return delta.mul_(_per_sample(radius, delta)).add_(x).clamp_(min=0, max=1)

    def _step_(self, x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        gn = l2_norm(grad).add_(GRAD_NORM_EPS)
        x_adv = x_adv.add_(grad.div_(_per_sample(gn, grad)), alpha=self.step_size)
        return project_l2_(x_adv, x, self.eps)
