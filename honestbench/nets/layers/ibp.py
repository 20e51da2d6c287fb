"""The IBP (Indian buffet process, stick-breaking) prior on the output components of conv and linear layers
(Panousis et al. 2019), registered as the ``ibp`` defence layer (``[defence] layers = "ibp"``, ``layer_args``
-> ``alpha``, ``temperature``, ``tau``).

Utilities ``z_k ~ Bernoulli(pi_k)``, ``pi_k = prod_{j<=k} v_j``, ``v_j ~ Beta(alpha, 1)`` with a Kumaraswamy
posterior ``q(v_j) = Kuma(a_j, b_j)`` and a relaxed-Bernoulli posterior on ``z`` at training (the KL to the
prior stored in ``self.kl`` for the ELBO); at inference ``z`` is the posterior probability, cut to 0 below
``tau`` (deterministic). ``z`` multiplies the weight's output rows.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from honestbench.nets.layers.stochastic import StochasticLayer
from honestbench.nets.registry import LayerFactories, register_layer

EULER = 0.5772156649015329


def kumaraswamy_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Reparameterised sample of Kumaraswamy(a, b): ``(1 - u^(1/b))^(1/a)``."""
    u = torch.rand_like(a).clamp(1e-6, 1 - 1e-6)
    return (1 - u.pow(1 / b)).clamp_min(1e-12).pow(1 / a)


def kl_kumaraswamy_beta(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """KL(Kuma(a, b) || Beta(alpha, 1)) (Nalisnick & Smyth 2017; the Beta(., 1) series term vanishes)."""
    return ((a - alpha) / a * (-EULER - torch.digamma(b) - 1 / b) + torch.log(a * b) - math.log(alpha)
            - (b - 1) / b)


def relaxed_bernoulli(logit: torch.Tensor, temperature: float) -> torch.Tensor:
    """Binary-concrete sample ``sigmoid((logit + log u - log(1-u)) / T)``."""
    u = torch.rand_like(logit).clamp(1e-6, 1 - 1e-6)
    return torch.sigmoid((logit + torch.log(u) - torch.log1p(-u)) / temperature)


class _IBPMixin(StochasticLayer):
    """Stick-breaking IBP utilities ``z`` (one per output unit) multiplying the weight's output rows."""

    weight: torch.Tensor

    def _init_ibp(self, out_features: int, alpha: float, temperature: float, tau: float) -> None:
        self.alpha, self.ibp_temperature, self.tau = alpha, temperature, tau
        self.conc1 = nn.Parameter(torch.full((out_features,), math.log(math.expm1(float(alpha)))))
        self.conc0 = nn.Parameter(torch.full((out_features,), math.log(math.expm1(1.0))))
        self.t_pi = nn.Parameter(torch.empty(out_features).uniform_(1.0, 3.0))
        self.kl = torch.zeros(())

    def utilities(self) -> torch.Tensor:
        q = torch.sigmoid(self.t_pi)
        if self.training and not self.in_surrogate:
            z = relaxed_bernoulli(self.t_pi, self.ibp_temperature)
            a, b = F.softplus(self.conc1) + 1e-4, F.softplus(self.conc0) + 1e-4
            pi = torch.cumprod(kumaraswamy_sample(a, b), 0).clamp(1e-6, 1 - 1e-6)
            kl_z = q * (torch.log(q + 1e-8) - torch.log(pi)) + (1 - q) * (torch.log(1 - q + 1e-8)
                                                                         - torch.log1p(-pi))
            self.kl = kl_z.sum() + kl_kumaraswamy_beta(a, b, self.alpha).sum()
            return z
        return q * (q > self.tau)

    def ibp_weight(self) -> torch.Tensor:
        z = self.utilities()
        return self.weight * z.view(-1, *([1] * (self.weight.dim() - 1)))

    def stochastic_at_eval(self) -> bool:
        return False


class IBPConv2d(nn.Conv2d, _IBPMixin):
    """``nn.Conv2d`` with an IBP prior on its output channels (signature of ``nn.Conv2d``)."""

    def __init__(self, *args, alpha: float = 1.0, temperature: float = 0.67, tau: float = 1e-2, **kw):
        super().__init__(*args, **kw)
        self._init_ibp(self.out_channels, alpha, temperature, tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.ibp_weight(), self.bias)


class IBPLinear(nn.Linear, _IBPMixin):
    """``nn.Linear`` with an IBP prior on its output units (signature of ``nn.Linear``)."""

    def __init__(self, *args, alpha: float = 1.0, temperature: float = 0.67, tau: float = 1e-2, **kw):
        super().__init__(*args, **kw)
        self._init_ibp(self.out_features, alpha, temperature, tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.ibp_weight(), self.bias)



@register_layer("ibp")
def ibp_layers(**kw: object) -> LayerFactories:
    """Conv and linear layers with the IBP prior (``kw``: ``alpha``, ``temperature``, ``tau``)."""
    return LayerFactories(conv=partial(IBPConv2d, **kw), linear=partial(IBPLinear, **kw))
