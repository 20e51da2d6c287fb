"""The ``preact-resnet18`` backbone: PreAct-ResNet-18 (He et al. 2016, identity mappings) with pluggable
activation / conv / linear layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from honestbench.nets.layers.common import ReLU, normalize_for
from honestbench.nets.layers.preact_block import PreActBlock
from honestbench.nets.registry import ActFactory, ConvFactory, LinearFactory, register_backbone


@register_backbone("preact-resnet18")
class PreActResNet18(nn.Module):
    """PreAct-ResNet-18: 4 stages of 2 pre-activation basic blocks, widths 64-128-256-512 (x ``width``)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 64,
                 act: ActFactory = ReLU, conv: ConvFactory = nn.Conv2d, linear: LinearFactory = nn.Linear,
                 dataset: str = "cifar10"):
        super().__init__()
        self.normalize = normalize_for(dataset, in_channels)
        self.conv1 = conv(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        layers, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            for j in range(2):
                layers.append(PreActBlock(cin, cout, 2 if (i > 0 and j == 0) else 1, act, conv,
                                          shortcut_first=True))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn, self.act = nn.BatchNorm2d(cin), act(cin)
        self.fc = linear(cin, num_classes, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.conv1(self.normalize(x)))
        out = self.act(self.bn(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))
