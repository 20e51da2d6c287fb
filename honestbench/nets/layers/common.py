"""Deterministic building blocks: per-channel input normalisation (inputs stay pixels in [0, 1]; the model
normalises them itself), and the plain layers (``relu`` activation, ``plain`` conv / linear) of the
defence-layer registry."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from honestbench.nets.registry import LayerFactories, bind, register_layer

# Per-channel mean / std of each dataset's training images, pixels in [0, 1].
DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "digits": ((0.305,), (0.395,)),
    "none": ((0.0,), (1.0,)),
}


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


class ReLU(nn.ReLU):
    """``nn.ReLU`` taking (and ignoring) the channel count, so it fits the ``act(channels)`` factory."""

    def __init__(self, channels: int = 0, inplace: bool = True):
        super().__init__(inplace=inplace)


@register_layer("relu")
def relu_layer(**kw: object) -> LayerFactories:
    """The default activation (``inplace`` may be given)."""
    return LayerFactories(act=bind(ReLU, kw))


@register_layer("plain")
def plain_layers(**kw: object) -> LayerFactories:
    """``nn.Conv2d`` and ``nn.Linear``: no defence."""
    return LayerFactories(conv=bind(nn.Conv2d, kw), linear=bind(nn.Linear, kw))
