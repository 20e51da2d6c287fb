""":func:`diagnose`: every check on a table of records and, when given, on the model itself. Images in
[0, 1]; eps in the same units; accuracies are fractions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from honestbench.core.budgets import EPS_LINF
from honestbench.diagnostics.binarization import binarization_check
from honestbench.diagnostics.checks import check_eot, check_single_step
from honestbench.diagnostics.flags import DEFAULT_TOLERANCES, NO_EOT, Tolerances, flag_name
from honestbench.diagnostics.measure import (
    convergence_check,
    cw_check,
    eot_check,
    eps_sweep_check,
    gradient_check,
    measure_single_vs_iterative,
)
from honestbench.diagnostics.plan import HEADLINE, MEASURES, default_pgd, needs_eot_numbers, pgd_for
from honestbench.diagnostics.records import Row, as_dicts, rows_of
from honestbench.diagnostics.rules import record_flags
from honestbench.engine.stochastic import is_stochastic_by_forward


def _models(recs: list[dict], model, name: str | None) -> dict[str, nn.Module]:
    """``{name: model}`` from diagnose's ``model`` argument (a model, a mapping or None)."""
    if isinstance(model, Mapping):
        return dict(model)
    if model is None:
        return {}
    names = list(dict.fromkeys(str(r.get("model")) for r in recs))
    if name is None and len(names) > 1:
        raise ValueError(f"records hold several models {names}: pass name= or a {{name: model}} mapping")
    return {name or (names[0] if names else "model"): model}


def _measure(m: nn.Module, xs: torch.Tensor, ys: torch.Tensor, rows: list[Row], stoch: bool, *, seed: int,
             eps: float | None, measure: Sequence[str], eot: int, R: int, tol: Tolerances
             ) -> tuple[list[tuple[str, str]], tuple[float, float] | None]:
    """The measured checks of ``measure`` on one model: ``([(column, flag), ...], EOT accuracies or None)``."""
    pgd_row, e, pgd = pgd_for(rows, eps)
    at = pgd_row.label if pgd_row else HEADLINE
    reps = R if stoch else 1
    flags: list[tuple[str, str]] = []
    if "gradients" in measure:
        flags += [(HEADLINE, f) for f in gradient_check(m, xs, ys, seed, tol)[1]]
    if "single-step" in measure:
        fg, it = measure_single_vs_iterative(m, xs, ys, e, pgd, R=reps, seed=seed)
        f = check_single_step(it, fg, tol.single_step, len(xs))
        flags += [(at, f + " (measured on every image)")] if f else []
    if "eps-sweep" in measure:
        f = eps_sweep_check(m, xs, ys, eot=eot if stoch else 1, R=reps, seed=seed, tol=tol)[1]
        flags += [(HEADLINE, f)] if f else []
    if "convergence" in measure:
        flags += [(at, f) for f in convergence_check(m, xs, ys, pgd, reps, seed, tol)[1]]
    eot_numbers = None
    if "eot" in measure and stoch and needs_eot_numbers(rows):  # else no row carries the numbers
        eot_numbers = eot_check(m, xs, ys, {**pgd, "eot": 1}, eot, R, seed)
    if "binarization" in measure and not stoch:
        linf = pgd_row is None or pgd_row.kernel == "pgd-linf"  # the test's ball is an L-inf one
        f = binarization_check(m, xs, ys, e if linf else EPS_LINF, ("pgd-linf", pgd if linf else default_pgd()),
                               seed, tol=tol)[1]
        flags += [(at, f)] if f else []
    if "cw" in measure:
        f = cw_check(m, xs, ys, seed, tol=tol)[1]
        flags += [(HEADLINE, f)] if f else []
    return flags, eot_numbers


def diagnose(records=None, model: nn.Module | Mapping[str, nn.Module] | None = None,
             x: torch.Tensor | None = None, y: torch.Tensor | None = None, *, name: str | None = None,
             n: int = 128, seed: int = 0, eps: float | None = None, measure: Sequence[str] = MEASURES,
             eot: int = 10, R: int = 10, tol: Tolerances = DEFAULT_TOLERANCES
             ) -> dict[tuple[str, str], list[str]]:
    """Run every check; returns ``{(model, attack column): [flag, ...]}`` for the rows that need a warning.

    ``records``: record rows (list of dicts or a DataFrame, as :mod:`honestbench.results` writes them) or None.
    ``model``: a model (the records' only model, or ``name``) or ``{name: model}``; with ``x``, ``y``
    (images in [0, 1], the first ``n`` are used) the model-level checks in ``measure`` run on it:
    ``stochastic`` (two forward passes differ), ``gradients`` (#7), ``single-step`` (#1, FGSM vs the
    records' PGD or PGD-20, every image), ``eps-sweep`` (#2), ``convergence`` (#5), ``eot`` (#6, accuracy
    without and with ``eot`` passes; only for stochastic models whose records have a gradient attack with
    eot = 1, the row whose flag carries the numbers), ``binarization`` (#7, the binarization test of the records'
    PGD L-inf on a deterministic model, :mod:`~honestbench.diagnostics.binarization`) and ``cw`` (#3, not by
    default: slow). For a time
    budget see :func:`honestbench.diagnostics.plan_measures`.
    ``eps``: the budget of the measurements (default: the records' PGD eps, else 8/255). A stochastic model's
    accuracies are means over ``R`` passes. Model-level flags go on the ``worst-case`` row; flags about one
    attack go on its row."""
    recs = as_dicts(records)
    models = _models(recs, model, name)
    if models and (x is None or y is None):
        raise ValueError("diagnose(model=...) needs the images x and labels y")

    stochastic: dict[str, bool] = {}
    measured: dict[tuple[str, str], list[str]] = {}
    eot_numbers: dict[str, tuple[float, float]] = {}
    for mname, m in models.items():
        dev = next((p.device for p in m.parameters()), torch.device("cpu"))
        xs, ys = x[:n].to(dev), y[:n].to(dev)
        rows = [r for r in rows_of(recs) if r.model == mname]
        stoch = is_stochastic_by_forward(m, xs, seed) if "stochastic" in measure else \
            any(r.stochastic for r in rows)
        stochastic[mname] = stoch
        flags, numbers = _measure(m, xs, ys, rows, stoch, seed=seed, eps=eps, measure=measure, eot=eot, R=R,
                                  tol=tol)
        if numbers is not None:
            eot_numbers[mname] = numbers
        for label, f in flags:
            measured.setdefault((mname, label), []).append(f)

    out = record_flags(recs, tol, stochastic)
    for (mname, _label), fl in out.items():  # put the measured numbers into the EOT flags
        if mname in eot_numbers:
            a, b = eot_numbers[mname]
            fl[:] = [check_eot(True, 1, a, b) if flag_name(f) == NO_EOT else f for f in fl]
    for key, fl in measured.items():
        for f in fl:
            if f not in out.setdefault(key, []):
                out[key].append(f)
    return {k: v for k, v in out.items() if v}
