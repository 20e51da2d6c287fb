"""Attack suites as data: a suite is an ordered list of (column label, attack name, parameters).

``get_suite(name)`` returns a :class:`Suite`; ``suite_names()`` lists them; ``describe_suites()`` is what
``bench list suites`` prints; ``model_suite`` is a suite as run on one model. Budgets are in pixel units of
[0, 1] images. Modules: :mod:`~honestbench.suites.base` (Entry, Suite), :mod:`~honestbench.suites.builtin` (the named
suites), :mod:`~honestbench.suites.adaptive` (the adaptive suite's construction), :mod:`~honestbench.suites.model`
(per-model suites, suites recorded by a run, the listing).
"""

from honestbench.suites.adaptive import (
    ADAPTIVE_DESCRIPTION,
    ADAPTIVE_PARAMS,
    ADAPTIVE_SUITE,
    TRANSFER_FALLBACK,
    TRANSFER_SOURCE,
    adaptive_entries,
    adaptive_params,
    adaptive_suite,
    params_text,
    pick_source,
    stochastic_additions,
)
from honestbench.suites.base import STOCHASTIC_POLICIES, CertifySpec, Entry, ModelPolicy, Suite
from honestbench.suites.builtin import DEFAULT_SUITE, get_suite, register_suite, suite_names
from honestbench.suites.model import describe_suites, model_suite, no_early_stop

__all__ = [
    "ADAPTIVE_DESCRIPTION",
    "ADAPTIVE_PARAMS",
    "ADAPTIVE_SUITE",
    "DEFAULT_SUITE",
    "TRANSFER_FALLBACK",
    "TRANSFER_SOURCE",
    "STOCHASTIC_POLICIES",
    "CertifySpec",
    "Entry",
    "ModelPolicy",
    "Suite",
    "adaptive_entries",
    "adaptive_params",
    "adaptive_suite",
    "describe_suites",
    "get_suite",
    "model_suite",
    "no_early_stop",
    "params_text",
    "pick_source",
    "register_suite",
    "stochastic_additions",
    "suite_names",
]
