"""Stochastic local winner-takes-all (LWTA) activations (Panousis et al. 2019, 2021) and the optional IBP
prior on connections.

LWTA: a layer's K outputs form blocks of U consecutive units (U = 2 by default; in conv layers, U
consecutive channels competing independently at every spatial position). Per block a one-hot winner
``xi ~ Categorical(softmax(h_block))`` is drawn; the winner's value passes and the others output 0.
  * training: Gumbel-softmax relaxation ``xi = softmax((h_block + G) / T)`` (T ~ 0.67, or a learned
    ``softplus(temp)``), output ``h * xi``;
  * inference: a hard sampled winner ``onehot(argmax(h_block + G))`` (exact sample of the categorical);
  * surrogate (deterministic, smooth): ``h * softmax(h_block / T_s)``; at ``T_s = 1`` this is the exact
    expected output of the inference layer, the natural target for adaptive attacks.
The KL of the posterior ``q = softmax(h_block)`` to the uniform prior over U, summed over blocks and
positions and averaged over the batch (>= 0), is stored in ``self.kl`` at training for the ELBO
(:func:`elbo_loss`: cross-entropy + KL / N_train).

IBP (stick-breaking) prior on the output components of a conv / linear layer: utilities
``z_k ~ Bernoulli(pi_k)``, ``pi_k = prod_{j<=k} v_j``, ``v_j ~ Beta(alpha, 1)`` with a Kumaraswamy
posterior ``q(v_j) = Kuma(a_j, b_j)`` and a relaxed-Bernoulli posterior on ``z`` at training; at
inference ``z`` is the posterior probability, cut to 0 below ``tau`` (deterministic).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.nets.common import StochasticLayer

EULER = 0.5772156649015329


def gumbel_like(t: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Standard Gumbel noise with ``t``'s shape, dtype and device (global RNG)."""
    u = torch.rand_like(t, dtype=torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype)
    return (-torch.log(-torch.log(u + eps) + eps)).to(t.dtype)


