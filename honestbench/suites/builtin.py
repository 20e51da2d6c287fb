"""The named suites as data, and their lookup (``get_suite``, ``suite_names``). Budgets are in pixel units of
[0, 1] images (the standard ones from :mod:`honestbench.core.budgets`); see ``docs/methods.md`` for the definitions.

  * ``seed-table1``: the student report's literal Table 1 settings (FGSM eps 0.3; PGD L-inf eps 0.3,
    alpha 0.01, 3 steps from the clean image; CW with fixed c = 1e-4, kappa = 0.01). Its PGD cannot move
    more than 3 x 0.01 = 0.03 in L-inf: the records show the nominal 0.3 and the effective 0.03.
  * ``standard``: FGSM 8/255; PGD-20 L-inf 8/255 (alpha 2/255, random start); PGD-20 L2 0.5; CW-L2 with
    binary search over c (5 rounds of 50 Adam steps: 250 gradient passes per image, a CPU-affordable cut of
    the kernel's 9 x 100 default), a sample counted as fooled only when its CW perturbation has L2 <= 0.5.
    AutoAttack L-inf 8/255 (standard flavour: APGD-CE, APGD-T, FAB-T, Square 5,000 queries, 100 iterations;
    a stochastic model gets the rand flavour with EOT instead, among its adaptive columns). In the default
    early-exit cascade it runs on the images FGSM and the two PGDs left robust (its cost, 100, orders it
    before CW's 250), so the worst case is never above AutoAttack's. Plus the per-sample L2 + L-inf PGD
    aggregate.
  * ``platform``: PGD L2 0.5 and PGD L-inf 8/255 and their per-sample aggregate: the correct version of the
    report's Table 2 (which added the two accuracies into one number above 100 %).
  * ``ci``: FGSM + PGD-10 L-inf 8/255 + uniform noise 8/255 on the first 128 images; cheap enough for CI and
    the main job. Always full matrix: every column exact, so the main job's table needs no bounds and
    ``bench check`` sees a regression in any of the three kernels (under early exit a broken PGD would hide
    behind FGSM); with PGD's own early stop this costs little more than the cascade.
  * ``eps-sweep``: PGD-10 L-inf at eps 1, 2, 4, 8, 16, 32 /255 and 0.3 for the accuracy-vs-eps figure. Its
    columns are independent measurements (always full matrix: no early-exit cascade across budgets).
  * ``certified``: FGSM, PGD-20 and PGD-50 x 3 restarts at L-inf 8/255, plus the bound columns
    (:class:`~honestbench.suites.base.CertifySpec`): ``certified`` (CROWN) and ``exact`` (MILP, 10 s per
    image) with the check that no attack breaks an image they call robust.
  * ``adaptive``: AutoAttack, PGD-20, PGD-100 on the smooth surrogate, BPDA-PGD-50 and transfer PGD-20
    (:mod:`honestbench.suites.adaptive`), always full matrix. Registered here in its deterministic flavour (for
    listing); ``bench run`` evaluates each model with its own flavour (:func:`honestbench.suites.model_suite`).
"""

from __future__ import annotations

import dataclasses
import fnmatch

from honestbench.core.budgets import ALPHA_LINF, EPS_L2, EPS_LINF
from honestbench.core.errors import BenchError
from honestbench.core.registry import suggest
from honestbench.suites.adaptive import (
    ADAPTIVE_DESCRIPTION,
    ADAPTIVE_POLICY,
    adaptive_entries,
    adaptive_params,
    params_text,
)
from honestbench.suites.base import CertifySpec, Entry, ModelPolicy, Suite

DEFAULT_SUITE = "ci"

_SUITES: dict[str, Suite] = {}


def register_suite(suite: Suite) -> Suite:
    """Add ``suite`` under its name (:func:`check_suite` first)."""
    _SUITES[check_suite(suite).name] = suite
    return suite


