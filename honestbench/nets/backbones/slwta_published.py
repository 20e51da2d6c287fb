"""The ``slwta-wrn34-1-published`` backbone: our own module reproducing the WRN-34-1 stochastic-LWTA network
released by Panousis et al. (2021), with the parameter names of their state dict
(``../shared/data/slwta_wrn34_1_panousis2021.pt``).

Semantics (docs/methods.md, "The published SLWTA checkpoint"):
  * inputs in [0, 1], no mean/std normalisation;
  * pre-activation basic blocks ``bn1 -> lwta1 -> conv1 -> bn2 -> lwta2 -> conv2``; when the width changes,
    ``convShortcut`` (1x1, stride s) takes the activated input; head ``bn1 -> lwta -> avgpool 8 -> fc``;
  * LWTA over consecutive channel pairs, per spatial position: the output is ``h * mask`` with the SOFT
    Gumbel-softmax mask ``softmax((h_pair + G) / T)``; T = softplus(``temp``) (learned) at training and
    0.01 at test, so the test mask is a nearly one-hot random choice;
  * ``sub_block1`` exists in the file but is not used in the forward pass: :func:`load_published` drops
    its keys and loads the rest strictly.
Surrogate mode (:func:`honestbench.nets.surrogate`): mask ``softmax(h_pair / T_s)`` without Gumbel noise.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from honestbench.nets.layers.lwta import LWTA
from honestbench.nets.registry import register_backbone

UNUSED_PREFIXES = ("sub_block1.",)


def _lwta() -> LWTA:
    return LWTA(U=2, learn_temperature=True, test="soft", test_temperature=0.01)


class PublishedBlock(nn.Module):
    """One pre-activation block of the published network (their parameter names)."""

    #: ``(conv, bn)`` pairs :func:`honestbench.nets.fast.fold_batchnorm` may fold (``bn2`` reads only ``conv1``)
    bn_folds: tuple[tuple[str, str], ...] = (("conv1", "bn2"),)

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.lwta1 = nn.BatchNorm2d(cin), _lwta()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2, self.lwta2 = nn.BatchNorm2d(cout), _lwta()
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.equal = cin == cout
        self.convShortcut = (None if self.equal
                             else nn.Conv2d(cin, cout, 1, stride=stride, padding=0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.lwta1(self.bn1(x))
        out = self.conv2(self.lwta2(self.bn2(self.conv1(a))))
        return out + (x if self.equal else self.convShortcut(a))


class PublishedStage(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(*[PublishedBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


@register_backbone("slwta-wrn34-1-published")
class SLWTAWideResNet(nn.Module):
    """The authors' WRN-``depth``-``width`` SLWTA network (their key names, no normalisation)."""

    def __init__(self, depth: int = 34, width: int = 1, num_classes: int = 10, in_channels: int = 3,
                 **_: object):
        super().__init__()
        n = (depth - 4) // 6
        ch = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_channels, ch[0], 3, stride=1, padding=1, bias=False)
        self.block1 = PublishedStage(n, ch[0], ch[1], 1)
        self.block2 = PublishedStage(n, ch[1], ch[2], 2)
        self.block3 = PublishedStage(n, ch[2], ch[3], 2)
        self.bn1, self.lwta = nn.BatchNorm2d(ch[3]), _lwta()
        self.fc = nn.Linear(ch[3], num_classes)
        self.channels = ch[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.lwta(self.bn1(out))
        out = F.avg_pool2d(out, 8) if out.shape[-1] == 8 else F.adaptive_avg_pool2d(out, 1)
        return self.fc(out.flatten(1))


def published_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The released state dict without the keys of the unused ``sub_block1``."""
    return {k: v for k, v in state.items() if not k.startswith(UNUSED_PREFIXES)}


def load_published(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load the released state dict strictly (after dropping ``sub_block1``)."""
    model.load_state_dict(published_state(state), strict=True)
    return model
