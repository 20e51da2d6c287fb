"""Parametric Noise Injection (Rakin et al. 2018) on the weights of conv and linear layers, registered as
the ``pni`` defence layer (``[defence] layers = "pni"``, ``layer_args`` -> ``a_init``, ``learn_a``).

The weight used in each forward pass is ``W + a * eta`` with ``eta ~ N(0, std(W)^2)``, ``std(W)`` detached
(one scalar per layer), and ``a`` a learnable scalar per layer (init 0.25). The noise is on in training
AND at test time: it is the defence. In surrogate mode the noise is off (``W`` alone), which is also the
expected weight.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from honestbench.nets.layers.stochastic import StochasticLayer
from honestbench.nets.registry import LayerFactories, register_layer


class _PNIMixin(StochasticLayer):
    weight: torch.Tensor

    def _init_pni(self, a_init: float, learn_a: bool) -> None:
        self.a = nn.Parameter(torch.tensor(float(a_init)), requires_grad=learn_a)

    def noisy_weight(self) -> torch.Tensor:
        if self.in_surrogate:
            return self.weight
        std = self.weight.detach().std()
        eta = torch.randn_like(self.weight) * std
        return self.weight + self.a * eta

    def stochastic_at_eval(self) -> bool:
        return bool(self.a.detach().abs().item() > 0)


class PNIConv2d(nn.Conv2d, _PNIMixin):
    """``nn.Conv2d`` with parametric noise injection on its weight (signature of ``nn.Conv2d``)."""

    def __init__(self, *args, a_init: float = 0.25, learn_a: bool = True, **kw):
        super().__init__(*args, **kw)
        self._init_pni(a_init, learn_a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.noisy_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", pni=True"


class PNILinear(nn.Linear, _PNIMixin):
    """``nn.Linear`` with parametric noise injection on its weight (signature of ``nn.Linear``)."""

    def __init__(self, *args, a_init: float = 0.25, learn_a: bool = True, **kw):
        super().__init__(*args, **kw)
        self._init_pni(a_init, learn_a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.noisy_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", pni=True"


@register_layer("pni")
def pni_layers(**kw: object) -> LayerFactories:
    """Conv and linear layers with parametric noise injection (``kw``: ``a_init``, ``learn_a``)."""
    return LayerFactories(conv=partial(PNIConv2d, **kw), linear=partial(PNILinear, **kw))