def check_suite(suite: Suite) -> Suite:
    """``suite`` when its labels are unique and its aggregates are over its own labels (ValueError else)."""
    labels = suite.labels
    if len(set(labels)) != len(labels):
        raise ValueError(f"suite {suite.name}: duplicate column labels {labels}")
    for agg, members in suite.aggregates.items():
        if agg in labels or not set(members) <= set(labels):
            raise ValueError(f"suite {suite.name}: aggregate {agg} has unknown members {members}")
    return suite


def _pgd_l2(eps: float, steps: int, **kw: object) -> dict:
    return {"eps": eps, "alpha": 2.5 * eps / steps, "steps": steps, "random_start": True, **kw}


def _autoattack(stochastic: bool = False, **params: int) -> Entry:
    """The ``AutoAttack`` column of the ``adaptive`` suite's flavour (strengths ``params``)."""
    return next(Entry(*e) for e in adaptive_entries(stochastic, source="", **params) if e[0] == "AutoAttack")


def _pgd_linf(steps: int) -> dict:
    return {"eps": EPS_LINF, "alpha": ALPHA_LINF, "steps": steps, "random_start": True}


_SWEEP = [(f"{k}/255", k / 255) for k in (1, 2, 4, 8, 16, 32)] + [("0.3", 0.3)]

for _suite in (
    Suite("seed-table1",
          "The report's Table 1 settings, literally: FGSM eps 0.3; PGD L-inf eps 0.3 alpha 0.01 3 steps, no "
          "random start (effective budget 0.03); CW fixed c 1e-4, kappa 0.01, unbounded",
          (Entry("FGSM", "fgsm", {"eps": 0.3}),
           Entry("PGD", "pgd-linf", {"eps": 0.3, "alpha": 0.01, "steps": 3, "random_start": False}),
           Entry("CW", "cw-l2", {"mode": "fixed", "c": 1e-4, "kappa": 0.01, "threshold": None}))),
    Suite("standard",
          "Standard budgets: FGSM 8/255; PGD-20 L-inf 8/255 alpha 2/255 random start; PGD-20 L2 0.5; CW-L2 "
          "binary search (5 x 50 steps) counted at L2 <= 0.5; AutoAttack L-inf 8/255 (standard flavour); "
          "per-sample L2+L-inf PGD aggregate",
          (Entry("FGSM", "fgsm", {"eps": EPS_LINF}),
           Entry("PGD", "pgd-linf", _pgd_linf(20)),
           Entry("PGD-L2", "pgd-l2", _pgd_l2(EPS_L2, 20)),
           Entry("CW", "cw-l2", {"threshold": EPS_L2, "search_steps": 5, "steps": 50}),
           _autoattack()),
          aggregates={"PGD-L2+Linf": ["PGD-L2", "PGD"]},
          policy=ModelPolicy(stochastic="adaptive-columns", parametrised=True)),
    Suite("platform",
          "The report's Table 2 done right: PGD-20 L2 0.5 and PGD-20 L-inf 8/255 and their per-sample aggregate "
          "(a sample counts only if it survives both; never the sum of the two accuracies)",
          (Entry("PGD-L2", "pgd-l2", _pgd_l2(EPS_L2, 20)),
           Entry("PGD", "pgd-linf", _pgd_linf(20))),
          aggregates={"PGD-L2+Linf": ["PGD-L2", "PGD"]}),
    Suite("ci",
          "CI-sized: FGSM 8/255, PGD-10 L-inf 8/255 alpha 2/255 random start, uniform noise 8/255 (first 128 "
          "images by default; full matrix, every column exact)",
          (Entry("FGSM", "fgsm", {"eps": EPS_LINF}),
           Entry("PGD", "pgd-linf", _pgd_linf(10)),
           Entry("noise", "noise", {"eps": EPS_LINF})),
          default_n=128, full_matrix=True),
    Suite("eps-sweep",
          "PGD-10 L-inf (alpha 2.5 eps/10, random start) at eps 1, 2, 4, 8, 16, 32 /255 and 0.3: robust "
          "accuracy against eps; columns measured independently (full matrix)",
          tuple(Entry(f"PGD@{name}", "pgd-linf", {"eps": eps, "alpha": 2.5 * eps / 10, "steps": 10,
                                                   "random_start": True}) for name, eps in _SWEEP),
          full_matrix=True),
    Suite("certified",
          "Ground truth beside the attacks, L-inf 8/255: FGSM; PGD-20 and PGD-50 x 3 restarts (random start); "
          "the certified column (CROWN lower bound) and the exact column (MILP, 10 s per image, models of at "
          "most 1,000 ReLUs); every certified or exact robust image is checked against every attack",
          (Entry("FGSM", "fgsm", {"eps": EPS_LINF}),
           Entry("PGD", "pgd-linf", _pgd_linf(20)),
           Entry("PGD-50x3", "pgd-linf", {"eps": EPS_LINF, "alpha": 2.5 * EPS_LINF / 50, "steps": 50,
                                          "restarts": 3, "random_start": True})),
          certify=CertifySpec("crown", exact_limit=10.0)),
    Suite("adaptive", ADAPTIVE_DESCRIPTION, tuple(Entry(*e) for e in adaptive_entries(False)),
          default_n=128, full_matrix=True,
          policy=ADAPTIVE_POLICY),
):
    register_suite(_suite)