def _blocks(h: torch.Tensor, U: int) -> torch.Tensor:
    """View (N, K*U, ...) as (N, K, U, ...): blocks of U consecutive units / channels."""
    if h.shape[1] % U:
        raise ValueError(f"LWTA: {h.shape[1]} units cannot be split in blocks of {U}")
    return h.view(h.shape[0], h.shape[1] // U, U, *h.shape[2:])


class LWTA(StochasticLayer):
    """Stochastic LWTA activation for (N, C) or (N, C, H, W) inputs; ``channels`` is only checked.

    ``temperature``: the Gumbel-softmax temperature at training (ignored when ``learn_temperature``, then
    ``softplus(self.temp)``). ``test``: ``'hard'`` (sampled one-hot winner, default) or ``'soft'`` (the
    relaxed mask at ``test_temperature``, as in the authors' released code).
    """

    #: use :meth:`eval_pair` at inference for U = 2 (False: the :meth:`pair_gate` reference path, kept for
    #: tests and ``bench speed``'s before/after figures)
    fast_eval: bool = True
    #: at inference without autograd on a float32 CPU input, compute :meth:`eval_pair`'s output with the fused
    #: kernel of :mod:`bench.nets.lwta_ext` (same uniforms, one operation); set by :func:`use_fused_kernel`
    fused: bool = False

    def __init__(self, channels: int = 0, U: int = 2, temperature: float = 0.67,
                 learn_temperature: bool = False, test: str = "hard", test_temperature: float = 0.01):
        super().__init__()
        if U < 2:
            raise ValueError("LWTA needs U >= 2 competitors per block")
        if channels and channels % U:
            raise ValueError(f"LWTA: {channels} channels cannot be split in blocks of {U}")
        if test not in ("hard", "soft"):
            raise ValueError("LWTA test mode must be 'hard' or 'soft'")
        self.U = U
        self.temperature = temperature
        self.test = test
        self.test_temperature = test_temperature
        if learn_temperature:
            self.temp = nn.Parameter(torch.tensor(-0.01))
        else:
            self.register_parameter("temp", None)
        self.kl = torch.zeros(())

    def train_temperature(self) -> torch.Tensor | float:
        return F.softplus(self.temp) if self.temp is not None else self.temperature

    def mask(self, hb: torch.Tensor) -> torch.Tensor:
        """The winner mask for blocked pre-activations ``hb`` (N, K, U, ...), per the current mode."""
        if self.in_surrogate:
            return torch.softmax(hb / self.surrogate_temperature, dim=2)
        if self.training:
            return torch.softmax((hb + gumbel_like(hb)) / self.train_temperature(), dim=2)
        if self.test == "soft":
            return torch.softmax((hb + gumbel_like(hb)) / self.test_temperature, dim=2)
        winner = (hb.detach() + gumbel_like(hb)).argmax(dim=2, keepdim=True)
        return torch.zeros_like(hb).scatter_(2, winner, 1.0)

    def pair_gate(self, d: torch.Tensor) -> torch.Tensor:
        """U = 2 fast path: the probability-like gate of the second unit of each pair, from the logit
        difference ``d = h_1 - h_0``. The difference of two independent standard Gumbels is standard
        logistic, so ``sigmoid((d + L) / T)`` is exactly the 2-way Gumbel-softmax and ``d + L > 0`` the
        sampled hard winner (same distributions as :meth:`mask`, half the random numbers)."""
        if self.in_surrogate:
            return torch.sigmoid(d / self.surrogate_temperature)
        u = torch.rand_like(d, dtype=torch.float32).clamp_(1e-7, 1 - 1e-7)
        logistic = (torch.log(u) - torch.log1p(-u)).to(d.dtype)
        if self.training:
            return torch.sigmoid((d + logistic) / self.train_temperature())
        if self.test == "soft":
            return torch.sigmoid((d + logistic) / self.test_temperature)
        return (d.detach() + logistic > 0).to(d.dtype)

    def eval_pair(self, hb: torch.Tensor) -> torch.Tensor:
        """U = 2 at inference (not training, not surrogate), blocked ``hb`` (N, K, 2, ...): the same random
        variables as :meth:`pair_gate` in 7 operations instead of 14 (measured per layer on one CPU core,
        16 channels at 32 x 32: hard 165 -> 65 us at batch 1 and 42 -> 16 ms at batch 256; soft 2x).

        Hard: the pair's second unit wins iff ``d + L > 0`` (``d = h_1 - h_0``, ``L = logit(u)``), i.e. iff
        ``u > sigmoid(-d)``: the same winner from the same uniform ``u`` (up to rounding at the boundary),
        so the same distribution and, seed for seed, the same draws. Soft: ``sigmoid(+-(d + L) / T)``
        built as one stacked tensor (``sigmoid(-z)`` for ``1 - sigmoid(z)``: equal up to rounding). The eval
        branches of :meth:`pair_gate` stay as the reference definition (tests compare the two)."""
        h0, h1 = hb.unbind(2)
        u = self.pair_uniforms(hb)
        if self.test == "hard":
            g = u > torch.sigmoid(h0.detach() - h1.detach())
            return hb * torch.stack((~g, g), 2)
        z = torch.sub(h1, h0).add_(torch.logit(u, 1e-7).to(hb.dtype)).div_(self.test_temperature)
        return hb * torch.sigmoid(torch.stack((z.neg(), z), 2))

    @staticmethod
    def pair_uniforms(hb: torch.Tensor) -> torch.Tensor:
        """The inference uniforms of blocked ``hb`` (N, K, 2, ...): one float32 per pair, from torch's global
        RNG, laid out like the pair's first unit (``rand_like`` fills memory order, so the layout decides which
        pair gets which number). :meth:`eval_pair` and the fused kernel both draw them here."""
        return torch.rand_like(hb.select(2, 0), dtype=torch.float32)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        hb = _blocks(h, self.U)
        if self.U == 2 and self.fast_eval and not self.training and not self.in_surrogate:
            if (self.fused and h.device.type == "cpu" and h.dtype == torch.float32
                    and not (torch.is_grad_enabled() and h.requires_grad)):
                from bench.nets.lwta_ext import lwta_pair

                return lwta_pair(h, self.pair_uniforms(hb), self.test == "soft", self.test_temperature)
            return self.eval_pair(hb).reshape(h.shape)
        if self.U == 2:
            h0, h1 = hb.unbind(2)
            d = h1 - h0
            g = self.pair_gate(d)
            out = torch.stack((h0 * (1 - g), h1 * g), dim=2)
            if self.training and not self.in_surrogate:
                d32 = d.float()
                lq1, lq0 = F.logsigmoid(d32), F.logsigmoid(-d32)
                kl = lq1.exp() * lq1 + lq0.exp() * lq0 + math.log(2)
                self.kl = kl.flatten(1).sum(1).mean()
            return out.reshape(h.shape)
        out = hb * self.mask(hb)
        if self.training and not self.in_surrogate:
            q = torch.softmax(hb.float(), dim=2)
            kl = (q * (torch.log(q.clamp_min(1e-12)) + math.log(self.U))).sum(dim=2)
            self.kl = kl.flatten(1).sum(1).mean()
        return out.reshape(h.shape)

    def extra_repr(self) -> str:
        t = "learned" if self.temp is not None else self.temperature
        return f"U={self.U}, temperature={t}, test={self.test}"


def use_fused_kernel(model: nn.Module, on: bool = True) -> int:
    """In place: switch the fused inference kernel (:mod:`bench.nets.lwta_ext`) on or off in every U = 2
    LWTA layer of ``model``; returns how many layers it set. Switching on compiles the kernel if needed and
    raises ``RuntimeError`` (saying why) where it cannot be built."""
    if on:
        from bench.nets import lwta_ext

        if not lwta_ext.load():
            raise RuntimeError(lwta_ext.status()["why"])
    layers = [m for m in model.modules() if isinstance(m, LWTA) and m.U == 2]
    for m in layers:
        m.fused = on
    return len(layers)


# ----------------------------------------------------------------------------------------------- IBP
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


# ----------------------------------------------------------------------------------------------- ELBO
def model_kl(model: nn.Module) -> torch.Tensor:
    """Sum of the KL terms stored by the model's LWTA / IBP layers in the last training forward pass."""
    total = None
    for m in model.modules():
        kl = getattr(m, "kl", None)
        if isinstance(m, StochasticLayer) and isinstance(kl, torch.Tensor) and kl.requires_grad:
            total = kl if total is None else total + kl
    if total is None:
        p = next(model.parameters())
        return torch.zeros((), device=p.device)
    return total


def elbo_loss(logits: torch.Tensor, y: torch.Tensor, model: nn.Module, n_train: int,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """Negative ELBO per sample: mean cross-entropy + (sum of the layers' KL) / ``n_train``."""
    ce = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return ce + model_kl(model) / n_train
