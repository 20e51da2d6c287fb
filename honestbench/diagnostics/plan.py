"""Which measured checks :func:`honestbench.diagnostics.diagnose` runs on a model, and what they cost: the PGD the
measurements use, each measurement's cost in forward+backward passes per image, and the plan that keeps the
most telling ones within a time budget. Torch-free; eps in pixel units of [0, 1] images.
"""

from __future__ import annotations

from collections.abc import Sequence

from honestbench.core.budgets import EPS_LINF
from honestbench.diagnostics.records import Row, as_dicts, rows_of
from honestbench.diagnostics.rules import kernels

#: the measured checks :func:`honestbench.diagnostics.diagnose` runs by default ("cw" is slow: only on request)
MEASURES = ("stochastic", "gradients", "single-step", "eps-sweep", "convergence", "eot", "binarization")
#: the order in which :func:`plan_measures` keeps measurements under a time budget (most telling first)
PRIORITY = ("stochastic", "gradients", "eot", "binarization", "single-step", "eps-sweep", "convergence", "cw")
#: the L-inf budgets of the eps-sweep check (#2)
EPS_SWEEP_DEFAULT = (EPS_LINF, 0.1, 0.25, 0.5)
HEADLINE = "worst-case"  # the row that carries model-level flags


def default_pgd(eps: float = EPS_LINF, steps: int = 20, **kw: object) -> dict:
    """PGD L-inf parameters at ``eps``: ``steps`` steps of 2.5 eps / steps, random start (others default)."""
    return {"eps": eps, "alpha": 2.5 * eps / steps, "steps": steps, "random_start": True, **kw}


def pgd_for(rows: list[Row], eps: float | None) -> tuple[Row | None, float, dict]:
    """The records' first full-budget iterative row, the measurement budget and the PGD parameters the
    measured checks use (the records' own PGD at its eps, else PGD-20 at ``eps`` or 8/255)."""
    pgd_row = next((r for r in rows if r.kernel in kernels("iterative") and r.full_budget), None)
    e = eps if eps is not None else (float(pgd_row.eps) if pgd_row else EPS_LINF)
    pgd = {**pgd_row.params, "eps": e} if pgd_row and eps is None else default_pgd(e)
    return pgd_row, e, pgd


def needs_eot_numbers(rows: list[Row]) -> bool:
    """Whether some row would carry the EOT flag (a gradient attack with eot = 1): only then the measured
    accuracies without and with EOT are worth their cost (they are written into that flag)."""
    return any(r.kernel in kernels("eot") and r.eot == 1 for r in rows)


def measure_passes(records=None, name: str | None = None, stochastic: bool = False, eot: int = 10,
                   R: int = 10, eps: float | None = None) -> dict[str, float]:
    """Estimated cost of each measurement of :func:`diagnose` on one model, in forward+backward passes per
    image (R-pass predictions counted as half a pass each): what :func:`plan_measures` budgets with. A
    measurement that does not apply to this model (``eot`` on a deterministic model, or when no row lacks
    EOT) is left out."""
    rows = [r for r in rows_of(as_dicts(records)) if name is None or r.model == name]
    _, _, pgd = pgd_for(rows, eps)
    steps, restarts = int(pgd.get("steps", 10)), int(pgd.get("restarts", 1) or 1)
    pgd_eot = int(pgd.get("eot", 1) or 1)
    reps = R if stochastic else 1
    preds = reps  # clean + adversarial predictions, R of each, at half a pass
    cost = {
        "stochastic": 0.0,
        "gradients": 1.0,
        "single-step": pgd_eot * (1 + steps * restarts) + 2 * preds,
        "eps-sweep": len(EPS_SWEEP_DEFAULT) * (20 * (eot if stochastic else 1) + preds),
        "convergence": pgd_eot * steps * restarts * 5 + 3 * preds,
        "cw": 9 * 100.0,
    }
    if not stochastic:  # the binarization test: 40 images, one attack and 65 forward passes each, batch 1
        cost["binarization"] = 0.5 * (pgd_eot * steps * restarts + 25)
    if stochastic and needs_eot_numbers(rows):
        cost["eot"] = steps * (1 + eot) + 2 * preds
    return cost


def plan_measures(records=None, name: str | None = None, *, stochastic: bool = False,
                  seconds_per_pass: float | None = None, n: int = 128, budget_s: float | None = None,
                  measure: Sequence[str] = MEASURES, eot: int = 10, R: int = 10
                  ) -> tuple[list[str], list[str]]:
    """``(kept, skipped)``: the measurements of ``measure`` that fit ``budget_s`` seconds on ``n`` images at
    ``seconds_per_pass`` per image and forward+backward pass, taken in :data:`PRIORITY` order (a costly one
    that does not fit is skipped, cheaper ones after it may still run). No budget or no timing: all kept.
    For slow models on a CPU (a CIFAR WideResNet): the caller reports the skipped checks."""
    cost = measure_passes(records, name, stochastic, eot, R)
    order = [m for m in PRIORITY if m in measure and m in cost] + \
        [m for m in measure if m not in PRIORITY and m in cost]  # not applicable (cost absent): left out
    if budget_s is None or seconds_per_pass is None:
        return order, []
    kept, skipped, total = [], [], 0.0
    for m in order:
        t = cost.get(m, 0.0) * n * seconds_per_pass
        if m in ("stochastic", "gradients") or total + t <= budget_s:
            kept.append(m)
            total += t
        else:
            skipped.append(m)
    return kept, skipped
