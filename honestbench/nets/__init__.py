"""Backbones and defence layers of the model zoo, and their inference-only forms.

* :mod:`~honestbench.nets.backbones`: :class:`SmallCNN` (``small-cnn``), :class:`PreActResNet18`
  (``preact-resnet18``), :class:`WideResNet` (``wrn-D-W``), the published SLWTA port :class:`SLWTAWideResNet`;
  :func:`build_backbone` builds one by name;
* :mod:`~honestbench.nets.layers`: :class:`Normalize`, :class:`StochasticLayer`, the defence layers PNI, LWTA, IBP
  (chosen by name through :func:`act_factory` / :func:`layer_factories`), the ELBO, Gaussian smoothing;
  :func:`surrogate` switches every stochastic layer of a model to its smooth deterministic stand-in (for
  adaptive attacks); :func:`is_stochastic` says whether a model is random in ``eval()`` mode;
* :mod:`~honestbench.nets.fast`: BN folding, channels-last and traced copies, the fused LWTA kernel
  (:mod:`~honestbench.nets.fast.lwta_ext`);
* :mod:`~honestbench.nets.registry`: the backbone and defence-layer registries.

Inputs are images with pixels in [0, 1]; every backbone normalises them itself.
"""

from __future__ import annotations

from honestbench.nets import backbones, fast, layers, registry
from honestbench.nets.backbones import preact_resnet, slwta_published, small_cnn, wideresnet
from honestbench.nets.backbones.preact_resnet import PreActResNet18
from honestbench.nets.backbones.slwta_published import SLWTAWideResNet
from honestbench.nets.backbones.small_cnn import SmallCNN
from honestbench.nets.backbones.wideresnet import WideResNet
from honestbench.nets.fast import lwta_ext, use_fused_kernel
from honestbench.nets.layers import common, elbo, ibp, lwta, pni, smoothing, stochastic
from honestbench.nets.layers.common import Normalize
from honestbench.nets.layers.elbo import elbo_loss, model_kl
from honestbench.nets.layers.ibp import IBPConv2d, IBPLinear
from honestbench.nets.layers.lwta import LWTA
from honestbench.nets.layers.pni import PNIConv2d, PNILinear
from honestbench.nets.layers.smoothing import GaussianSmoothing
from honestbench.nets.layers.stochastic import StochasticLayer, is_stochastic, stochastic_layers, surrogate
from honestbench.nets.registry import (
    BACKBONES,
    DEFENCE_LAYERS,
    act_factory,
    backbone_names,
    build_backbone,
    layer_factories,
    register_backbone,
    register_layer,
)

__all__ = [
    "BACKBONES", "DEFENCE_LAYERS", "LWTA", "GaussianSmoothing", "IBPConv2d", "IBPLinear", "Normalize",
    "PNIConv2d", "PNILinear", "PreActResNet18", "SLWTAWideResNet", "SmallCNN", "StochasticLayer", "WideResNet",
    "act_factory", "backbone_names", "backbones", "build_backbone", "common", "elbo", "elbo_loss", "fast",
    "ibp", "is_stochastic", "layer_factories", "layers", "lwta", "lwta_ext", "model_kl", "pni",
    "preact_resnet", "register_backbone", "register_layer", "registry", "slwta_published", "small_cnn",
    "smoothing", "stochastic", "stochastic_layers", "surrogate", "use_fused_kernel", "wideresnet",
]
