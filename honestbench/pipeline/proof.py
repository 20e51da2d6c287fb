"""The check behind ``bench verify``: is this float32 image an adversarial example of that clean image, within
that budget, for that model? Written without any code of :mod:`honestbench.attacks` (no projection, no
norm, no frozen-eval helper of theirs), so a bug there cannot hide itself here.

Per image: the dtype and shape; finite pixels in the box [0, 1]; the perturbation measured in float64
against the clean image from the data, in the column's recorded norm (``linf``: max |d|; ``l2``: the
Euclidean norm of the whole image), at most ``eps`` + :data:`TOLERANCE` (one float32 rounding of a pixel is
about 6e-8); a fresh forward pass in eval mode (gradients off, the model's mode restored) misclassifies it.
A stochastic model is classified in ``passes`` seeded passes and the fraction that misclassify is reported;
the image is unproven when none does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from honestbench.core.rng import seeded_rng

#: slack on the re-measured budget, pixel units of [0, 1] (float32 rounding of the stored image)
TOLERANCE = {"linf": 1e-6, "l2": 1e-5}
#: default number of passes of a stochastic model per image
PASSES = 10


@dataclass(frozen=True)
class Budget:
    """A threat model: ``norm`` ('linf', 'l2', or 'none' = unbounded) and ``eps`` in pixel units of [0, 1]."""

    norm: str
    eps: float | None

    def text(self) -> str:
        if self.norm not in TOLERANCE or self.eps is None:
            return "no budget (box [0, 1] only)"
        return f"{self.norm} <= {self.eps:.6g} (+{TOLERANCE[self.norm]:g})"


@dataclass
class ImageCheck:
    """The verdict on images: ``size`` the float64 perturbation in the budget's norm, ``fooled`` the fraction
    of passes that misclassify, ``reason`` '' when proven, else why not."""

    size: np.ndarray
    fooled: np.ndarray
    reason: list[str]


def perturbation_size(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-image perturbation in float64: max |d| (``linf``) or the whole-image Euclidean norm (else)."""
    d = x_adv.astype(np.float64).reshape(len(x_adv), -1) - x.astype(np.float64).reshape(len(x), -1)
    return np.abs(d).max(1) if norm == "linf" else np.sqrt((d * d).sum(1))


def classify(model: nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device, passes: int = 1,
             seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """Fraction of ``passes`` eval-mode forward passes (seeded) that misclassify each image of ``x``."""
    was_training = model.training
    model.eval()
    wrong = np.zeros(len(x), np.float64)
    try:
        with seeded_rng(seed, device), torch.no_grad():
            for s in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size])).to(device)
                yb = torch.from_numpy(np.asarray(y[s:s + batch_size], np.int64)).to(device)
                hits = sum((model(xb).argmax(1) != yb).double() for _ in range(passes))
                wrong[s:s + batch_size] = (hits / passes).cpu().numpy()
    finally:
        model.train(was_training)
    return wrong


def check_images(model: nn.Module, x_adv: np.ndarray, x: np.ndarray, y: np.ndarray, budget: Budget,
                 device: torch.device, passes: int = 1, seed: int = 0) -> ImageCheck:
    """Check every image of ``x_adv`` against its clean image ``x`` and label ``y`` (module docstring)."""
    n = len(x_adv)
    reasons = [""] * n
    if x_adv.dtype != np.float32 or x_adv.shape != x.shape:
        bad = f"stored as {x_adv.dtype} {tuple(x_adv.shape[1:])}, expected float32 {tuple(x.shape[1:])}"
        return ImageCheck(np.full(n, np.nan), np.zeros(n), [bad] * n)
    flat = x_adv.reshape(n, -1)
    finite = np.isfinite(flat).all(1)
    in_box = finite & (flat.min(1, initial=0.0) >= 0) & (flat.max(1, initial=0.0) <= 1)
    norm = budget.norm if budget.norm in TOLERANCE else "linf"
    size = perturbation_size(np.nan_to_num(x_adv), x, norm)
    fooled = classify(model, np.nan_to_num(x_adv).clip(0, 1), y, device, passes, seed)
    for i in range(n):
        if not finite[i]:
            reasons[i] = "NaN or inf pixels"
        elif not in_box[i]:
            reasons[i] = f"pixels outside [0, 1] (min {flat[i].min():.6g}, max {flat[i].max():.6g})"
        elif budget.norm in TOLERANCE and budget.eps is not None and size[i] > budget.eps + TOLERANCE[budget.norm]:
            reasons[i] = f"outside the budget: {budget.norm} {size[i]:.8g} > {budget.eps:.8g}"
        elif fooled[i] == 0:
            reasons[i] = "not misclassified in a fresh eval pass" if passes == 1 else \
                f"misclassified in 0 of {passes} passes"
    return ImageCheck(size, fooled, reasons)
