"""Gaussian-noise smoothing (Cohen et al. 2019 style) as a model wrapper (a card's ``[defence]
gaussian_sigma``, ``predict``, ``n``).

``sigma`` is in pixel units (inputs in [0, 1]). Training always sees ``x + N(0, sigma^2)`` (inputs are not
clipped, as in randomised smoothing).
Prediction (``predict``):
  * ``base``: the base classifier on the clean input (deterministic; the default of the zoo card);
  * ``noise``: one noisy copy per forward pass (stochastic);
  * ``expect``: mean logits over ``n`` noisy copies (stochastic, differentiable);
  * ``vote``: randomised-smoothing prediction, the log of the majority-vote frequencies over ``n`` noisy
    copies (stochastic, not differentiable: attack it through its surrogate).
Surrogate mode: noise off (the base classifier's logits).
"""

from __future__ import annotations

import torch
from torch import nn

from honestbench.nets.layers.stochastic import StochasticLayer

PREDICT_MODES = ("base", "noise", "expect", "vote")


class GaussianSmoothing(StochasticLayer):
    """``base`` with Gaussian input noise of std ``sigma``; ``predict`` and ``n`` as in the module docstring."""

    def __init__(self, base: nn.Module, sigma: float = 0.12, predict: str = "base", n: int = 8,
                 num_classes: int = 10):
        super().__init__()
        if predict not in PREDICT_MODES:
            raise ValueError(f"gaussian smoothing: predict must be one of {PREDICT_MODES}, got {predict!r}")
        self.base, self.sigma, self.predict, self.n, self.num_classes = base, sigma, predict, n, num_classes

    def stochastic_at_eval(self) -> bool:
        return self.predict != "base" and self.sigma > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_surrogate:
            return self.base(x)
        if self.training:
            return self.base(x + self.sigma * torch.randn_like(x))
        if self.predict == "base":
            return self.base(x)
        if self.predict == "noise":
            return self.base(x + self.sigma * torch.randn_like(x))
        reps = x.repeat(self.n, *([1] * (x.dim() - 1)))
        logits = self.base(reps + self.sigma * torch.randn_like(reps)).view(self.n, x.shape[0], -1)
        if self.predict == "expect":
            return logits.mean(0)
        votes = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float().mean(0)
        return torch.log(votes + 1e-3)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, predict={self.predict}, n={self.n}"
