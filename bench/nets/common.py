"""Shared building blocks of the backbones: the normalisation module, the stochastic-layer base class,
and the pluggable layer factories (activation, conv, linear) through which defences wrap any backbone.

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
