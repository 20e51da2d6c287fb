"""The torchattacks and ART equivalents of our attack kernels, as a table keyed by the registered attack name.

Each entry of :data:`EQUIVALENTS` says how a row of that attack is judged (:class:`Equivalent` ``check``) and
builds the reference attack configured like ours. A builder returns ``(fn, note)``: ``fn(x, y) -> x_adv`` (pixels
in [0, 1], eps in the same units), or None with the reason when the reference cannot express a setting. An
attack without an entry has no reference: its rows get the verdict ``n/a``; adding an attack to the harness
never requires editing this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torchattacks as ta
from torch import nn

from honestbench.attacks import Attack
from honestbench.attacks.pgd import GRAD_NORM_EPS
from honestbench.devtools.optional import import_art

AttackFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``(attack, model or ART classifier, n) -> (fn or None, note)``
Builder = Callable[[Attack, object, int], tuple[AttackFn | None, str]]


# ----------------------------------------------------------------------------------------------- torchattacks
def _ta_fgsm(attack: Attack, model: nn.Module, n: int) -> tuple[AttackFn | None, str]:
    if attack.loss != "ce":
        return None, "torchattacks FGSM has only the CE loss"
    if attack.eot > 1:  # EOTPGD with one step of size eps from x is FGSM with EOT
        return ta.EOTPGD(model, eps=attack.eps, alpha=attack.eps, steps=1, eot_iter=attack.eot,
                         random_start=False), "torchattacks EOTPGD, 1 step of size eps"
    return ta.FGSM(model, eps=attack.eps), ""


def _pgd_kw(attack: Attack) -> tuple[dict | None, str]:
    if attack.loss != "ce" or attack.restarts > 1:
        return None, "torchattacks PGD has no restarts and only the CE loss"
    return dict(eps=attack.eps, alpha=attack.step_size, steps=attack.steps, random_start=attack.random_start), ""


def _ta_pgd_linf(attack: Attack, model: nn.Module, n: int) -> tuple[AttackFn | None, str]:
    kw, why = _pgd_kw(attack)
    if kw is None:
        return None, why
    if attack.eot > 1:
        return ta.EOTPGD(model, eot_iter=attack.eot, **kw), "torchattacks EOTPGD"
    return ta.PGD(model, **kw), ""


def _ta_pgd_l2(attack: Attack, model: nn.Module, n: int) -> tuple[AttackFn | None, str]:
    kw, why = _pgd_kw(attack)
    if kw is None:
        return None, why
    if attack.eot > 1:
        return None, "torchattacks PGDL2 has no EOT"
    # their kernel fails on non-contiguous inputs (view on a permuted tensor)
    atk = ta.PGDL2(model, eps_for_division=GRAD_NORM_EPS, **kw)
    return (lambda x, y: atk(x.contiguous(), y)), ""


def _ta_cw(attack: Attack, model: nn.Module, n: int) -> tuple[AttackFn | None, str]:
    return ta.CW(model, c=attack.c, kappa=attack.kappa, steps=attack.steps, lr=attack.lr), ""


# ----------------------------------------------------------------------------------------------- ART
# ART is optional (the ``crosscheck`` extra): every use imports it here, when it runs
def art_classifier(model: nn.Module, x: torch.Tensor, nb_classes: int) -> object:
    """ART's PyTorchClassifier around ``model`` (pixels in [0, 1], cross-entropy loss); a one-line
    :class:`~honestbench.core.errors.BenchError` when ART is not installed."""
    return import_art("art.estimators.classification").PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=nb_classes,
        clip_values=(0.0, 1.0), device_type="gpu" if x.is_cuda else "cpu",
    )


def _art_fgsm(attack: Attack, classifier: object, n: int) -> tuple[object | None, str]:
    fgm = import_art("art.attacks.evasion").FastGradientMethod
    return fgm(classifier, norm=np.inf, eps=attack.eps, batch_size=n), ""


def _art_pgd(attack: Attack, classifier: object, n: int) -> tuple[object | None, str]:
    return import_art("art.attacks.evasion").ProjectedGradientDescent(
        classifier, norm=np.inf if attack.norm == "linf" else 2, eps=attack.eps, eps_step=attack.step_size,
        max_iter=attack.steps, num_random_init=attack.restarts if attack.random_start else 0, batch_size=n,
        verbose=False,
    ), ""


def _art_cw(attack: Attack, classifier: object, n: int) -> tuple[object | None, str]:
    if attack.lam:
        return None, "ART's CarliniL2Method has no lambda * ||w||^2 term"
    return import_art("art.attacks.evasion").CarliniL2Method(
        classifier, confidence=attack.kappa, learning_rate=attack.lr, max_iter=attack.steps,
        binary_search_steps=attack.search_steps if attack.mode == "search" else 1,
        initial_const=attack.c, batch_size=n, verbose=False,
    ), "ART CarliniL2Method (line-search gradient descent, not Adam)"


def _numpy_round_trip(art_attack: object) -> AttackFn:
    """``art_attack.generate`` as a function of tensors (ART works on numpy arrays)."""

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = art_attack.generate(x.detach().cpu().numpy(), y=y.cpu().numpy())
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)

    return run


# ----------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Equivalent:
    """How rows of one registered attack are checked, and its reference builders (None: that library has none).

    ``check``: ``'gradient'`` (FGSM / PGD family: exact pixel match when deterministic, else paired robust
    accuracy), ``'cw'`` (robust accuracy vs ART at the attack's L2 threshold) or ``'noise'`` (no reference: not
    stronger than PGD L-inf at the same eps)."""

    check: str
    torchattacks: Builder | None = None
    art: Builder | None = None


#: registered attack name -> its references; a name missing here is compared with nothing (verdict ``n/a``)
EQUIVALENTS: dict[str, Equivalent] = {
    "fgsm": Equivalent("gradient", _ta_fgsm, _art_fgsm),
    "eot-fgsm": Equivalent("gradient", _ta_fgsm, _art_fgsm),
    "pgd-linf": Equivalent("gradient", _ta_pgd_linf, _art_pgd),
    "eot-pgd-linf": Equivalent("gradient", _ta_pgd_linf, _art_pgd),
    "pgd-l2": Equivalent("gradient", _ta_pgd_l2, _art_pgd),
    "cw-l2": Equivalent("cw", _ta_cw, _art_cw),
    "noise": Equivalent("noise"),
}


def equivalent(attack: Attack) -> Equivalent | None:
    """The table entry of ``attack`` (by its registered name), or None when no reference library has it."""
    return EQUIVALENTS.get(attack.name)


def torchattacks_equivalent(attack: Attack, model: nn.Module, n: int) -> tuple[AttackFn | None, str]:
    """The torchattacks attack configured like ``attack`` (or None and why not), and a note."""
    entry = equivalent(attack)
    if entry is None or entry.torchattacks is None:
        return None, "no torchattacks equivalent"
    return entry.torchattacks(attack, model, n)


def art_equivalent(attack: Attack, classifier: object, n: int) -> tuple[AttackFn | None, str]:
    """The ART attack configured like ``attack`` (or None and why not), and a note."""
    entry = equivalent(attack)
    if entry is None or entry.art is None:
        return None, "no ART equivalent"
    note = ""
    if getattr(attack, "eot", 1) > 1:
        note = "ART without EOT (EOT of a deterministic model is the plain gradient)"
    if getattr(attack, "loss", "ce") != "ce":
        return None, "ART's attacks use the classifier's CE loss"
    art_attack, own_note = entry.art(attack, classifier, n)
    if art_attack is None:
        return None, own_note
    return _numpy_round_trip(art_attack), own_note or note
