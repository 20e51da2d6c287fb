"""Per-model suites: a suite names columns, but a stochastic model needs other attacks than a deterministic
one, and a run must be able to rebuild exactly what it measured.

Each suite declares its policy as data (:class:`~honestbench.suites.base.ModelPolicy`): ``flavour``
(``adaptive``) takes the stochastic flavour (AutoAttack-rand, EOT-PGD without early stop, BPDA with EOT) for a
stochastic model; ``adaptive-columns`` (``standard``) gains the stochastic flavour's columns (``EOT-PGD``,
``AutoAttack``, ``surrogate-PGD``, ``BPDA-PGD``, ``transfer-PGD``) for every stochastic model; ``surrogate-twin``
(every other suite, ``ci`` included) gains, for a stochastic model, the cheapest attack that sees through
obfuscated gradients: the surrogate twin of its PGD L-inf column (:func:`surrogate_twin`, label
``surrogate-PGD``), so that the main job's record checks can raise ``adaptive-stronger`` on a masked model. A
deterministic model gets the suite as it is (a ``flavour`` suite: its deterministic flavour). On a stochastic
model every attack with an ``early_stop`` option that the suite does not set
runs with ``early_stop=False`` (:func:`no_early_stop`): first-success early stop keeps the first iterate that
fooled one random forward pass, which the evaluation pass's fresh draw often classifies right
(``results/crosscheck/quality_bar.md``). ``bench run`` writes each model's entries into
``cells/<model>/model.json`` and, where they differ from the suite's, into the records' run info
(``model_suites``), from which ``bench check`` rebuilds them (:func:`honestbench.engine.describe.recorded_suite`).
"""

from __future__ import annotations

import dataclasses

from honestbench.attacks import attack_defaults, names_with_role
from honestbench.core.budgets import ALPHA_LINF, EPS_LINF
from honestbench.suites.adaptive import ADAPTIVE_DESCRIPTION, adaptive_suite, stochastic_additions
from honestbench.suites.base import Entry, Suite
from honestbench.suites.builtin import get_suite, suite_names


def model_suite(suite: Suite, stochastic: bool, target: str | None = None, data: str | None = None) -> Suite:
    """The suite that model ``target`` (of dataset ``data``) is evaluated with under ``suite``: the
    stochastic or deterministic flavour of ``adaptive``; for a stochastic model ``standard`` plus the
    adaptive columns and any other suite plus its :func:`surrogate_twin` (EOT where needed, no early stop);
    ``suite`` itself for a deterministic model, as the suite's :class:`~honestbench.suites.base.ModelPolicy`
    says (module docstring). The one place of the per-model rule."""
    if suite.policy.stochastic == "flavour":
        return adaptive_suite(stochastic, target=target, data=data, **suite.params)
    if not stochastic:
        return suite
    if suite.policy.stochastic == "adaptive-columns":
        extra = tuple(Entry(*e) for e in stochastic_additions(target, data=data, **suite.params))
        by_label = {e.label: e for e in extra}  # AutoAttack: the rand flavour takes the standard one's place
        entries = tuple(by_label.pop(e.label, e) for e in suite.entries) + tuple(by_label.values())
        suite = dataclasses.replace(suite, entries=entries,
                                    description=suite.description + "; for stochastic models also "
                                    + ADAPTIVE_DESCRIPTION[0].lower() + ADAPTIVE_DESCRIPTION[1:])
    elif not any(e.attack in names_with_role("adaptive") for e in suite.entries):
        twin = surrogate_twin(suite)
        suite = dataclasses.replace(suite, entries=suite.entries + (twin,), description=(
            suite.description + f"; stochastic model: + {twin.label} (PGD-{twin.params['steps']} L-inf "
            f"{255 * twin.params['eps']:.3g}/255 on the smooth surrogate, scored on the real model)"))
    return no_early_stop(suite)


#: label of the column :func:`surrogate_twin` adds
SURROGATE_LABEL = "surrogate-PGD"
#: steps of the surrogate column of a suite without a PGD L-inf column
SURROGATE_STEPS = 10


def surrogate_twin(suite: Suite) -> Entry:
    """The ``surrogate-pgd`` column added to ``suite`` for a stochastic model: the same eps / alpha / steps /
    random start as the suite's PGD L-inf column (the one labelled ``PGD``, else the one at
    :data:`~honestbench.core.budgets.EPS_LINF`, else the first), or PGD-:data:`SURROGATE_STEPS` at the standard
    budget (:mod:`honestbench.core.budgets`) when it has none. Budgets in [0, 1] pixel units."""
    pgds = [e for e in suite.entries if e.attack == "pgd-linf"]
    pick = next((e for e in pgds if e.label == "PGD"), None) or next(
        (e for e in pgds if abs(float(e.params.get("eps", EPS_LINF)) - EPS_LINF) < 1e-9), None) or (
        pgds[0] if pgds else None)
    if pick is None:
        params = {"eps": EPS_LINF, "alpha": ALPHA_LINF, "steps": SURROGATE_STEPS, "random_start": True}
    else:
        defaults = attack_defaults("pgd-linf")
        params = {k: pick.params.get(k, defaults.get(k)) for k in ("eps", "alpha", "steps", "random_start")}
    return Entry(SURROGATE_LABEL, "surrogate-pgd", params)


def no_early_stop(suite: Suite) -> Suite:
    """``suite`` with ``early_stop=False`` in every entry whose attack has that option and does not set it
    (the rule for stochastic models, module docstring); ``suite`` itself when nothing changes."""
    entries = tuple(dataclasses.replace(e, params={**e.params, "early_stop": False})
                    if "early_stop" in attack_defaults(e.attack) and "early_stop" not in e.params else e
                    for e in suite.entries)
    if entries == suite.entries:
        return suite
    return dataclasses.replace(suite, entries=entries,
                               description=suite.description + "; stochastic model: no first-success early stop")


def _aggregate_row(column: str, members: list[str], spec: str) -> dict:
    return {"column": column, "attack": "aggregate", "params": {"members": members}, "spec": spec,
            "norm": None, "eps": None, "eps_effective": None}


def describe_suites(pattern: str = "*") -> list[dict]:
    """For ``bench list suites``: one dict per suite with ``name``, ``description``, ``default_n``,
    ``full_matrix``, ``aggregates`` and ``attacks`` (each: ``column``, ``attack``, ``params``, ``spec``,
    ``norm``, ``eps``, ``eps_effective``)."""
    out = []
    for name in suite_names(pattern):
        s = get_suite(name)
        attacks = []
        for e in s.entries:
            a = e.build()
            attacks.append({"column": e.label, "attack": e.attack, "params": a.params(), "spec": a.spec(),
                            "norm": a.norm, "eps": a.budget, "eps_effective": a.effective_eps()})
        attacks += [_aggregate_row(agg, m, "per-sample worst case of " + " and ".join(m))
                    for agg, m in s.aggregates.items()]
        attacks.append(_aggregate_row("worst-case", s.labels, "per-sample worst case over every attack above"))
        out.append({"name": s.name, "description": s.description, "default_n": s.default_n,
                    "full_matrix": s.full_matrix, "aggregates": dict(s.aggregates), "attacks": attacks})
    return out
