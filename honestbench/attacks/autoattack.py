"""AutoAttack (Croce & Hein 2020) through torchattacks' components, as :class:`honestbench.attacks.base.Attack`.

Two registered flavours (methods.md, "AutoAttack"):
  * ``autoattack`` (standard, deterministic models): APGD-CE, APGD-T (9 target classes), FAB-T (9 targets),
    Square (5,000 queries), each run only on the samples that the previous ones did not fool;
  * ``autoattack-rand`` (stochastic models): APGD-CE and APGD-DLR, each with EOT over ``eot`` = 20 passes.
``norm`` is ``'linf'`` (``eps`` default :data:`~honestbench.core.budgets.EPS_LINF`) or ``'l2'`` (``eps`` default
:data:`~honestbench.core.budgets.EPS_L2`); pixels in [0, 1], ``eps`` in the same units.

Faithfulness: ``steps`` (APGD and FAB iterations) defaults to 100, the reference implementation's value
(fra31/auto-attack). ``torchattacks.AutoAttack`` itself leaves its components at their own default of 10
iterations, a weaker attack than the one the papers report, so the ensemble is assembled here from
``torchattacks.APGD/APGDT/FAB/Square`` with the reference settings (and the same order, seeds and early exit
as ``torchattacks.MultiAttack``). ``components`` selects a subset (comma-separated; e.g. ``'apgd-ce'``
for a cheap check).

Precision (``precision``): ``'fp32'``, ``'bf16'`` or ``'auto'``. ``bf16`` runs the components' forward and
backward passes under bfloat16 autocast (:mod:`honestbench.core.precision`; images, perturbations and gradients
stay float32); ``auto`` (the standard flavour's default) means bf16 on a CPU that computes it natively
(AVX512-BF16 / AMX: about twice the passes per second of fp32) and fp32 everywhere else, and falls back to fp32
for a model that fails under autocast or whose bf16 predictions on the clean images differ from fp32 on more
than :data:`BF16_MAX_DISAGREE` of them. An image that the float32 model still classifies right after the bf16
cascade while the bf16 model misclassifies it (near the boundary, every component takes it as already broken
and leaves it alone) runs the cascade again in fp32. Whatever the precision, the cascade between components is judged by
the float32 model: an image goes on to the next component unless the float32 model is fooled by what the last
one found, so a bf16 rounding can never make a component skip an image the reference would give it, and every
claimed break is an fp32 break (re-checked again by the harness's witness step). The rand flavour and
``square`` stay fp32 (stochastic and user models with layers of their own).

Contract with the harness: the attack runs inside our ``frozen_eval`` (model in ``eval()``, parameters
frozen); torchattacks switches the model to ``eval()`` itself and back to training only if it was training,
so the mode is unchanged and restored by ``frozen_eval``. Images and labels are passed contiguous. The
torchattacks components seed torch's global RNG (``torch.manual_seed(seed)``): we derive that seed from our
``generator`` and run them inside ``torch.random.fork_rng``, so the caller's RNG is untouched and a
stochastic model's noise during the attack is reproducible. The output is projected once more onto the
budget (a no-op up to float rounding) before the base class asserts it.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torchattacks
from torch import nn

from honestbench.attacks.base import Attack, project_l2_, project_linf_
from honestbench.attacks.registry import register_attack
from honestbench.core.budgets import EPS_L2, EPS_LINF
from honestbench.core.errors import AttackConfigError
from honestbench.core.precision import PRECISIONS, AutocastForward, native_bf16
from honestbench.core.rng import seeded_rng

STANDARD = "apgd-ce,apgd-t,fab-t,square"
RAND = "apgd-ce,apgd-dlr"
COMPONENTS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square")
DEFAULT_EPS = {"linf": EPS_LINF, "l2": EPS_L2}
_TA_NORM = {"linf": "Linf", "l2": "L2"}
#: ``auto`` keeps fp32 for a model whose bf16 clean predictions differ from fp32 on more than this fraction
BF16_MAX_DISAGREE = 0.01


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())


@register_attack("autoattack")
@dataclasses.dataclass
class AutoAttack(Attack):
    """AutoAttack ensemble (standard: APGD-CE, APGD-T, FAB-T, Square) via torchattacks' components.

    ``eps`` None means :data:`DEFAULT_EPS` of the norm. ``eot`` > 1 averages every APGD gradient over that many
    stochastic passes (the "rand" flavour). ``n_classes`` None reads the number of logits from one forward.
    After each call, ``broken_by`` (not a field: not part of the configuration) maps each component to the
    number of that call's images it was the first to fool."""

    name: ClassVar[str] = "autoattack"
    description: ClassVar[str] = "AutoAttack (torchattacks components, reference settings)"
    roles: ClassVar[frozenset[str]] = frozenset({"white-box", "autoattack", "eot"})
    randomized: ClassVar[bool] = True

    norm: str = "linf"  # type: ignore[misc]  # an instance field here: AutoAttack runs in either norm
    eps: float | None = None
    components: str = STANDARD
    steps: int = 100
    n_queries: int = 5000
    eot: int = 1
    n_classes: int | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.eps is None and self.norm in DEFAULT_EPS:
            self.eps = DEFAULT_EPS[self.norm]
        super().__post_init__()

    def validate(self) -> None:
        if self.norm not in DEFAULT_EPS:
            raise AttackConfigError(f"{self.name}: norm must be 'linf' or 'l2', got {self.norm!r}")
        super().validate()
        names = self.component_list()
        bad = [c for c in names if c not in COMPONENTS]
        if bad or not names:
            raise AttackConfigError(f"{self.name}: unknown component {bad[0] if bad else '(none)'!r}; "
                                    f"choose from {', '.join(COMPONENTS)}")
        if self.precision not in ("auto", *PRECISIONS):
            raise AttackConfigError(f"{self.name}: precision must be 'auto', 'fp32' or 'bf16', got "
                                    f"{self.precision!r}")
        if self.n_queries < 1:
            raise AttackConfigError(f"{self.name}: n_queries must be >= 1, got {self.n_queries}")

    def component_list(self) -> list[str]:
        return [c.strip() for c in self.components.split(",") if c.strip()]

    def cost(self) -> float:
        """``steps x eot`` (the cascade's ordering key; the ensemble runs last among the standard attacks)."""
        return float(self.steps * self.eot)

    def build(self, model: nn.Module, n_classes: int, seed: int) -> dict:
        """The torchattacks attack objects of the components on ``model``, by component name, in order."""
        kw = {"norm": _TA_NORM[self.norm], "eps": self.eps, "seed": seed, "verbose": False}
        made = {}
        for c in self.component_list():
            if c in ("apgd-ce", "apgd-dlr"):
                made[c] = torchattacks.APGD(model, steps=self.steps, n_restarts=1, loss=c.split("-")[1],
                                           eot_iter=self.eot, **kw)
            elif c == "apgd-t":
                made[c] = torchattacks.APGDT(model, steps=self.steps, n_restarts=1, eot_iter=self.eot,
                                            n_classes=n_classes, **kw)
            elif c == "fab-t":
                made[c] = torchattacks.FAB(model, steps=self.steps, n_restarts=1, multi_targeted=True,
                                          n_classes=n_classes, **kw)
            else:
                made[c] = torchattacks.Square(model, n_queries=self.n_queries, n_restarts=1, **kw)
        return made

    def resolved_precision(self, model: nn.Module, x: torch.Tensor) -> str:
        """The precision the components run in on ``model`` and the clean images ``x`` (see the module
        docstring: ``auto`` is bf16 only on native hardware and for a model that predicts alike in both)."""
        if self.precision != "auto":
            return self.precision
        if not native_bf16(x.device):
            return "fp32"
        try:
            with torch.no_grad():
                fp32 = model(x).argmax(1)
                bf16 = AutocastForward(model, "bf16")(x).argmax(1)
        except Exception:  # noqa: BLE001 - a model with layers autocast cannot run: evaluate it in fp32
            return "fp32"
        return "bf16" if (fp32 != bf16).float().mean().item() <= BF16_MAX_DISAGREE else "fp32"

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        if len(x) == 0:
            return x.clone()
        seed = _seed_from(generator)
        x, y = x.contiguous(), y.contiguous()
        with seeded_rng(seed, x.device):
            n_classes = self.n_classes
            if n_classes is None:
                with torch.no_grad():
                    n_classes = int(model(x[:1]).shape[1])
            if n_classes < 3 and any(c in ("apgd-dlr", "apgd-t", "fab-t") for c in self.component_list()):
                raise AttackConfigError(f"{self.name}: DLR / targeted components need >= 3 classes")
            precision = self.resolved_precision(model, x)
            attacked = model if precision == "fp32" else AutocastForward(model, precision)
            x_adv, self.broken_by = _cascade(model, self.build(attacked, n_classes, seed), x, y)
            if attacked is not model:  # images bf16 calls misclassified already: no component attacked them
                with torch.no_grad():
                    redo = (model(x_adv).argmax(1) == y) & (attacked(x_adv).argmax(1) != y)
                if redo.any():
                    x_adv[redo], again = _cascade(model, self.build(model, n_classes, seed), x[redo], y[redo])
                    self.broken_by = {k: v + again.get(k, 0) for k, v in self.broken_by.items()}
        x_adv = x_adv.contiguous()
        return project_linf_(x_adv, x, self.eps) if self.norm == "linf" else project_l2_(x_adv, x, self.eps)


