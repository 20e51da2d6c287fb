"""BPDA (Athalye et al. 2018) with EOT: ``bpda-pgd``, and the :func:`bpda` switch it runs under.

In every stochastic layer the output becomes ``s(x) + (r(x) - s(x)).detach()`` where ``r`` is the real
(random, possibly hard) layer and ``s`` its surrogate at temperature ``T``: the forward value is the real one,
the gradient the surrogate's, evaluated at the real activations. For LWTA this is the straight-through
estimator of the hard or T = 0.01 winner mask with the ``softmax(h / T)`` gradient. For PNI and Gaussian
smoothing the real layer is already differentiable (its noisy gradient is what EOT averages), so BPDA only
swaps the noisy gradient for the noiseless one; it matters for LWTA and for the majority-vote smoothing
prediction. L-inf, pixels in [0, 1], ``eps`` in the same units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import nn

from honestbench.attacks.adaptive_pgd import AdaptivePGD
from honestbench.attacks.registry import register_attack
from honestbench.core.errors import AttackConfigError
from honestbench.nets import stochastic_layers


def _bpda_forward(layer: nn.Module, temperature: float):
    cls_forward = type(layer).forward

    def forward(*args, **kw):
        saved = layer.surrogate_temperature
        try:
            layer.surrogate_temperature = None
            real = cls_forward(layer, *args, **kw)
            layer.surrogate_temperature = float(temperature)
            smooth = cls_forward(layer, *args, **kw)
        finally:
            layer.surrogate_temperature = saved
        return smooth + (real - smooth).detach()

    return forward


@contextmanager
def bpda(model: nn.Module, temperature: float = 1.0) -> Iterator[nn.Module]:
    """Within the block, every stochastic layer of ``model`` (``honestbench.nets.StochasticLayer``) computes its
    real (random) output in the forward pass and the gradient of its surrogate at ``temperature`` in the
    backward pass (BPDA / straight-through). Restored on exit. A model without such layers is unchanged."""
    if temperature <= 0:
        raise ValueError("BPDA surrogate temperature must be > 0")
    layers = stochastic_layers(model)
    for m in layers:
        if "forward" in m.__dict__:
            raise RuntimeError(f"{type(m).__name__} already has an instance-level forward (nested bpda?)")
    try:
        for m in layers:
            m.forward = _bpda_forward(m, temperature)
        yield model
    finally:
        for m in layers:
            m.__dict__.pop("forward", None)


@register_attack("bpda-pgd")
@dataclasses.dataclass
class BPDAPGD(AdaptivePGD):
    """PGD with BPDA gradients (real forward, surrogate backward at ``temperature``) averaged over ``eot``
    stochastic passes. Equal to PGD with EOT on a model without stochastic layers."""

    name: ClassVar[str] = "bpda-pgd"
    description: ClassVar[str] = "PGD with BPDA (real forward, surrogate backward) and EOT"
    roles: ClassVar[frozenset[str]] = frozenset({"adaptive", "own", "eot"})

    steps: int = 50
    eot: int = 10
    temperature: float = 1.0

    def validate(self) -> None:
        super().validate()
        if not self.temperature > 0:
            raise AttackConfigError(f"{self.name}: temperature must be > 0, got {self.temperature}")

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        with bpda(model, self.temperature):
            return self.pgd(self.eot).perturb(model, x, y, generator)
