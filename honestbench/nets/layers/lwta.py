"""Stochastic local winner-takes-all (LWTA) activations (Panousis et al. 2019, 2021), registered as the
``lwta`` defence layer (``[defence] activation = "lwta"``, ``act_args`` -> :class:`LWTA`'s arguments).

A layer's K outputs form blocks of U consecutive units (U = 2 by default; in conv layers, U consecutive
channels competing independently at every spatial position). Per block a one-hot winner
``xi ~ Categorical(softmax(h_block))`` is drawn; the winner's value passes and the others output 0.
  * training: Gumbel-softmax relaxation ``xi = softmax((h_block + G) / T)`` (T ~ 0.67, or a learned
    ``softplus(temp)``), output ``h * xi``;
  * inference: a hard sampled winner ``onehot(argmax(h_block + G))`` (exact sample of the categorical);
  * surrogate (deterministic, smooth): ``h * softmax(h_block / T_s)``; at ``T_s = 1`` this is the exact
    expected output of the inference layer, the natural target for adaptive attacks.
The KL of the posterior ``q = softmax(h_block)`` to the uniform prior over U, summed over blocks and
positions and averaged over the batch (>= 0), is stored in ``self.kl`` at training for the ELBO
(:func:`honestbench.nets.layers.elbo.elbo_loss`). Units: the layer takes and returns pre-activations as they are.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from honestbench.nets.layers.stochastic import StochasticLayer
from honestbench.nets.registry import LayerFactories, register_layer


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
    #: kernel ``torch.ops.bench.lwta_pair`` (same uniforms, one operation); set, after loading the kernel, by
    #: :func:`honestbench.nets.fast.lwta_ext.use_fused_kernel`
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
        variables as :meth:`pair_gate` in 7 operations instead of 14.

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
                return torch.ops.bench.lwta_pair(h, self.pair_uniforms(hb), self.test == "soft",
                                                 self.test_temperature)
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


@register_layer("lwta")
def lwta_layer(**kw: object) -> LayerFactories:
    """Stochastic LWTA activations (``kw``: :class:`LWTA`'s ``U``, ``temperature``, ``learn_temperature``,
    ``test``, ``test_temperature``)."""
    return LayerFactories(act=partial(LWTA, **kw))