def _cascade(judge: nn.Module, components: dict, x: torch.Tensor, y: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, int]]:
    """``torchattacks.MultiAttack``'s early exit with ``judge`` (the float32 model) deciding: each component
    runs on the images no earlier one fooled, and its output is kept where ``judge`` misclassifies it (one
    forward per component, as MultiAttack does, so a stochastic model draws the same noise). Returns the
    adversarial images and, per component name, how many images it was the first to fool (clean errors
    included: the first component "fools" them)."""
    final = x.clone()
    fails = torch.arange(len(x), device=x.device)
    broken = dict.fromkeys(components, 0)
    for name, attack in components.items():
        adv = attack(x[fails], y[fails]).detach().float()
        with torch.no_grad():
            wrong = judge(adv).argmax(1) != y[fails]
        final[fails[wrong]] = adv[wrong]
        fails = fails[~wrong]
        broken[name] = int(wrong.sum())
        if len(fails) == 0:
            break
    return final, broken


@register_attack("autoattack-rand")
@dataclasses.dataclass
class AutoAttackRand(AutoAttack):
    """AutoAttack's "rand" flavour for stochastic models: APGD-CE and APGD-DLR with EOT over 20 passes."""

    name: ClassVar[str] = "autoattack-rand"
    description: ClassVar[str] = "AutoAttack rand flavour: APGD-CE + APGD-DLR with EOT 20 (stochastic models)"

    components: str = RAND
    eot: int = 20
    precision: str = "fp32"
