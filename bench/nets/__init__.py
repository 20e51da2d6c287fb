"""Backbones and defence layers of the model zoo, and their inference-only forms.

* :mod:`~bench.nets.backbones`: :class:`SmallCNN` (``small-cnn``), :class:`PreActResNet18`
  (``preact-resnet18``), :class:`WideResNet` (``wrn-D-W``), the published SLWTA port :class:`SLWTAWideResNet`;
  :func:`build_backbone` builds one by name;
* :mod:`~bench.nets.layers`: :class:`Normalize`, :class:`StochasticLayer`, the defence layers PNI, LWTA, IBP
  (chosen by name through :func:`act_factory` / :func:`layer_factories`), the ELBO, Gaussian smoothing;
  :func:`surrogate` switches every stochastic layer of a model to its smooth deterministic stand-in (for
  adaptive attacks); :func:`is_stochastic` says whether a model is random in ``eval()`` mode;
* :mod:`~bench.nets.fast`: BN folding, channels-last and traced copies, the fused LWTA kernel
  (:mod:`~bench.nets.fast.lwta_ext`);
* :mod:`~bench.nets.registry`: the backbone and defence-layer registries.

Inputs are images with pixels in [0, 1]; every backbone normalises them itself.
"""

from __future__ import annotations

from bench.nets import backbones, fast, layers, registry
from bench.nets.backbones import preact_resnet, slwta_published, small_cnn, wideresnet
from bench.nets.backbones.preact_resnet import PreActResNet18
from bench.nets.backbones.slwta_published import SLWTAWideResNet
from bench.nets.backbones.small_cnn import SmallCNN
from bench.nets.backbones.wideresnet import WideResNet
from bench.nets.fast import lwta_ext, use_fused_kernel
from bench.nets.layers import common, elbo, ibp, lwta, pni, smoothing, stochastic
from bench.nets.layers.common import Normalize
from bench.nets.layers.elbo import elbo_loss, model_kl
from bench.nets.layers.ibp import IBPConv2d, IBPLinear
from bench.nets.layers.lwta import LWTA
from bench.nets.layers.pni import PNIConv2d, PNILinear
from bench.nets.layers.smoothing import GaussianSmoothing
from bench.nets.layers.stochastic import StochasticLayer, is_stochastic, stochastic_layers, surrogate
from bench.nets.registry import (
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
