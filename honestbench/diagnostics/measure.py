"""The measured checks: run attacks on a few images of a model and hand the numbers to the checks of
:mod:`honestbench.diagnostics.checks`. Images in [0, 1]; eps in the same units; accuracies are fractions. Every
measurement is seeded and leaves the caller's RNG untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from honestbench.attacks.base import frozen_eval, input_grad
from honestbench.attacks.registry import create_attack
from honestbench.core.budgets import EPS_LINF
from honestbench.core.rng import seeded_rng
from honestbench.diagnostics.checks import (
    check_convergence,
    check_cw_unbounded,
    check_eps_sweep,
    check_gradients,
)
from honestbench.diagnostics.flags import DEFAULT_TOLERANCES, Tolerances
from honestbench.diagnostics.plan import EPS_SWEEP_DEFAULT, default_pgd
from honestbench.engine.stochastic import predictions


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack, R: int = 1,
                    seed: int = 0) -> float:
    """Robust accuracy of ``attack`` (an Attack, or ``(name, params)``) on ``(x, y)``: mean over ``R``
    seeded passes of "correct on the clean AND on the adversarial image" (methods.md); seeded, the caller's
    RNG untouched."""
    if isinstance(attack, tuple):
        attack = create_attack(attack[0], **attack[1])
    gen = torch.Generator(device=x.device).manual_seed(seed)
    with seeded_rng(seed, x.device):
        x_adv = attack(model, x, y, generator=gen)
    clean = predictions(model, x, R, seed + 1) == y.cpu()[None]
    adv = predictions(model, x_adv, R, seed + 2) == y.cpu()[None]
    return float((clean & adv).double().mean())


def measure_single_vs_iterative(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = EPS_LINF,
                                pgd: Mapping | None = None, eot: int = 1, R: int = 1,
                                seed: int = 0) -> tuple[float, float]:
    """(FGSM accuracy, PGD accuracy) on every image at the same L-inf ``eps`` (``pgd``: PGD parameters,
    default :func:`default_pgd`; its eps is forced to ``eps``)."""
    params = {**(pgd or default_pgd(eps)), "eps": eps}
    params.setdefault("eot", eot)
    fgsm = robust_accuracy(model, x, y, ("fgsm", {"eps": eps, "eot": params["eot"]}), R, seed)
    it = robust_accuracy(model, x, y, ("pgd-linf", params), R, seed)
    return fgsm, it


def eps_sweep_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    eps: Sequence[float] = EPS_SWEEP_DEFAULT, steps: int = 20, eot: int = 1, R: int = 1,
                    seed: int = 0, tol: Tolerances = DEFAULT_TOLERANCES
                    ) -> tuple[dict[float, float], str | None]:
    """#2 on a model: PGD L-inf (``steps`` steps of 2.5 eps / steps, random start, every step run, EOT
    ``eot``) at each ``eps`` (default 8/255, 0.1, 0.25, 0.5); returns ``({eps: accuracy}, flag or None)``."""
    accs = {float(e): robust_accuracy(model, x, y, ("pgd-linf", default_pgd(e, steps, eot=eot,
                                                                             early_stop=False)), R, seed)
            for e in eps}
    return accs, check_eps_sweep(accs, tol.eps_final, tol.eps_rise, len(x))


def convergence_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pgd: Mapping | None = None,
                      R: int = 1, seed: int = 0, tol: Tolerances = DEFAULT_TOLERANCES
                      ) -> tuple[dict[str, float], list[str]]:
    """#5 on a model: PGD L-inf with ``pgd`` parameters, then with twice the steps (same ``steps * alpha``
    reach is kept by halving alpha) and with twice the restarts; returns accuracies and flags."""
    base = dict(pgd or default_pgd())
    steps, restarts = int(base.get("steps", 10)), int(base.get("restarts", 1))
    alpha = base.get("alpha")
    variants = {"base": base,
                "steps x2": {**base, "steps": 2 * steps, "alpha": (alpha / 2) if alpha else alpha},
                "restarts x2": {**base, "restarts": 2 * restarts}}
    accs = {k: robust_accuracy(model, x, y, ("pgd-linf", v), R, seed) for k, v in variants.items()}
    flags = [f for k in ("steps x2", "restarts x2")
             if (f := check_convergence(accs["base"], accs[k], tol.convergence, len(x),
                                        f"{k} ({steps} steps, {restarts} restart(s) before)"))]
    return accs, flags


def gradient_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "ce",
                   seed: int = 0) -> tuple[float, float]:
    """(fraction of images whose input gradient is exactly zero everywhere, fraction with any NaN/inf)."""
    with frozen_eval(model), seeded_rng(seed, x.device):
        g, _ = input_grad(model, x, y, loss)
    flat = g.flatten(1)
    nonfinite = ~torch.isfinite(flat).all(1)
    zero = (flat == 0).all(1)
    return float(zero.double().mean()), float(nonfinite.double().mean())


def gradient_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0,
                   tol: Tolerances = DEFAULT_TOLERANCES) -> tuple[tuple[float, float], list[str]]:
    """#7 on a model: ``((zero fraction, non-finite fraction), flags)`` of the cross-entropy input
    gradient."""
    zero, bad = gradient_stats(model, x, y, "ce", seed)
    return (zero, bad), check_gradients(zero, bad, tol.zero_grad)


def eot_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pgd: Mapping | None = None, eot: int = 20,
              R: int = 10, seed: int = 0) -> tuple[float, float]:
    """(PGD accuracy with ``pgd``'s own eot, the same PGD with ``eot`` passes per step and every step run),
    each the mean over ``R`` passes: how much a single-pass attack overstates a stochastic model."""
    base = dict(pgd or default_pgd())
    a = robust_accuracy(model, x, y, ("pgd-linf", base), R, seed)
    b = robust_accuracy(model, x, y, ("pgd-linf", {**base, "eot": eot, "early_stop": False}), R, seed)
    return a, b


def cw_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0, steps: int = 100,
             search_steps: int = 9, tol: Tolerances = DEFAULT_TOLERANCES) -> tuple[float, str | None]:
    """#3 on a model: success rate of unbounded CW-L2 (binary search) on the clean-correct images."""
    ok = (predictions(model, x, 1, seed)[0] == y.cpu()).to(x.device)
    if not ok.any():
        return 1.0, None
    cw = create_attack("cw-l2", threshold=None, steps=steps, search_steps=search_steps)
    with seeded_rng(seed, x.device):
        res = cw.minimize(model, x[ok], y[ok])
    rate = float(res.success.double().mean())
    return rate, check_cw_unbounded(rate, tol.cw_success)
