"""The ``adaptive`` suite: AutoAttack, (EOT-)PGD and the adaptive attacks (:mod:`honestbench.attacks.surrogate`,
:mod:`honestbench.attacks.bpda`, :mod:`honestbench.attacks.transfer`) put together per model, in a stochastic and a
deterministic flavour with the same column labels. All L-inf :data:`~honestbench.core.budgets.EPS_LINF`, pixels in
[0, 1]; :mod:`honestbench.diagnostics` compares its columns.
"""

from __future__ import annotations

from honestbench.attacks.params import MAX_COUNT
from honestbench.attacks.transfer import is_registered_source
from honestbench.core.budgets import ALPHA_LINF, EPS_LINF
from honestbench.core.errors import AttackConfigError, BenchError
from honestbench.core.registry import suggest
from honestbench.suites.base import Entry, ModelPolicy, Suite
from honestbench.zoo import get_card

#: Default transfer source per target (a deterministic model of the same data; never the target itself).
TRANSFER_SOURCE = "pgd-at"
TRANSFER_FALLBACK = "regular"

#: The ``adaptive`` suite's strength parameters and their defaults (the reference settings). ``bench run
#: --suite adaptive:aa_eot=5,bpda_eot=5`` overrides them (:func:`honestbench.suites.get_suite`): for a slow model on
#: a CPU, where AutoAttack-rand's 2 x 100 steps x EOT 20 are too slow. ``eot``, ``bpda_eot`` and ``aa_eot``
#: apply to stochastic models only (deterministic models get no EOT), ``aa_queries`` (Square's queries) to
#: deterministic ones (the rand flavour has no Square).
ADAPTIVE_PARAMS: dict[str, int] = {"aa_steps": 100, "aa_eot": 20, "steps": 20, "eot": 20,
                                   "surrogate_steps": 100, "bpda_steps": 50, "bpda_eot": 10,
                                   "transfer_steps": 20, "aa_queries": 5000}

#: the adaptive suite's per-model policy: rebuilt per model in its flavour, budgets fixed, strengths as parameters
ADAPTIVE_POLICY = ModelPolicy(stochastic="flavour", scalable=False, parametrised=True)

ADAPTIVE_DESCRIPTION = (
    "Adaptive evaluation, L-inf 8/255: AutoAttack (rand flavour with EOT 20 for stochastic models, standard "
    "otherwise), PGD-20 (EOT 20 when stochastic), PGD-100 on the smooth surrogate, BPDA-PGD-50, transfer "
    "PGD-20 from another zoo model; per-sample worst case")


def adaptive_params(**params: object) -> dict[str, int]:
    """The defaults of :data:`ADAPTIVE_PARAMS` with ``params`` applied (integers >= 1; one-line error for an
    unknown name or a bad value)."""
    unknown = sorted(set(params) - set(ADAPTIVE_PARAMS))
    if unknown:
        raise AttackConfigError(f"adaptive suite: unknown parameter {unknown[0]!r}"
                                f"{suggest(unknown[0], list(ADAPTIVE_PARAMS))}; parameters: "
                                f"{', '.join(ADAPTIVE_PARAMS)}")
    out = dict(ADAPTIVE_PARAMS)
    for k, v in params.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise AttackConfigError(f"adaptive suite: {k} must be an integer >= 1, got {v!r}")
        if v > MAX_COUNT:
            raise AttackConfigError(f"adaptive suite: {k} must be at most {MAX_COUNT}, got {v}: give a smaller count")
        out[k] = v
    return out


def _pgd_alpha(steps: int) -> float:
    """PGD's alpha: 2/255 at the default 20 steps; with other step counts 2.5 eps / steps (Madry's rule)."""
    return ALPHA_LINF if steps == 20 else 2.5 * EPS_LINF / steps


