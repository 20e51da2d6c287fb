"""The attack base class and the few primitives every attack shares (written once, imported everywhere).

Conventions: images are float32 NCHW with pixels in [0, 1]; ``eps`` and ``alpha`` are in the same units
(the standard budgets are in :mod:`honestbench.core.budgets`). An attack is a callable
``attack(model, x, y, generator=None) -> x_adv`` that:
  * puts the model in ``eval()`` with frozen parameters for its duration and restores both afterwards;
  * touches no global RNG: randomness comes from the explicit ``generator`` (or a fresh seeded one);
  * returns float32 images in [0, 1] inside its budget, asserted before returning.
Parameters are dataclass fields with defaults; invalid values fail at construction with one line. Each attack
states its cost (:meth:`Attack.cost`) and its roles for the diagnostics (:data:`ROLES`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from honestbench.attacks.params import check_field, field_rule
from honestbench.core.errors import AttackConfigError

NORMS = ("linf", "l2", "none")
#: What an attack is, for the diagnostics' comparisons (:func:`honestbench.attacks.names_with_role`):
#: single-step (one gradient step), iterative (multi-step L-inf PGD on the real model), white-box (gradients
#: of the real model), adaptive (surrogate / BPDA / transfer gradients), autoattack (the AutoAttack
#: ensemble), own (our kernels, comparable with AutoAttack's), eot (uses the real model's gradients, so
#: needs EOT on a stochastic model), minimum-norm (searches the smallest fooling perturbation and returns its
#: unthresholded norms: :class:`AttackOutput`).
ROLES = ("single-step", "iterative", "white-box", "adaptive", "autoattack", "own", "eot", "minimum-norm")
BUDGET_TOL = 1e-5  # float32 slack on the budget assertion: eps + 1e-5 in [0, 1] units


# ----------------------------------------------------------------------------------------------- model state
@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode with ``requires_grad=False`` parameters; both restored on exit."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


# ----------------------------------------------------------------------------------------------- losses
def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample ``Z_y - max_{j != y} Z_j`` (negative = misclassified). The true class is masked with
    -inf, so the margin is right when all logits are negative (the torchattacks CW pitfall)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return true - other


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the batch, as torchattacks and ART compute it.

    Each sample's input gradient is its own gradient divided by the batch size. The attacks only use
    its sign (L-inf) or its direction (L2), so the scale does not matter; the mean (rather than the sum)
    keeps our iterates bit-identical to torchattacks' for any batch size (a sum differs in the last bits
    when the batch size is not a power of two)."""
    return F.cross_entropy(logits, y)


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean negative margin ``-(Z_y - max_{j != y} Z_j)`` (the CW / DLR-style untargeted objective)."""
    return -margin(logits, y).mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ce": ce_loss,
    "margin": margin_loss,
}


def input_grad(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "ce", eot: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the loss w.r.t. the input, averaged over ``eot`` forward passes (EOT for stochastic
    models), and the logits of the first pass. Only the input requires grad (parameters are frozen)."""
    fn = LOSSES[loss]
    x = x.detach().requires_grad_(True)
    logits0 = None
    grad = None
    for i in range(eot):
        logits = model(x)
        g = torch.autograd.grad(fn(logits, y), x)[0]
        grad = g if grad is None else grad.add_(g)
        if i == 0:
            logits0 = logits.detach()
    if eot > 1:
        grad.div_(eot)
    return grad, logits0


