"""Evaluating stochastic models: detection by forward passes, and accuracy as a mean over R passes.

A model is *stochastic* when two identical eval-mode forward passes on the same images disagree (PNI, LWTA
with sampled winners, noisy smoothing). Its accuracy on a fixed set of images is itself a random variable:
report the mean over ``R`` stochastic passes, per sample (the fraction of passes that classify it correctly)
and overall, with the spread (standard deviation over the R passes of the per-pass accuracy).

The randomness of the layers in :mod:`honestbench.nets` comes from torch's global RNG. Every function here seeds
that RNG inside :func:`torch.random.fork_rng` from an explicit ``seed``, so results are reproducible and the
caller's RNG state is left exactly as it was. Units: accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from honestbench.attacks.base import frozen_eval
from honestbench.attacks.eot import is_stochastic
from honestbench.core.rng import seeded_rng

#: Default number of stochastic passes for the mean-over-R accuracy (the issue's SLWTA acceptance uses 10).
R_DEFAULT = 10


def _device(model: nn.Module, x: torch.Tensor) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else x.device


@torch.no_grad()
def predictions(model: nn.Module, x: torch.Tensor, R: int = R_DEFAULT, seed: int = 0,
                batch_size: int = 256) -> torch.Tensor:
    """Predicted labels of ``R`` stochastic eval-mode passes, shape (R, N), int64 on the CPU."""
    if R < 1:
        raise ValueError(f"R must be >= 1, got {R}")
    dev = _device(model, x)
    out = torch.empty((R, len(x)), dtype=torch.long)
    with frozen_eval(model), seeded_rng(seed, dev):
        for r in range(R):
            for i in range(0, len(x), batch_size):
                out[r, i:i + batch_size] = model(x[i:i + batch_size].to(dev)).argmax(1).cpu()
    return out


def stochastic_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, R: int = R_DEFAULT,
                        seed: int = 0, batch_size: int = 256) -> tuple[torch.Tensor, float]:
    """Mean-over-R evaluation of ``model`` on ``(x, y)``.

    Returns ``(per_sample, spread)``: ``per_sample`` (N,) float64 is the fraction of the ``R`` seeded passes
    that classify each sample correctly (0/1 for a deterministic model); its mean is the accuracy. ``spread``
    is the standard deviation over the R passes of the per-pass accuracy (0.0 when R = 1). Pass adversarial
    images as ``x`` to get the robust accuracy of a fixed set of adversarial examples (multiply by the clean
    flag for the robust-accuracy convention of methods.md)."""
    correct = (predictions(model, x, R, seed, batch_size) == y.cpu()[None]).double()
    per_pass = correct.mean(1)
    spread = float(per_pass.std()) if R > 1 else 0.0
    return correct.mean(0), spread


def disagreement(model: nn.Module, x: torch.Tensor, seed: int = 0, batch_size: int = 256) -> float:
    """Fraction of images whose predicted label differs between two identical seeded forward passes."""
    p = predictions(model, x, 2, seed, batch_size)
    return float((p[0] != p[1]).double().mean())


#: Logit differences up to this are float noise, not randomness (non-deterministic GPU kernels).
FORWARD_ATOL = 1e-4


@torch.no_grad()
def is_stochastic_by_forward(model: nn.Module, x: torch.Tensor, seed: int = 0, passes: int = 2,
                             atol: float = FORWARD_ATOL) -> bool:
    """True when ``passes`` identical eval-mode forward passes on ``x`` give logits that differ by more than
    ``atol`` (float noise of non-deterministic kernels is not randomness; the stochastic layers of
    :mod:`honestbench.nets` change logits by orders of magnitude more).

    This is the behavioural check of methods.md (Evaluation integrity, item 6); it complements
    :func:`honestbench.nets.is_stochastic`, which inspects the layers. Seeded; the caller's RNG is untouched."""
    with seeded_rng(seed, _device(model, x)):
        return is_stochastic(model, x.to(_device(model, x)), passes=passes, atol=atol)
