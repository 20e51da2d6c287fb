"""Shared building blocks of the backbones: the normalisation module, the stochastic-layer base class,
the pre-activation residual block of PreAct-ResNet-18 and WideResNet, and the pluggable layer factories
(activation, conv, linear) through which defences wrap any backbone.

Factories: ``act(channels) -> nn.Module``; ``conv(in, out, kernel_size, stride=1, padding=0, bias=True)``
with ``nn.Conv2d``'s signature; ``linear(in, out, bias=True)`` with ``nn.Linear``'s signature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import nn

# Per-channel mean / std of each dataset's training images, pixels in [0, 1].
DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "digits": ((0.305,), (0.395,)),
    "none": ((0.0,), (1.0,)),
}

ActFactory = Callable[[int], nn.Module]
ConvFactory = Callable[..., nn.Module]
LinearFactory = Callable[..., nn.Module]


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel: the first module of every zoo model (inputs stay in [0, 1])."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def normalize_for(dataset: str, in_channels: int) -> Normalize:
    """The :class:`Normalize` module with ``dataset``'s statistics (broadcast to ``in_channels``)."""
    mean, std = DATASET_STATS.get(dataset, DATASET_STATS["none"])
    if len(mean) != in_channels:
        mean, std = (mean[0],) * in_channels, (std[0],) * in_channels
    return Normalize(mean, std)


class StochasticLayer(nn.Module):
    """Base class of every layer whose output is random (at train and/or test time).

    Each such layer has a smooth deterministic *surrogate* mode (``self.surrogate_temperature`` not None),
    switched model-wide by :func:`bench.nets.surrogate`. ``stochastic_at_eval()`` says whether the layer
    is still random in ``eval()`` mode (what :func:`bench.nets.is_stochastic` checks).
    Randomness comes from torch's global RNG.
    """

    surrogate_temperature: float | None = None

    @property
    def in_surrogate(self) -> bool:
        return self.surrogate_temperature is not None

    def stochastic_at_eval(self) -> bool:
        return True


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, identity mappings), shared by PreAct-ResNet-18 and
    WideResNet: ``a = act1(bn1(x))``, ``out = conv2(act2(bn2(conv1(a)))) + shortcut``, where the shortcut is
    ``x``, or a 1x1 conv (stride ``stride``) of ``a`` when the width or the resolution changes.

    Parameter names: ``bn1, act1, conv1, bn2, act2, conv2`` and ``shortcut`` (absent when the shortcut is
    the identity); the checkpoints of both backbones use them. ``shortcut_first`` only orders the calls:
    True runs the 1x1 shortcut conv before ``conv1`` (PreAct-ResNet-18's order), False after ``conv2``
    (WideResNet's). The function is the same; with random convs (PNI, IBP) the order decides which draws
    of the global RNG each layer gets, so it is kept for seeded runs to reproduce.
    """

    def __init__(self, cin: int, cout: int, stride: int, act: ActFactory, conv: ConvFactory,
                 shortcut_first: bool = False):
        super().__init__()
        self.bn1, self.act1 = nn.BatchNorm2d(cin), act(cin)
        self.conv1 = conv(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2, self.act2 = nn.BatchNorm2d(cout), act(cout)
        self.conv2 = conv(cout, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = conv(cin, cout, kernel_size=1, stride=stride, padding=0, bias=False)
        self.shortcut_first = shortcut_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act1(self.bn1(x))
        if self.shortcut is None:
            return self._residual(a) + x
        if self.shortcut_first:
            sc = self.shortcut(a)
            return self._residual(a) + sc
        out = self._residual(a)
        return out + self.shortcut(a)

    def _residual(self, a: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act2(self.bn2(self.conv1(a))))


class ReLU(nn.ReLU):
    """``nn.ReLU`` taking (and ignoring) the channel count, so it fits the ``act(channels)`` factory."""

    def __init__(self, channels: int = 0, inplace: bool = True):
        super().__init__(inplace=inplace)


def act_factory(name: str = "relu", **kw: object) -> ActFactory:
    """Activation factory by name: ``relu`` or ``lwta`` (keyword args go to the layer)."""
    if name == "relu":
        return ReLU
    if name == "lwta":
        from bench.nets.lwta import LWTA

        return partial(LWTA, **kw)
    raise ValueError(f"unknown activation {name!r}: choose relu or lwta")


def layer_factories(kind: str = "plain", **kw: object) -> tuple[ConvFactory, LinearFactory]:
    """(conv, linear) factories: ``plain`` (nn.Conv2d / nn.Linear), ``pni`` or ``ibp``."""
    if kind == "plain":
        return nn.Conv2d, nn.Linear
    if kind == "pni":
        from bench.nets.pni import PNIConv2d, PNILinear

        return partial(PNIConv2d, **kw), partial(PNILinear, **kw)
    if kind == "ibp":
        from bench.nets.lwta import IBPConv2d, IBPLinear

        return partial(IBPConv2d, **kw), partial(IBPLinear, **kw)
    raise ValueError(f"unknown layer kind {kind!r}: choose plain, pni or ibp")
