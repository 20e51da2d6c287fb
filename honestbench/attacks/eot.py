"""Expectation over Transformation (Athalye et al. 2018) for stochastic models.

Every gradient attack has an ``eot`` field: the input gradient of each step is the mean over ``eot``
stochastic forward passes (:func:`honestbench.attacks.base.input_grad` does the averaging, once for all attacks).
This module registers the EOT variants with ``eot=20`` (AutoAttack's "rand" flavour uses 20 as well;
``eot-pgd-linf`` also runs every step, ``early_stop=False``: see :class:`EOTPGDLinf`) and holds the
EOT-specific helpers. Report the number of EOT samples with every result (it is a parameter, so
it appears in ``attack.params()``).

For a deterministic model EOT changes nothing but the cost (the mean of ``eot`` identical gradients is that
gradient), which is how the cross-check tests it. EOT is not enough behind near-hard random choices (see
methods.md, "Adaptive attacks"): attack a smooth surrogate there.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from honestbench.attacks.base import frozen_eval
from honestbench.attacks.fgsm import FGSM
from honestbench.attacks.pgd import PGDLinf
from honestbench.attacks.registry import register_attack

EOT_DEFAULT = 20


@register_attack("eot-pgd-linf")
@dataclasses.dataclass
class EOTPGDLinf(PGDLinf):
    """:class:`~honestbench.attacks.pgd.PGDLinf` whose every step averages the gradient over ``eot`` passes.

    ``early_stop`` defaults to False (every sample does every step; the last iterate is the answer), unlike
    ``pgd-linf``: on a stochastic model, early stop keeps the first iterate that fooled ONE noisy pass,
    which the next pass often classifies right again, so the attack looks far weaker than it is. On a
    deterministic model early stop is never weaker and costs less (``pgd-linf``'s default); pass
    ``early_stop=True`` there if it matters.
    """

    name: ClassVar[str] = "eot-pgd-linf"
    description: ClassVar[str] = ("PGD L-inf with EOT: each step's gradient is the mean over eot passes; "
                                  "every step is run (no early stop: one noisy pass is no verdict)")

    eot: int = EOT_DEFAULT
    early_stop: bool = False


@register_attack("eot-fgsm")
@dataclasses.dataclass
class EOTFGSM(FGSM):
    """:class:`~honestbench.attacks.fgsm.FGSM` with the gradient averaged over ``eot`` passes."""

    name: ClassVar[str] = "eot-fgsm"
    description: ClassVar[str] = "FGSM with EOT: the gradient is the mean over eot passes"

    eot: int = EOT_DEFAULT


@torch.no_grad()
def is_stochastic(model: nn.Module, x: torch.Tensor, passes: int = 2, atol: float = 0.0) -> bool:
    """True when ``passes`` identical eval-mode forward passes on ``x`` give different logits (the model
    needs EOT); the model's mode and parameters are left as they were."""
    with frozen_eval(model):
        first = model(x)
        return any(not torch.allclose(model(x), first, rtol=0.0, atol=atol) for _ in range(passes - 1))

