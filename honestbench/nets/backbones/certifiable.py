"""Small plain-ReLU backbones for certified training and verification (:mod:`honestbench.certify` bounds
them exactly as built): ``cert-cnn``, two stride-2 4x4 convolutions and two linear layers (the "small" CNN of
Wong & Kolter 2018 / Gowal et al. 2018, widened), and ``cert-mlp``, a fully connected ReLU network small enough
for exact verification by MILP. Normalisation is the first module; inputs are pixels in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from honestbench.nets.layers.common import ReLU, normalize_for
from honestbench.nets.registry import ActFactory, ConvFactory, LinearFactory, register_backbone


def _side(dataset: str) -> int:
    return 8 if dataset == "digits" else 32


@register_backbone("cert-cnn")
class CertCNN(nn.Sequential):
    """conv(4x4, s2) -> ReLU -> conv(4x4, s2) -> ReLU -> linear -> ReLU -> linear; ``widths`` =
    (conv1 channels, conv2 channels, hidden units)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, widths: Sequence[int] = (32, 32, 128),
                 act: ActFactory = ReLU, conv: ConvFactory = nn.Conv2d, linear: LinearFactory = nn.Linear,
                 dataset: str = "cifar10"):
        c1, c2, hidden = widths
        side = _side(dataset) // 4
        super().__init__(normalize_for(dataset, in_channels),
                         conv(in_channels, c1, kernel_size=4, stride=2, padding=1), act(c1),
                         conv(c1, c2, kernel_size=4, stride=2, padding=1), act(c2), nn.Flatten(),
                         linear(c2 * side * side, hidden), act(hidden), linear(hidden, num_classes))


@register_backbone("cert-mlp")
class CertMLP(nn.Sequential):
    """Flatten -> [linear -> ReLU] per hidden width -> linear."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, widths: Sequence[int] = (64, 64),
                 act: ActFactory = ReLU, conv: ConvFactory = nn.Conv2d, linear: LinearFactory = nn.Linear,
                 dataset: str = "cifar10"):
        layers: list[nn.Module] = [normalize_for(dataset, in_channels), nn.Flatten()]
        width = in_channels * _side(dataset) ** 2
        for h in widths:
            layers += [linear(width, h), act(h)]
            width = h
        super().__init__(*layers, linear(width, num_classes))
