"""``transfer-pgd``: PGD L-inf on another model (``source``, a zoo card name or an in-memory model registered
with :func:`register_transfer_source`), the adversarial images then evaluated on the target. L-inf, pixels in
[0, 1], ``eps`` in the same units.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from honestbench.attacks.adaptive_pgd import AdaptivePGD
from honestbench.attacks.base import frozen_eval
from honestbench.attacks.registry import register_attack
from honestbench.core.errors import AttackConfigError
from honestbench.zoo import evaluation_model, get_card

_SOURCES: dict[str, nn.Module] = {}
_LOADED: dict[tuple[str, str], nn.Module] = {}


def register_transfer_source(name: str, model: nn.Module | None) -> None:
    """Make ``name`` resolve to ``model`` for ``transfer-pgd`` (an in-memory model, e.g. in tests); ``None``
    removes it. Names not registered here are loaded from the model zoo (:func:`honestbench.zoo.evaluation_model`)."""
    if model is None:
        _SOURCES.pop(name, None)
    else:
        _SOURCES[name] = model


def is_registered_source(name: str) -> bool:
    """True when ``name`` is an in-memory transfer source (:func:`register_transfer_source`)."""
    return name in _SOURCES


def load_source(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """The transfer source model called ``name`` on ``device`` (registered in memory, else the zoo card),
    loaded once per process."""
    if name in _SOURCES:
        return _SOURCES[name].to(device)
    key = (name, str(torch.device(device)))
    if key not in _LOADED:
        _LOADED[key] = evaluation_model(get_card(name), device)
    return _LOADED[key]


@register_attack("transfer-pgd")
@dataclasses.dataclass
class TransferPGD(AdaptivePGD):
    """PGD L-inf on the zoo model ``source`` (``eot`` passes per step if it is stochastic); the adversarial
    images are then evaluated on the target. The target model is only used for its device."""

    name: ClassVar[str] = "transfer-pgd"
    description: ClassVar[str] = "PGD on another zoo model (source), evaluated on the target"

    source: str = "pgd-at"
    steps: int = 20
    eot: int = 1

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.source, str) or not self.source:
            raise AttackConfigError(f"{self.name}: source must name a zoo model, got {self.source!r}")

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        src = load_source(self.source, x.device)
        if src is model:
            raise AttackConfigError(f"{self.name}: the source {self.source!r} is the target model itself")
        with frozen_eval(src):
            try:
                return self.pgd(self.eot).perturb(src, x, y, generator)
            except RuntimeError as e:  # shape mismatch: a model of another dataset
                msg = " ".join(str(e).split())[:160]
                raise AttackConfigError(f"{self.name}: source {self.source!r} cannot take these images "
                                        f"{tuple(x.shape[1:])} ({msg})") from None