# ----------------------------------------------------------------------------------------------- budgets
def project_linf_(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """In place: project ``x_adv`` onto the L-inf ball of radius ``eps`` around ``x``, then clip to [0, 1].

    Same operations, in the same order, as torchattacks (``clamp(x + clamp(x_adv - x, -eps, eps), 0, 1)``)
    so that our iterates match theirs bit for bit. ``x_adv`` is overwritten and returned."""
    delta = x_adv.sub_(x).clamp_(min=-eps, max=eps)
    return delta.add_(x).clamp_(min=0, max=1)


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project ``x_adv`` onto the L-inf ball of radius ``eps`` around ``x``, then clip to [0, 1]."""
    return project_linf_(x_adv.clone(), x, eps)


def l2_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm of an (N, ...) tensor, shape (N,)."""
    return t.flatten(1).norm(p=2, dim=1)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def project_l2_(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """In place: project ``x_adv`` onto the L2 ball of radius ``eps`` around ``x``, then clip to [0, 1].

    The scale is ``min(eps / ||delta||, 1)`` (torchattacks' formula; a zero delta keeps scale 1)."""
    delta = x_adv.sub_(x)
    n = l2_norm(delta)
    factor = torch.where(n > eps, eps / n, torch.ones_like(n))
    return delta.mul_(_per_sample(factor, delta)).add_(x).clamp_(min=0, max=1)


def project_l2(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project ``x_adv`` onto the L2 ball of radius ``eps`` around ``x``, then clip to [0, 1]."""
    return project_l2_(x_adv.clone(), x, eps)


def perturbation_norm(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample perturbation size in ``norm`` ('linf' or 'l2'), pixels in [0, 1]."""
    d = (x_adv - x).flatten(1)
    return d.abs().amax(1) if norm == "linf" else d.norm(p=2, dim=1)


def check_inputs(x: torch.Tensor, y: torch.Tensor) -> None:
    """One-line errors for inputs an attack cannot take."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise AttackConfigError("attack inputs must be torch tensors (x images, y labels)")
    if x.dim() != 4:
        raise AttackConfigError(f"images must be NCHW (4-d), got shape {tuple(x.shape)}")
    if x.dtype != torch.float32:
        raise AttackConfigError(f"images must be float32 in [0, 1], got {x.dtype}")
    if y.dtype != torch.long or y.dim() != 1 or len(y) != len(x):
        raise AttackConfigError(f"labels must be int64 of shape ({len(x)},), got {y.dtype} {tuple(y.shape)}")
    if x.numel():
        lo, hi = torch.aminmax(x.detach())  # one pass, one host sync per attack call
        if bool((lo < 0) | (hi > 1)):
            raise AttackConfigError("images must have pixels in [0, 1] (normalisation belongs inside the model)")


@dataclasses.dataclass
class AttackOutput:
    """What an attack returns to the engine: the adversarial images (float32 in [0, 1], within the budget)
    and, for a minimum-norm attack, the unthresholded perturbation norm per image (``raw_norms``, in the
    attack's norm, pixel units; ``inf`` where no adversarial image was found, 0 where the clean one fools)."""

    x_adv: torch.Tensor
    raw_norms: torch.Tensor | None = None


# ----------------------------------------------------------------------------------------------- base class
@dataclasses.dataclass
class Attack:
    """Base class: subclasses are dataclasses whose fields are the attack's typed parameters.

    Subclasses set ``name``, ``norm``, ``roles`` and implement :meth:`perturb`; they may override
    :meth:`cost`, :meth:`effective_eps` and :meth:`validate`.
    """

    name: ClassVar[str] = "attack"
    norm: ClassVar[str] = "none"
    description: ClassVar[str] = ""
    #: the attack's roles (a subset of :data:`ROLES`); a registration may give a name other roles
    roles: ClassVar[frozenset[str]] = frozenset()
    #: True when the output depends on the generator (random start, noise, restarts).
    randomized: ClassVar[bool] = False
    #: the allowed values of text parameters shared by many attacks (a field's ``param(choices=...)`` wins)
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"loss": tuple(LOSSES)}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in ("float", float) and isinstance(v, int) and not isinstance(v, bool):
                setattr(self, f.name, float(v))
        self.validate()

    # -- parameters
    def validate(self) -> None:
        """Raise :class:`AttackConfigError` for invalid parameters (checked at construction): each field by
        the rule it declares (:func:`param` metadata, else its annotation: :func:`field_rule`), and an L-inf
        budget above the whole pixel range."""
        if self.norm not in NORMS:
            raise AttackConfigError(f"{self.name}: unknown norm {self.norm!r}, choose one of {NORMS}")
        for f in dataclasses.fields(self):
            check_field(self.name, f.name, getattr(self, f.name), *field_rule(f, self.choices))
        eps = self.budget
        if self.norm == "linf" and eps is not None and eps > 1:  # pixels are in [0, 1]: more is a units mistake
            raise AttackConfigError(f"{self.name}: eps {eps} is more than the whole pixel range: L-inf budgets are in "
                                    "[0, 1] pixel units (8/255 = 0.0314), not 0-255")

    def params(self) -> dict[str, object]:
        """The attack's parameters as a plain dict (for records and listings)."""
        return dataclasses.asdict(self)

    @property
    def budget(self) -> float | None:
        """Nominal budget (``eps``) in the attack's norm, or None when unbounded."""
        return getattr(self, "eps", None)

    def effective_eps(self) -> float | None:
        """The largest perturbation the attack can actually produce (``min(eps, steps * alpha)`` for
        PGD without random start); equal to the nominal budget unless a subclass says otherwise."""
        return self.budget

    def cost(self) -> float:
        """Forward+backward passes per image, to order the early-exit cascade (cheapest first): one for a
        single gradient step; multi-step attacks multiply steps x restarts x EOT x search rounds, an attack
        without gradients says 0.5."""
        return 1.0

    def spec(self) -> str:
        """``name(k=v, ...)``: a compact one-line description."""
        inner = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params().items())
        return f"{self.name}({inner})"

    # -- running
    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Return adversarial images; called with the model frozen in eval mode."""
        raise NotImplementedError

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        check_inputs(x, y)
        if generator is None:
            generator = torch.Generator(device=x.device)
            generator.manual_seed(0)
        with frozen_eval(model):
            x_adv = self.perturb(model, x.detach(), y, generator).detach()
        self.check_output(x_adv, x)
        return x_adv

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: torch.Generator | None = None) -> AttackOutput:
        """Like calling the attack, with the extra outputs it returns (:class:`AttackOutput`); the engine's
        entry point. Attacks with extra outputs (CW's unthresholded norms) override it."""
        return AttackOutput(self(model, x, y, generator))

    def check_output(self, x_adv: torch.Tensor, x: torch.Tensor) -> None:
        """Assert dtype, shape, [0, 1] range and the budget (the cheap check that catches projection bugs)."""
        if x_adv.dtype != torch.float32 or x_adv.shape != x.shape:
            raise AssertionError(
                f"{self.name}: returned {x_adv.dtype} {tuple(x_adv.shape)}, expected float32 {tuple(x.shape)}"
            )
        if x_adv.numel() == 0:
            return
        eps = self.budget
        bounded = eps is not None and self.norm in ("linf", "l2")
        figures = torch.aminmax(x_adv)
        if bounded:
            figures = (*figures, perturbation_norm(x_adv, x, self.norm).max())
        lo, hi, *size = torch.stack(figures).tolist()  # once per attack call: the one host sync of the check
        if lo < 0 or hi > 1:
            raise AssertionError(f"{self.name}: returned pixels outside [0, 1]")
        if bounded and size[0] > eps + BUDGET_TOL * (1 if self.norm == "linf" else 10):
            raise AssertionError(f"{self.name}: perturbation {size[0]:.6g} exceeds its {self.norm} budget {eps}")


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
