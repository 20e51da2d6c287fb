"""The ``small-cnn`` backbone: a compact ResNet-9-shaped CNN for CPU training (about 410k parameters at the
default widths).

Layout (Page's DAWNBench ResNet-9 at a quarter of its width): prep conv -> [conv, pool, residual(2 convs)]
-> [conv, pool] -> [conv, pool, residual(2 convs)] -> global max pool -> linear (logits scaled by
``logit_scale``). Every conv is followed by BatchNorm and the pluggable activation. Works for any input
size >= 8x8 (digits 1x8x8, CIFAR 3x32x32) since the head pools globally.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from honestbench.nets.layers.common import ReLU, normalize_for
from honestbench.nets.registry import ActFactory, ConvFactory, LinearFactory, register_backbone


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, act: ActFactory, conv: ConvFactory, pool: bool = False):
        layers = [conv(cin, cout, kernel_size=3, stride=1, padding=1, bias=False), nn.BatchNorm2d(cout),
                  act(cout)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


class Residual(nn.Module):
    def __init__(self, c: int, act: ActFactory, conv: ConvFactory):
        super().__init__()
        self.res = nn.Sequential(ConvBN(c, c, act, conv), ConvBN(c, c, act, conv))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res(x)


@register_backbone("small-cnn")
class SmallCNN(nn.Module):
    """ResNet-9-shaped CNN; ``widths`` = (prep, layer1, layer2, layer3) channels."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64, 128),
                 act: ActFactory = ReLU, conv: ConvFactory = nn.Conv2d, linear: LinearFactory = nn.Linear,
                 dataset: str = "cifar10", logit_scale: float = 0.125, input_size: int = 32):
        super().__init__()
        w0, w1, w2, w3 = widths
        # three 2x2 pools; on inputs smaller than 8x8 the last pools would fail, so skip them
        pools = [input_size >= 2, input_size >= 4, input_size >= 8]
        self.normalize = normalize_for(dataset, in_channels)
        self.features = nn.Sequential(
            ConvBN(in_channels, w0, act, conv),
            ConvBN(w0, w1, act, conv, pool=pools[0]),
            Residual(w1, act, conv),
            ConvBN(w1, w2, act, conv, pool=pools[1]),
            ConvBN(w2, w3, act, conv, pool=pools[2]),
            Residual(w3, act, conv),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.fc = linear(w3, num_classes, bias=True)
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(self.normalize(x))) * self.logit_scale
