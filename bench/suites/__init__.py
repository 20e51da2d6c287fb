"""Attack suites as data: a suite is an ordered list of (column label, attack name, parameters).

``get_suite(name)`` returns a :class:`Suite`; ``suite_names()`` lists them; ``describe_suites()`` is what
``bench list suites`` prints. Budgets are in pixel units of [0, 1] images (8/255 ~= 0.0314); see
``docs/methods.md`` (the shared methods page) for the definitions.

Suites:
  * ``seed-table1``: the student report's literal Table 1 settings (FGSM eps 0.3; PGD L-inf eps 0.3,
    alpha 0.01, 3 steps from the clean image; CW with fixed c = 1e-4, kappa = 0.01). Its PGD cannot move
    more than 3 x 0.01 = 0.03 in L-inf: the records show the nominal 0.3 and the effective 0.03.
  * ``standard``: FGSM 8/255; PGD-20 L-inf 8/255 (alpha 2/255, random start); PGD-20 L2 0.5; CW-L2 with
    binary search over c (5 rounds of 50 Adam steps: 250 gradient passes per image, 12x PGD-20; by estimate
    the kernel's 9 x 100 default would make CW alone take hours on 2 CPU cores for the adversarially
    trained models, which keep ~35 % of 1,017 images past PGD-L2), a sample counted as
    fooled only when its CW perturbation has L2 <= 0.5. Plus the per-sample L2 + L-inf PGD aggregate.
  * ``platform``: PGD L2 0.5 and PGD L-inf 8/255 and their per-sample aggregate: the correct version of the
    report's Table 2 (which added the two accuracies into 114.6 %).
  * ``ci``: FGSM + PGD-10 L-inf 8/255 + uniform noise 8/255; cheap enough for CI and the main job
    (``bench run --models all`` on the first 128 images: the two WRN-34-1 models cost up to ~0.5 s per
    image for PGD-10 on a busy 2-core box, so 256 images would not fit the main job's 3 minutes). Always
    full matrix: every column exact, so the main job's table needs no bounds and ``bench check`` sees a
    regression in any of the three kernels (under early exit a broken PGD would hide behind FGSM); with
    PGD's own early stop this costs little more than the cascade.
  * ``eps-sweep``: PGD-10 L-inf at eps 1, 2, 4, 8, 16, 32 /255 and 0.3 for the accuracy-vs-eps figure. Its
    columns are independent measurements (always full matrix: no early-exit cascade across budgets).
  * ``adaptive``: AutoAttack, PGD-20, PGD-100 on the smooth surrogate, BPDA-PGD-50 and transfer PGD-20
    (:mod:`bench.attacks.adaptive`), always full matrix. Registered here in its deterministic flavour (for
    listing); ``bench run`` evaluates each model with its own flavour (:func:`model_suite`).

Per-model suites (:func:`model_suite`): a suite names columns, but a stochastic model needs other attacks
than a deterministic one. ``adaptive`` takes the stochastic flavour (AutoAttack-rand, EOT-PGD without early
stop, BPDA with EOT) for a stochastic model; ``standard`` gains the stochastic flavour's columns
(``EOT-PGD``, ``AutoAttack``, ``surrogate-PGD``, ``BPDA-PGD``, ``transfer-PGD``) for every stochastic model;
every other suite is the same for every model. On a stochastic model every attack with an ``early_stop``
option that the suite does not set runs with ``early_stop=False`` (:func:`no_early_stop`): first-success
early stop keeps the first iterate that fooled one random forward pass, which the evaluation pass's fresh
draw often classifies right (measured on ``slwta``, PGD-20 on 1,017 images: 56.9 % with early stop, 41.8 %
without, torchattacks 41.9 %: ``results/crosscheck/quality_bar.md``). ``bench run`` writes each model's entries into
``cells/<model>/model.json`` and, where they differ from the suite's, into the records' run info
(``model_suites``), from which ``bench check`` rebuilds them (:func:`suite_from_run`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field

from bench.attacks.adaptive import (
    ADAPTIVE_DESCRIPTION,
    adaptive_entries,
    adaptive_params,
    adaptive_suite,
    params_text,
    stochastic_additions,
)
from bench.attacks.base import Attack
from bench.attacks.registry import attack_defaults, create_attack, suggest
from bench.core.errors import BenchError

EPS8 = 8 / 255
EPS2 = 2 / 255


@dataclass(frozen=True)
class Entry:
    """One column of a suite: its label (e.g. 'PGD'), the registered attack name and its parameters."""

    label: str
    attack: str
    params: dict = field(default_factory=dict)

    def build(self) -> Attack:
        """The configured attack instance (parameters validated by the attack)."""
        return create_attack(self.attack, **self.params)


@dataclass(frozen=True)
class Suite:
    """An ordered list of entries, named per-sample aggregates (label -> member labels), the default number of
    images (None: every image), whether its columns must be measured independently (full matrix) and the
    suite parameters it was built with (``adaptive:aa_eot=5``: only those that differ from the defaults)."""

    name: str
    description: str
    entries: tuple[Entry, ...]
    aggregates: dict = field(default_factory=dict)
    default_n: int | None = None
    full_matrix: bool = False
    params: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entries]

    def attacks(self) -> dict[str, Attack]:
        """``{label: Attack}`` in suite order."""
        return {e.label: e.build() for e in self.entries}


def _pgd_l2(eps: float, steps: int, **kw: object) -> dict:
    return {"eps": eps, "alpha": 2.5 * eps / steps, "steps": steps, "random_start": True, **kw}


_SUITES: dict[str, Suite] = {}


def _register(suite: Suite) -> None:
    labels = suite.labels
    if len(set(labels)) != len(labels):
        raise ValueError(f"suite {suite.name}: duplicate column labels {labels}")
    for agg, members in suite.aggregates.items():
        if agg in labels or not set(members) <= set(labels):
            raise ValueError(f"suite {suite.name}: aggregate {agg} has unknown members {members}")
    _SUITES[suite.name] = suite


_register(Suite(
    "seed-table1",
    "The report's Table 1 settings, literally: FGSM eps 0.3; PGD L-inf eps 0.3 alpha 0.01 3 steps, no random "
    "start (effective budget 0.03); CW fixed c 1e-4, kappa 0.01, unbounded",
    (
        Entry("FGSM", "fgsm", {"eps": 0.3}),
        Entry("PGD", "pgd-linf", {"eps": 0.3, "alpha": 0.01, "steps": 3, "random_start": False}),
        Entry("CW", "cw-l2", {"mode": "fixed", "c": 1e-4, "kappa": 0.01, "threshold": None}),
    ),
))
_register(Suite(
    "standard",
    "Standard budgets: FGSM 8/255; PGD-20 L-inf 8/255 alpha 2/255 random start; PGD-20 L2 0.5; CW-L2 binary "
    "search (5 x 50 steps) counted at L2 <= 0.5; per-sample L2+L-inf PGD aggregate",
    (
        Entry("FGSM", "fgsm", {"eps": EPS8}),
        Entry("PGD", "pgd-linf", {"eps": EPS8, "alpha": EPS2, "steps": 20, "random_start": True}),
        Entry("PGD-L2", "pgd-l2", _pgd_l2(0.5, 20)),
        Entry("CW", "cw-l2", {"threshold": 0.5, "search_steps": 5, "steps": 50}),
    ),
    aggregates={"PGD-L2+Linf": ["PGD-L2", "PGD"]},
))
_register(Suite(
    "platform",
    "The report's Table 2 done right: PGD-20 L2 0.5 and PGD-20 L-inf 8/255 and their per-sample aggregate "
    "(a sample counts only if it survives both; never the sum of the two accuracies)",
    (
        Entry("PGD-L2", "pgd-l2", _pgd_l2(0.5, 20)),
        Entry("PGD", "pgd-linf", {"eps": EPS8, "alpha": EPS2, "steps": 20, "random_start": True}),
    ),
    aggregates={"PGD-L2+Linf": ["PGD-L2", "PGD"]},
))
_register(Suite(
    "ci",
    "CI-sized: FGSM 8/255, PGD-10 L-inf 8/255 alpha 2/255 random start, uniform noise 8/255 (first 128 "
    "images by default; full matrix, every column exact)",
    (
        Entry("FGSM", "fgsm", {"eps": EPS8}),
        Entry("PGD", "pgd-linf", {"eps": EPS8, "alpha": EPS2, "steps": 10, "random_start": True}),
        Entry("noise", "noise", {"eps": EPS8}),
    ),
    default_n=128,
    full_matrix=True,
))
_SWEEP = [(f"{k}/255", k / 255) for k in (1, 2, 4, 8, 16, 32)] + [("0.3", 0.3)]
_register(Suite(
    "eps-sweep",
    "PGD-10 L-inf (alpha 2.5 eps/10, random start) at eps 1, 2, 4, 8, 16, 32 /255 and 0.3: robust accuracy "
    "against eps; columns measured independently (full matrix)",
    tuple(Entry(f"PGD@{name}", "pgd-linf", {"eps": eps, "alpha": 2.5 * eps / 10, "steps": 10,
                                             "random_start": True}) for name, eps in _SWEEP),
    full_matrix=True,
))

_register(Suite(
    "adaptive",
    ADAPTIVE_DESCRIPTION,
    tuple(Entry(*e) for e in adaptive_entries(False)),
    default_n=128,
    full_matrix=True,
))

DEFAULT_SUITE = "ci"


def model_suite(suite: Suite, stochastic: bool, target: str | None = None, data: str | None = None) -> Suite:
    """The suite that model ``target`` (of dataset ``data``) is evaluated with under ``suite``: the
    stochastic or deterministic flavour of ``adaptive``; ``standard`` plus the adaptive columns (EOT, no
    early stop) for a stochastic model; ``suite`` itself otherwise (module docstring)."""
    if suite.name == "adaptive":
        return adaptive_suite(stochastic, target=target, data=data, **suite.params)
    if not stochastic:
        return suite
    if suite.name == "standard":
        extra = tuple(Entry(*e) for e in stochastic_additions(target, data=data, **suite.params))
        suite = dataclasses.replace(suite, entries=suite.entries + extra,
                                    description=suite.description + "; for stochastic models also "
                                    + ADAPTIVE_DESCRIPTION[0].lower() + ADAPTIVE_DESCRIPTION[1:])
    return no_early_stop(suite)


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


def suite_entries(suite: Suite) -> dict:
    """A suite's columns as JSON-able data (``entries``, ``aggregates``, ``full_matrix``, ``description``):
    what ``model.json`` and the run info store and :func:`suite_from_run` reads back."""
    return {"entries": [[e.label, e.attack, dict(e.params)] for e in suite.entries],
            "aggregates": dict(suite.aggregates), "full_matrix": suite.full_matrix,
            "description": suite.description}


def suite_from_run(run: dict, model: str | None = None) -> Suite:
    """The suite exactly as a results directory's ``run`` info recorded it (its entries and parameters), so
    a re-measurement uses what was measured even if the named suite has changed since. With ``model``: that
    model's own suite where the run recorded one (``model_suites``, see :func:`model_suite`)."""
    own = (run.get("model_suites") or {}).get(model) if model is not None else None
    params = dict(run.get("suite_params") or {})
    if own:
        entries = tuple(Entry(label, attack, dict(kw)) for label, attack, kw in own["entries"])
        return Suite(run["suite"], own.get("description", run.get("suite_description", "")), entries,
                     dict(own.get("aggregates") or {}), run.get("n"), bool(own.get("full_matrix", False)),
                     params)
    if not run.get("entries"):
        return get_suite(run["suite"])
    entries = tuple(Entry(label, attack, dict(kw)) for label, attack, kw in run["entries"])
    return Suite(run["suite"], run.get("suite_description", ""), entries, dict(run.get("aggregates") or {}),
                 run.get("n"), bool(run.get("suite_full_matrix", False)), params)


