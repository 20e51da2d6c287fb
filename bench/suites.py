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
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from bench.attacks.base import Attack
from bench.attacks.registry import create_attack, suggest
from bench.errors import BenchError

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
    images (None: every image) and whether its columns must be measured independently (full matrix)."""

    name: str
    description: str
    entries: tuple[Entry, ...]
    aggregates: dict = field(default_factory=dict)
    default_n: int | None = None
    full_matrix: bool = False

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

DEFAULT_SUITE = "ci"


def suite_from_run(run: dict) -> Suite:
    """The suite exactly as a results directory's ``run`` info recorded it (its entries and parameters), so
    a re-measurement uses what was measured even if the named suite has changed since."""
    if not run.get("entries"):
        return get_suite(run["suite"])
    entries = tuple(Entry(label, attack, dict(params)) for label, attack, params in run["entries"])
    return Suite(run["suite"], run.get("suite_description", ""), entries, dict(run.get("aggregates") or {}),
                 run.get("n"), bool(run.get("suite_full_matrix", False)))


def suite_names(pattern: str = "*") -> list[str]:
    """Names of the defined suites matching a shell-style pattern, in definition order."""
    return [n for n in _SUITES if fnmatch.fnmatch(n, pattern)]


def get_suite(name: str) -> Suite:
    """The suite called ``name`` (a one-line error listing the choices otherwise)."""
    if name not in _SUITES:
        raise BenchError(f"unknown suite {name!r}{suggest(name, list(_SUITES))}; "
                         f"choose one of {', '.join(_SUITES)} (see `bench list suites`)")
    return _SUITES[name]


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