def suite_names(pattern: str = "*") -> list[str]:
    """Names of the defined suites matching a shell-style pattern, in definition order."""
    return [n for n in _SUITES if fnmatch.fnmatch(n, pattern)]


def _parse_params(part_list: str) -> dict[str, int]:
    params: dict[str, int] = {}
    for part in (p.strip() for p in part_list.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        try:
            params[key.strip()] = int(value)
        except ValueError:
            raise BenchError(f"suite parameter {part!r}: expected key=integer, e.g. adaptive:aa_steps=50") from None
        if not eq:
            raise BenchError(f"suite parameter {part!r}: expected key=integer, e.g. adaptive:aa_steps=50")
    return params


def get_suite(name: str) -> Suite:
    """The suite called ``name`` (a one-line error listing the choices otherwise). ``adaptive`` and
    ``standard`` take parameters, ``adaptive:aa_eot=5,bpda_eot=5``: the strengths of the adaptive attacks
    (:data:`honestbench.suites.adaptive.ADAPTIVE_PARAMS`; in ``standard`` they apply to the columns added for
    stochastic models), e.g. to make AutoAttack-rand affordable for a slow model on a CPU. The suite keeps
    its name; its description and ``params`` say what changed."""
    base, _, arg = name.partition(":")
    if base not in _SUITES:
        raise BenchError(f"unknown suite {base!r}{suggest(base, list(_SUITES), cutoff=0.4)}; "
                         f"choose one of {', '.join(_SUITES)} (see `bench list suites`)")
    suite = _SUITES[base]
    if not arg.strip():
        return suite
    if not suite.policy.parametrised:
        takes = [n for n, s in _SUITES.items() if s.policy.parametrised]
        raise BenchError(f"suite {base!r} takes no parameters (only {', '.join(takes)} do)")
    params = _parse_params(arg)
    adaptive_params(**params)  # validates names and values (AttackConfigError is a one-line BenchError)
    changed = {k: v for k, v in params.items() if v != adaptive_params()[k]}
    if not changed:
        return suite
    entries = suite.entries
    if suite.policy.stochastic == "flavour":  # its columns are the adaptive ones: rebuilt with the strengths
        entries = tuple(Entry(*e) for e in adaptive_entries(False, **changed))
    else:  # its own AutoAttack column takes the strengths too
        entries = tuple(_autoattack(**changed) if e.label == "AutoAttack" else e for e in entries)
    return dataclasses.replace(suite, entries=entries, params=changed,
                               description=suite.description + params_text(changed))
