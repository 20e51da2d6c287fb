"""The checks that need only the records: each is one function registered with :func:`record_check` under
the flag it raises (:mod:`honestbench.diagnostics.flags` holds the flag's checklist item and explanation);
:func:`record_flags` runs whatever is registered, in registration order. Torch-free at import (the attacks'
roles are read on first use). Accuracies are fractions; eps in pixel units of [0, 1] images.

A record check is ``check(row, rows, stochastic, tol) -> iterable of flag strings (or None)`` for ``row``,
one of ``rows`` (all attack rows of one model); ``stochastic`` says whether that model is stochastic.
Attacks are told apart by the roles they declare (:func:`kernels`), never by lists of names here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping

from honestbench.core.registry import Registry
from honestbench.diagnostics.checks import check_cw_unbounded, check_early_stop, check_eot
from honestbench.diagnostics.flags import (
    ADAPTIVE,
    AGGREGATE,
    AUTOATTACK,
    CW_FAILS,
    DEFAULT_TOLERANCES,
    EARLY_STOP,
    EPS_SWEEP,
    NO_EOT,
    NOT_CONVERGED,
    SINGLE_STEP,
    Tolerances,
    get_flag,
    make_flag,
    margin,
    pct,
)
from honestbench.diagnostics.records import Row, as_dicts, beats, doubled, rows_of, same_budget

RecordCheck = Callable[[Row, list[Row], bool, Tolerances], Iterable[str | None]]

#: flag name -> the record check that raises it
RECORD_CHECKS: Registry[RecordCheck] = Registry("record check")


@functools.cache
def kernels(role: str) -> frozenset[str]:
    """The registered attack names that declare ``role`` (:data:`honestbench.attacks.ROLES`): "single-step",
    "iterative", "white-box", "adaptive", "autoattack", "own" (our kernels), "eot" (uses the real model's
    gradients, so needs EOT on a stochastic one) or "minimum-norm"."""
    # imported here: keeps `bench report` (it imports honestbench.diagnostics for the flags) from loading torch
    from honestbench.attacks import names_with_role

    return frozenset(names_with_role(role))


def record_check(flag: str) -> Callable[[RecordCheck], RecordCheck]:
    """Decorator registering a record check under the (defined) flag it raises."""
    get_flag(flag)  # an undefined flag is a programming error
    return RECORD_CHECKS.register(flag)


@record_check(SINGLE_STEP)
def multi_step_weaker(r: Row, rows: list[Row], stochastic: bool, tol: Tolerances) -> Iterable[str | None]:
    """#1: a multi-step attack weaker than a single-step one at the same budget (flag on the multi-step row)."""
    if r.kernel in kernels("iterative"):
        for s in rows:
            if s.kernel in kernels("single-step") and same_budget(r, s):
                why = beats(r, s, tol.single_step)
                yield why and make_flag(SINGLE_STEP, why + " at the same budget")


@record_check(CW_FAILS)
def cw_unbounded(r: Row, rows: list[Row], stochastic: bool, tol: Tolerances) -> Iterable[str | None]:
    """#3: an unbounded minimum-norm attack (CW with its binary search over c) must fool nearly every sample."""
    if (r.kernel in kernels("minimum-norm") and r.params.get("mode", "search") == "search"
            and r.unbounded_success is not None):
        yield check_cw_unbounded(float(r.unbounded_success), tol.cw_success)


@record_check(ADAPTIVE)
def adaptive_stronger(r: Row, rows: list[Row], stochastic: bool, tol: Tolerances) -> Iterable[str | None]:
    """#4: an adaptive attack beats a multi-step white-box one (flag on the white-box row it beats)."""
    if r.kernel in kernels("white-box") - kernels("single-step"):
        for s in rows:
            if s.kernel in kernels("adaptive") and same_budget(r, s):
                why = beats(r, s, tol.adaptive)
                yield why and make_flag(ADAPTIVE, why)


@record_check(NOT_CONVERGED)
def not_converged(r: Row, rows: list[Row], stochastic: bool, tol: Tolerances) -> Iterable[str | None]:
    """#5: the same attack with twice the steps or restarts is stronger (flag on the base row)."""
    for s in rows:
        if s.kernel == r.kernel and s is not r and same_budget(r, s):
            what = doubled(r.params, s.params)
            if what:
                why = beats(r, s, tol.convergence)
                yield why and make_flag(NOT_CONVERGED, f"{why} ({what})")


@record_check(NO_EOT)
def stochastic_no_eot(r: Row, rows: list[Row], stochastic: bool, tol: Tolerances) -> Iterable[str | None]:
    """#6: a gradient attack on a stochastic model without EOT."""
    if stochastic and r.kernel in kernels("eot"):
        yield check_eot(True, r.eot)


