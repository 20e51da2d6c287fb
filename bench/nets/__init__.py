"""Backbones and defence layers of the model zoo.

* backbones: :class:`SmallCNN` (``small-cnn``), :class:`PreActResNet18` (``preact-resnet18``),
  :class:`WideResNet` (``wrn-D-W``), the published SLWTA port :class:`SLWTAWideResNet`;
* layers: :mod:`~bench.nets.pni` (parametric noise injection), :mod:`~bench.nets.lwta` (stochastic LWTA,
  IBP prior, ELBO), :mod:`~bench.nets.smoothing` (Gaussian-noise smoothing wrapper);
* :func:`surrogate` switches every stochastic layer of a model to its smooth deterministic stand-in
  (for adaptive attacks); :func:`is_stochastic` says whether a model is random in ``eval()`` mode.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from bench.nets.common import Normalize, StochasticLayer, act_factory, layer_factories
from bench.nets.lwta import LWTA, IBPConv2d, IBPLinear, elbo_loss, model_kl
from bench.nets.pni import PNIConv2d, PNILinear
from bench.nets.preact_resnet import PreActResNet18
from bench.nets.slwta_published import SLWTAWideResNet
from bench.nets.small_cnn import SmallCNN
from bench.nets.smoothing import GaussianSmoothing
from bench.nets.wideresnet import WideResNet

__all__ = [
    "LWTA", "GaussianSmoothing", "IBPConv2d", "IBPLinear", "Normalize", "PNIConv2d", "PNILinear",
    "PreActResNet18", "SLWTAWideResNet", "SmallCNN", "StochasticLayer", "WideResNet", "act_factory",
    "build_backbone", "elbo_loss", "is_stochastic", "layer_factories", "model_kl", "stochastic_layers",
    "surrogate",
]

BACKBONES = ("small-cnn", "preact-resnet18", "wrn-D-W (e.g. wrn-34-1, wrn-34-10)", "slwta-wrn34-1-published")


def build_backbone(name: str, **kw: object) -> nn.Module:
    """Backbone by name; ``kw`` go to its constructor (in_channels, num_classes, act, conv, linear, ...)."""
    if name == "small-cnn":
        return SmallCNN(**kw)
    if name == "preact-resnet18":
        return PreActResNet18(**kw)
    m = re.fullmatch(r"wrn-(\d+)-(\d+)", name)
    if m:
        return WideResNet(depth=int(m.group(1)), width=int(m.group(2)), **kw)
    if name == "slwta-wrn34-1-published":
        return SLWTAWideResNet(**kw)
    raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")


def stochastic_layers(model: nn.Module) -> list[StochasticLayer]:
    """Every stochastic layer of ``model`` (LWTA, PNI, IBP, smoothing)."""
    return [m for m in model.modules() if isinstance(m, StochasticLayer)]


def is_stochastic(model: nn.Module) -> bool:
    """True when some layer of ``model`` is random in ``eval()`` mode (and not in surrogate mode)."""
    return any(m.stochastic_at_eval() and not m.in_surrogate for m in stochastic_layers(model))


@contextmanager
def surrogate(model: nn.Module, temperature: float = 1.0) -> Iterator[nn.Module]:
    """Within the block every stochastic layer of ``model`` runs its smooth deterministic surrogate:
    LWTA ``h * softmax(h_block / temperature)`` (no Gumbel noise; T = 1 is the expected output of the
    hard-sampling layer), PNI and IBP without noise, smoothing without noise. Restored on exit."""
    if temperature <= 0:
        raise ValueError("surrogate temperature must be > 0")
    layers = stochastic_layers(model)
    saved = [m.surrogate_temperature for m in layers]
    for m in layers:
        m.surrogate_temperature = float(temperature)
    try:
        yield model
    finally:
        for m, t in zip(layers, saved, strict=True):
            m.surrogate_temperature = t