def suite_names(pattern: str = "*") -> list[str]:
    """Names of the defined suites matching a shell-style pattern, in definition order."""
    return [n for n in _SUITES if fnmatch.fnmatch(n, pattern)]


#: suites that take parameters (``NAME:key=value,...``): the strengths of the adaptive attacks
PARAMETRISED = ("adaptive", "standard")


def get_suite(name: str) -> Suite:
    """The suite called ``name`` (a one-line error listing the choices otherwise). ``adaptive`` and
    ``standard`` take parameters, ``adaptive:aa_eot=5,bpda_eot=5``: the strengths of the adaptive attacks
    (:data:`bench.attacks.adaptive.ADAPTIVE_PARAMS`; in ``standard`` they apply to the columns added for
    stochastic models), e.g. to make AutoAttack-rand affordable for a slow model on a CPU. The suite keeps
    its name; its description and ``params`` say what changed."""
    base, _, arg = name.partition(":")
    if base not in _SUITES:
        raise BenchError(f"unknown suite {base!r}{suggest(base, list(_SUITES))}; "
                         f"choose one of {', '.join(_SUITES)} (see `bench list suites`)")
    suite = _SUITES[base]
    if not arg.strip():
        return suite
    if base not in PARAMETRISED:
        raise BenchError(f"suite {base!r} takes no parameters (only {', '.join(PARAMETRISED)} do)")
    params: dict[str, int] = {}
    for part in (p.strip() for p in arg.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        try:
            params[key.strip()] = int(value)
        except ValueError:
            raise BenchError(f"suite parameter {part!r}: expected key=integer") from None
        if not eq:
            raise BenchError(f"suite parameter {part!r}: expected key=integer")
    adaptive_params(**params)  # validates names and values (AttackConfigError is a one-line BenchError)
    changed = {k: v for k, v in params.items() if v != adaptive_params()[k]}
    if not changed:
        return suite
    entries = suite.entries
    if base == "adaptive":
        entries = tuple(Entry(*e) for e in adaptive_entries(False, **changed))
    return dataclasses.replace(suite, entries=entries, params=changed,
                               description=suite.description + params_text(changed))


def attack_cost(attack: Attack) -> float:
    """Rough cost in forward+backward passes per image, used to order the early-exit cascade (cheapest
    first): 0.5 for an attack without gradients, 1 for single-step, steps x restarts x EOT x search steps."""
    steps = getattr(attack, "steps", None)
    if steps is None:
        return 1.0 if attack.norm != "none" and attack.name != "noise" else 0.5
    cost = float(steps)
    for key in ("restarts", "eot", "search_steps"):
        if key == "search_steps" and getattr(attack, "mode", "search") != "search":
            continue  # CW with a fixed c runs one round
        cost *= float(getattr(attack, key, 1) or 1)
    return cost


def describe_suites(pattern: str = "*") -> list[dict]:
    """For ``bench list suites``: one dict per suite with ``name``, ``description``, ``default_n``,
    ``full_matrix``, ``aggregates`` and ``attacks`` (each: ``column``, ``attack``, ``params``, ``spec``,
    ``norm``, ``eps``, ``eps_effective``)."""
    out = []
    for name in suite_names(pattern):
        s = _SUITES[name]
        attacks = []
        for e in s.entries:
            a = e.build()
            attacks.append({"column": e.label, "attack": e.attack, "params": a.params(), "spec": a.spec(),
                            "norm": a.norm, "eps": a.budget, "eps_effective": a.effective_eps()})
        attacks += [{"column": agg, "attack": "aggregate", "params": {"members": m},
                     "spec": "per-sample worst case of " + " and ".join(m), "norm": None, "eps": None,
                     "eps_effective": None} for agg, m in s.aggregates.items()]
        attacks.append({"column": "worst-case", "attack": "aggregate", "params": {"members": s.labels},
                        "spec": "per-sample worst case over every attack above", "norm": None, "eps": None,
                        "eps_effective": None})
        out.append({"name": s.name, "description": s.description, "default_n": s.default_n,
                    "full_matrix": s.full_matrix, "aggregates": dict(s.aggregates), "attacks": attacks})
    return out