@record_check(EARLY_STOP)
def stochastic_early_stop(r: Row, rows: list[Row], stochastic: bool, tol: Tolerances) -> Iterable[str | None]:
    """#6: a gradient attack on a stochastic model that stops at the first iterate fooling one pass."""
    if stochastic and r.kernel in kernels("eot"):
        yield check_early_stop(True, bool(r.params.get("early_stop", False)), r.eot)


@record_check(AUTOATTACK)
def weaker_than_autoattack(r: Row, rows: list[Row], stochastic: bool, tol: Tolerances) -> Iterable[str | None]:
    """#4 (acceptance), deterministic models: our strongest kernel at AutoAttack's budget within 1 pp of it
    (flag on that kernel's row)."""
    if stochastic or r.kernel not in kernels("own"):
        return
    for aa in (s for s in rows if s.kernel in kernels("autoattack")):
        if same_budget(r, aa):
            own = [s for s in rows if s.kernel in kernels("own") and same_budget(s, aa)]
            if min(own, key=lambda s: (s.acc, -s.evaluated)) is r:
                why = beats(r, aa, tol.autoattack)
                yield why and make_flag(AUTOATTACK, why)


@record_check(EPS_SWEEP)
def rises_with_eps(r: Row, rows: list[Row], stochastic: bool, tol: Tolerances) -> Iterable[str | None]:
    """#2 on the records: the same attack (same kernel, norm and parameters but eps / alpha) at a larger
    full budget leaves more images robust than at a smaller one (flag on the larger-budget row)."""
    if not (r.full_budget and r.exact):
        return
    rest = {k: v for k, v in r.params.items() if k not in ("eps", "alpha")}
    for s in rows:
        if (s.kernel == r.kernel and s.norm == r.norm and s.full_budget and s.exact and s.eps < r.eps
                and {k: v for k, v in s.params.items() if k not in ("eps", "alpha")} == rest
                and r.acc > s.acc + margin(tol.eps_rise, r.n)):
            yield make_flag(EPS_SWEEP, f"{s.label} {pct(s.acc)} at eps {s.eps:.3g} rises to {r.label} "
                                       f"{pct(r.acc)} at eps {r.eps:.3g}")


#: the record checks every ``bench run`` applies (they read the records only: no forward pass); the others
#: (EOT, early stop, convergence, CW, AutoAttack) and the measured ones run with ``bench run --diagnose``
ALWAYS_CHECKS: tuple[str, ...] = (SINGLE_STEP, ADAPTIVE, EPS_SWEEP, AGGREGATE)


def aggregate_flags(records) -> dict[tuple[str, str], list[str]]:
    """#8: every aggregate row (``kernel`` ``aggregate``: a per-sample aggregate or the worst case) whose
    robust count is above that of an exact member column: ``{(model, column): [flag]}``."""
    dicts = as_dicts(records)
    out: dict[tuple[str, str], list[str]] = {}
    for a in (r for r in dicts if r.get("kernel") == "aggregate"):
        members = set(_members(a))
        for m in dicts:
            if (m.get("model") == a.get("model") and m.get("attack") in members and bool(m.get("exact", True))
                    and int(a.get("count") or 0) > int(m.get("count") or 0)):
                out.setdefault((str(a["model"]), str(a["attack"])), []).append(make_flag(
                    AGGREGATE, f"{a['attack']} {pct(float(a['accuracy']))} > member {m['attack']} "
                               f"{pct(float(m['accuracy']))}"))
    return out


def _members(row: Mapping) -> list[str]:
    params = row.get("params") or {}
    if isinstance(params, str):
        params = json.loads(params or "{}")
    return list(params.get("members") or [])


def record_flags(records, tol: Tolerances = DEFAULT_TOLERANCES, stochastic: Mapping[str, bool] | None = None,
                 only: Iterable[str] | None = None) -> dict[tuple[str, str], list[str]]:
    """The registered record checks (all, or the flags named in ``only``, e.g. :data:`ALWAYS_CHECKS`) and
    the aggregate check (#8) on ``records`` (list of dicts or a DataFrame); returns ``{(model, attack
    column): [flag, ...]}`` for the rows with a flag. A model counts as stochastic when its records say so
    or ``stochastic[model]`` (e.g. measured by two forward passes) does."""
    rows = rows_of(as_dicts(records))
    wanted = None if only is None else set(only)
    checks = [check for name, check in RECORD_CHECKS.items() if wanted is None or name in wanted]
    out: dict[tuple[str, str], list[str]] = {} if wanted is not None and AGGREGATE not in wanted else \
        aggregate_flags(records)
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        stoch = any(r.stochastic for r in mine) or bool((stochastic or {}).get(model, False))
        for r in mine:
            for check in checks:
                for flag in check(r, mine, stoch, tol):
                    if flag and flag not in out.setdefault((r.model, r.label), []):
                        out[(r.model, r.label)].append(flag)
    return {k: v for k, v in out.items() if v}
