"""The binarization test (Zimmermann et al. 2022, "Increasing Confidence in Adversarial Robustness
Evaluations"): per image, a binary classifier built on the model's own features that has an adversarial point
inside the budget by construction; an attack that cannot find one on more than a few percent of the images is
too weak for this model (masked gradients, or a broken attack), whatever accuracy it reports.

Per clean image ``x`` and L-inf budget ``eps`` (pixels in [0, 1], eps in the same units):

* features ``f``: the input of the model's last ``nn.Linear`` (captured by a forward hook; the logits when the
  model has no linear layer);
* class 0: ``x`` and :data:`INNER` points drawn uniformly from the ball of radius ``INNER_RADIUS * eps`` (0.95);
  class 1: one boundary point ``x_b``, a random vertex of the eps-ball (both clipped to the box [0, 1]);
* the readout ``s(x') = w . f(x') - t`` with ``w = f(x_b) - mean f(class 0)`` and ``t`` halfway between
  ``w . f(x_b)`` and the largest ``w . f`` of class 0, scaled so that ``s(x_b) = 1`` and class 0 has
  ``s <= -1`` (unscaled, ``s`` runs into the hundreds and the cross-entropy gradient underflows to zero: the
  test would fail a working attack); the image is *testable* when that separates the two classes (``x_b`` is
  then a guaranteed adversarial point: ``s(x_b) > 0``), else it is skipped;
* the attack runs on the binary model (logits ``(0, s)``, label 0) at ``eps``; it *passes* the image when its
  output has ``s > 0``.

:func:`binarization_check` returns the fail rate over testable images and the flag ``binarization-test-failed``
when it exceeds :data:`~honestbench.diagnostics.flags.Tolerances` ``binarization`` (5 %).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from honestbench.attacks.registry import create_attack
from honestbench.core.rng import seeded_rng
from honestbench.diagnostics.checks import check_binarization
from honestbench.diagnostics.flags import DEFAULT_TOLERANCES, Tolerances
from honestbench.diagnostics.plan import default_pgd

#: class-0 points per image, and the radius of their ball as a fraction of eps (the reference implementation's eta)
INNER = 63
INNER_RADIUS = 0.95
#: images the test uses at most (the first clean-correct ones)
IMAGES = 40


def _feature_layer(model: nn.Module) -> nn.Module | None:
    return next((m for m in reversed(list(model.modules())) if isinstance(m, nn.Linear)), None)


class Binarized(nn.Module):
    """``model``'s features followed by one binary readout: logits ``(0, w . f - t)`` (module docstring)."""

    def __init__(self, model: nn.Module, w: torch.Tensor, t: float):
        super().__init__()
        self.model, self.w, self.t = model, w, t
        self.layer = _feature_layer(model)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer is None:
            return self.model(x).flatten(1)
        seen: list[torch.Tensor] = []
        handle = self.layer.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
        try:
            self.model(x)
        finally:
            handle.remove()
        return seen[-1].flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.features(x) @ self.w - self.t
        return torch.stack([torch.zeros_like(s), s], 1)


def binary_model(model: nn.Module, x: torch.Tensor, eps: float, generator: torch.Generator) -> Binarized | None:
    """The binary classifier of one image ``x`` (shape ``(1, C, H, W)``), or None when its readout cannot
    separate the boundary point from the inner ones (module docstring)."""
    inner = x + INNER_RADIUS * eps * (2 * torch.rand((INNER, *x.shape[1:]), generator=generator,
                                                     device=x.device) - 1)
    corner = x + eps * torch.sign(torch.rand(x.shape, generator=generator, device=x.device) - 0.5)
    points = torch.cat([x, inner, corner]).clamp(0, 1)
    probe = Binarized(model, torch.zeros(1, device=x.device), 0.0)
    with torch.no_grad():
        f = probe.features(points)
    w = f[-1] - f[:-1].mean(0)
    score = f @ w
    top0, b = float(score[:-1].max()), float(score[-1])
    if not b > top0:
        return None
    half_gap = (b - top0) / 2  # scaled so that s(x_b) = 1 and class 0 has s <= -1: saturated logits (s far
    return Binarized(model, w / half_gap, (top0 + b) / 2 / half_gap)  # below 0) would zero the CE gradient


def binarization_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                       attack: tuple[str, Mapping] | None = None, seed: int = 0, images: int = IMAGES,
                       tol: Tolerances = DEFAULT_TOLERANCES) -> tuple[tuple[float, int], str | None]:
    """The test on the first ``images`` clean-correct images of ``(x, y)`` with ``attack`` (``(name, params)``,
    default PGD-20 L-inf; its eps is forced to ``eps``): ``((fail rate, testable images), flag or None)``.
    Seeded; the caller's RNG is untouched."""
    name, params = attack or ("pgd-linf", default_pgd(eps))
    attack_ = create_attack(name, **{**params, "eps": eps})
    with torch.no_grad(), seeded_rng(seed, x.device):
        ok = model(x).argmax(1) == y
    gen = torch.Generator(device=x.device).manual_seed(seed)
    failed = tested = 0
    for i in torch.nonzero(ok).flatten()[:images].tolist():
        xi = x[i:i + 1]
        binary = binary_model(model, xi, eps, gen)
        if binary is None:
            continue
        target = torch.zeros(1, dtype=torch.long, device=x.device)
        with seeded_rng(seed + i, x.device):
            x_adv = attack_(binary, xi, target, generator=gen)
            with torch.no_grad():
                passed = bool(binary(x_adv)[0, 1] > 0)
        tested += 1
        failed += not passed
    rate = failed / tested if tested else 0.0
    return (rate, tested), check_binarization(rate, tested, name, tol.binarization)
