"""Evaluation-integrity diagnostics: named checks that flag results which are probably not real robustness.

After Carlini et al. 2019 ("On Evaluating Adversarial Robustness"), Athalye et al. 2018 and AutoAttack's
randomness check; the list is methods.md, "Evaluation integrity (beyond the report)". Units: images in [0, 1],
eps in the same units, accuracies and tolerances as fractions.

* :mod:`~honestbench.diagnostics.flags`: every flag (name, checklist item, explanation), :class:`Tolerances`,
  :func:`explain`; torch-free: all that ``bench report`` reads.
* :mod:`~honestbench.diagnostics.checks`: small pure functions on numbers (``check_*``) returning ``None`` or a
  flag string ``"<name>: <the two numbers that broke it> (methods.md, Evaluation integrity #k)"``.
* :mod:`~honestbench.diagnostics.rules`: the checks on record rows, one registered function per flag
  (:func:`record_check`), run by :func:`record_flags`; :mod:`~honestbench.diagnostics.records` reads the rows and
  writes flags back (:func:`apply_warnings`, joined with ``"; "``).
* :mod:`~honestbench.diagnostics.measure`: the measurements on a model (``*_check`` / ``measure_*``) that run the
  attacks on a few images; :mod:`~honestbench.diagnostics.plan` chooses them under a time budget.
* :func:`diagnose` (:mod:`~honestbench.diagnostics.diagnosis`) runs them all and returns
  ``{(model, attack column): [flag, ...]}`` for the rows that need a warning (empty for an honest evaluation).

Flags (name: check):
  ``single-step-stronger``   #1 multi-step accuracy above single-step accuracy at the same budget
  ``no-fall-with-eps``       #2 iterative accuracy not falling with eps / not near 0 at L-inf 0.5
  ``cw-unbounded-fails``     #3 unbounded CW (binary search) not succeeding on nearly every sample
  ``adaptive-stronger``      #4 surrogate / BPDA / transfer attack much stronger than the white-box one
  ``weaker-than-autoattack`` #4 our kernels above AutoAttack by more than 1 pp (deterministic model)
  ``not-converged``          #5 accuracy still falling when steps or restarts are doubled
  ``stochastic-no-eot``      #6 a stochastic model attacked without EOT
  ``stochastic-early-stop``  #6 a stochastic model attacked with early stop on one noisy forward pass
  ``zero-gradients`` / ``nonfinite-gradients``  #7 input gradients all zero / not finite
  ``aggregate-above-member`` #8 a per-sample aggregate (or the worst case) above one of its member columns

Every ``bench run`` applies the record checks of :data:`ALWAYS_CHECKS` (#1, #2, #4, #8: no forward pass);
``--diagnose`` adds the other record checks and the measured ones.

FGSM always runs before PGD in an early-exit cascade, so check #1 needs the full matrix or the model
(``diagnose(..., model=...)`` measures FGSM and PGD on every image).

The torch-heavy names (the measurements and :func:`diagnose`) load on first access (PEP 562), so that importing
this package for the flags does not load torch.
"""

from __future__ import annotations

import importlib

from honestbench.diagnostics.checks import (
    check_adaptive_stronger,
    check_autoattack,
    check_convergence,
    check_cw_unbounded,
    check_early_stop,
    check_eot,
    check_eps_sweep,
    check_gradients,
    check_single_step,
)
from honestbench.diagnostics.flags import (
    _ITEM,
    ADAPTIVE,
    AGGREGATE,
    AUTOATTACK,
    CW_FAILS,
    DEFAULT_TOLERANCES,
    EARLY_STOP,
    EPS_SWEEP,
    EXPLANATIONS,
    FLAGS,
    METHODS_LINK,
    NO_EOT,
    NONFINITE_GRAD,
    NOT_CONVERGED,
    SINGLE_STEP,
    ZERO_GRAD,
    Flag,
    Tolerances,
    define_flag,
    explain,
    flag_name,
)
from honestbench.diagnostics.plan import (
    EPS_SWEEP_DEFAULT,
    HEADLINE,
    MEASURES,
    PRIORITY,
    default_pgd,
    measure_passes,
    plan_measures,
)
from honestbench.diagnostics.records import apply_warnings
from honestbench.diagnostics.rules import ALWAYS_CHECKS, RECORD_CHECKS, kernels, record_check, record_flags

#: torch-heavy name -> the submodule that holds it (imported on first access)
_LAZY = {
    "robust_accuracy": "measure", "measure_single_vs_iterative": "measure", "eps_sweep_check": "measure",
    "convergence_check": "measure", "gradient_stats": "measure", "gradient_check": "measure",
    "eot_check": "measure", "cw_check": "measure", "diagnose": "diagnosis",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"honestbench.diagnostics.{_LAZY[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "_ITEM", "ADAPTIVE", "AGGREGATE", "ALWAYS_CHECKS", "AUTOATTACK", "CW_FAILS", "DEFAULT_TOLERANCES",
    "EARLY_STOP", "EPS_SWEEP",
    "EPS_SWEEP_DEFAULT", "EXPLANATIONS", "FLAGS", "HEADLINE", "MEASURES", "METHODS_LINK", "NONFINITE_GRAD",
    "NOT_CONVERGED", "NO_EOT", "PRIORITY", "RECORD_CHECKS", "SINGLE_STEP", "ZERO_GRAD", "Flag", "Tolerances",
    "apply_warnings", "check_adaptive_stronger", "check_autoattack", "check_convergence", "check_cw_unbounded",
    "check_early_stop", "check_eot", "check_eps_sweep", "check_gradients", "check_single_step",
    "default_pgd", "define_flag", "explain", "flag_name", "kernels", "measure_passes", "plan_measures",
    "record_check", "record_flags", *_LAZY,
]
