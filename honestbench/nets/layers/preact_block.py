"""The pre-activation residual block shared by PreAct-ResNet-18 and WideResNet."""

from __future__ import annotations

import torch
from torch import nn

from honestbench.nets.registry import ActFactory, ConvFactory


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

    #: ``(conv, bn)`` attribute pairs whose forward is ``bn(conv(.))`` with the conv's output read by nothing
    #: else: :func:`honestbench.nets.fast.fold_batchnorm` folds them
    bn_folds: tuple[tuple[str, str], ...] = (("conv1", "bn2"),)

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
