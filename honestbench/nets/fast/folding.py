"""BatchNorm folding: an eval-mode ``BatchNorm2d`` whose input is a plain ``nn.Conv2d``'s output (read by
nothing else) becomes that conv's scale and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``) and is
replaced by ``nn.Identity``: the same function up to float rounding, one operation fewer.

Patterns: consecutive children of an ``nn.Sequential`` (the small CNN's conv-BN-act), and the pairs a block
class declares in its ``bn_folds`` attribute (``("conv1", "bn2")`` in the pre-activation blocks). Layers with
their own forward (PNI, IBP convs) are left alone; the BN before each activation at a block's input follows
a residual sum, not a conv, and stays.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
            and bn.running_mean is not None and conv.out_channels == bn.num_features)


def _fold_declared(m: nn.Module) -> int:
    """Fold the ``(conv, bn)`` attribute pairs ``m``'s class declares in ``bn_folds``."""
    folded = 0
    for conv_name, bn_name in getattr(type(m), "bn_folds", ()):
        conv, bn = getattr(m, conv_name), getattr(m, bn_name)
        if _foldable(conv, bn):
            setattr(m, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(m, bn_name, nn.Identity())
            folded += 1
    return folded


def _fold_sequential(m: nn.Sequential) -> int:
    """Fold every conv -> BN pair of consecutive children."""
    folded = 0
    children = list(m)
    for i in range(len(children) - 1):
        if _foldable(children[i], children[i + 1]):
            m[i] = fuse_conv_bn_eval(children[i], children[i + 1])
            m[i + 1] = nn.Identity()
            children[i + 1] = m[i + 1]
            folded += 1
    return folded


def fold_batchnorm(model: nn.Module) -> int:
    """In place: fold every foldable eval-mode BatchNorm2d into its conv (module docstring); returns how
    many were folded. ``model`` must be in eval mode."""
    if model.training:
        raise ValueError("fold_batchnorm needs an eval() model (it uses the BN running statistics)")
    folded = 0
    for m in model.modules():
        folded += _fold_declared(m)
        if isinstance(m, nn.Sequential):
            folded += _fold_sequential(m)
    return folded
