"""The ``wrn-D-W`` backbones (``wrn-34-10``: depth 34, width 10): WideResNet (Zagoruyko & Komodakis 2016)
in the layout used by adversarial-training papers (Madry, TRADES, Panousis et al.): WRN-34-10, and WRN-34-1
for the report's SLWTA.

Pre-activation basic blocks (:class:`honestbench.nets.layers.preact_block.PreActBlock`, also PreAct-ResNet-18's); when a
block changes width its 1x1 shortcut takes the activated input.
Activation and conv/linear layers are pluggable (``act=LWTA`` gives the SLWTA network).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from honestbench.nets.layers.common import ReLU, normalize_for
from honestbench.nets.layers.preact_block import PreActBlock
from honestbench.nets.registry import ActFactory, ConvFactory, LinearFactory, register_backbone


@register_backbone("wrn-D-W", pattern=r"wrn-(?P<depth>\d+)-(?P<width>\d+)")
class WideResNet(nn.Module):
    """WRN-``depth``-``width``: (depth - 4) / 6 blocks per stage, widths 16, 16w, 32w, 64w."""

    def __init__(self, depth: int = 34, width: int = 10, in_channels: int = 3, num_classes: int = 10,
                 act: ActFactory = ReLU, conv: ConvFactory = nn.Conv2d, linear: LinearFactory = nn.Linear,
                 dataset: str = "cifar10", normalize: bool = True):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        ch = [16, 16 * width, 32 * width, 64 * width]
        self.normalize = normalize_for(dataset if normalize else "none", in_channels)
        self.conv1 = conv(in_channels, ch[0], kernel_size=3, stride=1, padding=1, bias=False)
        stages = []
        for i, stride in enumerate((1, 2, 2)):
            blocks = [PreActBlock(ch[i] if j == 0 else ch[i + 1], ch[i + 1], stride if j == 0 else 1, act, conv)
                      for j in range(n)]
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        self.bn1, self.act = nn.BatchNorm2d(ch[3]), act(ch[3])
        self.fc = linear(ch[3], num_classes, bias=True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(self.normalize(x)))))
        out = self.act(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))