def adaptive_entries(stochastic: bool, target: str | None = None,
                     source: str | None = None, **params: int) -> list[tuple[str, str, dict]]:
    """The ``adaptive`` suite's columns as data, ``(label, attack name, params)``; the SAME labels for both
    flavours, so leaderboards line up:

    ======================  ==========================================  =====================================
    label                   stochastic model                            deterministic model
    ======================  ==========================================  =====================================
    ``AutoAttack``          ``autoattack-rand`` (APGD-CE/DLR, EOT 20)   ``autoattack`` (standard)
    ``PGD``                 PGD-20 2/255, EOT 20, no early stop         PGD-20 2/255 (no EOT)
    ``surrogate-PGD``       PGD-100 on the surrogate (T = 1)            PGD-100 (no stochastic layers), early
                                                                        stop
    ``BPDA-PGD``            PGD-50, BPDA, EOT 10                        PGD-50, no EOT, early stop
    ``transfer-PGD``        PGD-20 on ``source``                        same
    ======================  ==========================================  =====================================

    ``source`` defaults to ``pgd-at`` (``regular`` when the target is ``pgd-at``); ``source=""`` drops the
    transfer column (:func:`pick_source` finds a trained one). ``params``: the strengths of
    :data:`ADAPTIVE_PARAMS` (the table shows the defaults).
    The suite is evaluated as a full matrix: :mod:`honestbench.diagnostics` compares its columns (an adaptive attack
    beating the white-box one is the masking signature), which early exit would leave as upper bounds; in
    the cascade the adaptive attacks would also run before EOT-PGD and AutoAttack (cheaper by
    :meth:`~honestbench.attacks.Attack.cost`), so the records could not show it. The worst case is exact either way."""
    if source is None:
        source = TRANSFER_FALLBACK if target == TRANSFER_SOURCE else TRANSFER_SOURCE
    p = adaptive_params(**params)
    eot = p["eot"] if stochastic else 1
    aa = {"eps": EPS_LINF, "steps": p["aa_steps"],
          **({"eot": p["aa_eot"]} if stochastic else {"n_queries": p["aa_queries"]})}
    transfer = [] if source == "" else [
        ("transfer-PGD", "transfer-pgd", {"eps": EPS_LINF, "alpha": _pgd_alpha(p["transfer_steps"]),
                                          "steps": p["transfer_steps"], "source": source})]
    return [
        ("AutoAttack", "autoattack-rand" if stochastic else "autoattack", aa),
        # stochastic model: every step is run; early stop would keep the first iterate that fooled ONE
        # noisy pass, which the evaluation pass often classifies right (the report's "PGD > FGSM" symptom)
        ("PGD", "pgd-linf", {"eps": EPS_LINF, "alpha": _pgd_alpha(p["steps"]), "steps": p["steps"],
                             "random_start": True, "eot": eot, "early_stop": not stochastic}),
        # the surrogate / BPDA gradients of a deterministic model are its own: stop at the first fooling
        # iterate there (exact, and cheap); a stochastic model needs every step (see PGD above)
        ("surrogate-PGD", "surrogate-pgd", {"eps": EPS_LINF, "steps": p["surrogate_steps"], "temperature": 1.0,
                                            "early_stop": not stochastic}),
        ("BPDA-PGD", "bpda-pgd", {"eps": EPS_LINF, "steps": p["bpda_steps"],
                                  "eot": p["bpda_eot"] if stochastic else 1, "early_stop": not stochastic}),
        *transfer,
    ]


def pick_source(target: str | None = None, preferred: str | None = None, data: str | None = None) -> str:
    """The transfer source for ``target``: the first of ``preferred``, ``pgd-at``, ``regular`` that is not the
    target and is registered in memory or has a trained zoo card (of dataset ``data`` when given: a source
    of other data cannot take the images); ``""`` (no transfer column) if none."""
    for name in dict.fromkeys(n for n in (preferred, TRANSFER_SOURCE, TRANSFER_FALLBACK) if n):
        if name == target:
            continue
        if is_registered_source(name):
            return name
        try:
            card = get_card(name)
            if card.trained and (data is None or card.data == data):
                return name
        except BenchError:
            continue
    return ""


def stochastic_additions(target: str | None = None, source: str | None = None,
                         data: str | None = None, **params: int) -> list[tuple[str, str, dict]]:
    """Columns to append to another suite (``standard``) for a stochastic model: the stochastic flavour of
    :func:`adaptive_entries` (strengths ``params``) with its ``PGD`` column relabelled ``EOT-PGD``
    (``standard`` has its own single-pass ``PGD`` column, which the diagnostics then compare with these).
    Transfer source as in :func:`adaptive_suite`."""
    return [("EOT-PGD" if label == "PGD" else label, attack, kw) for label, attack, kw in
            adaptive_entries(True, target, pick_source(target, source, data), **params)]


#: The two flavours as data (target-independent: transfer from ``pgd-at``).
ADAPTIVE_SUITE = {"stochastic": adaptive_entries(True), "deterministic": adaptive_entries(False)}


def adaptive_suite(stochastic: bool, target: str | None = None, source: str | None = None,
                   data: str | None = None, **params: int) -> Suite:
    """The ``adaptive`` suite for one model as a :class:`~honestbench.suites.base.Suite` (named ``adaptive``); the
    transfer source is :func:`pick_source` (``target`` excluded, untrained cards and cards of another
    dataset ``data`` skipped); ``params``: strengths (:data:`ADAPTIVE_PARAMS`), kept in the suite's
    ``params``."""
    entries = tuple(Entry(label, attack, kw) for label, attack, kw in
                    adaptive_entries(stochastic, target, pick_source(target, source, data), **params))
    flavour = "stochastic" if stochastic else "deterministic"
    changed = {k: v for k, v in adaptive_params(**params).items() if v != ADAPTIVE_PARAMS[k]}
    return Suite("adaptive", f"{ADAPTIVE_DESCRIPTION} ({flavour} flavour{params_text(changed)})", entries,
                 default_n=128, full_matrix=True, params=changed, policy=ADAPTIVE_POLICY)


def params_text(params: dict) -> str:
    """``'; parameters aa_eot=5, eot=10'`` for a description, or ``''`` when all are defaults."""
    return "; parameters " + ", ".join(f"{k}={v}" for k, v in params.items()) if params else ""
