"""The masking columns: what a model gets, in every suite, when the preflight (:mod:`honestbench.engine.probe`)
finds its gradients useless (zero, vanishing, not finite, computed inside the forward, or absent): attacks that
do not need them, so its worst case falls to what they find and the record check ``adaptive-stronger`` names
the masking. At the suite's PGD L-inf budget (the column :func:`honestbench.suites.model.surrogate_twin`
copies), pixels in [0, 1]:

  ``BPDA-ST``        ``bpda-st``: PGD-50 with straight-through rounding ops, or a stand-in's gradient when
                     the model has no gradient at all (the transfer source below)
  ``Square``         ``square``: :data:`SQUARE_QUERIES` queries, gradient-free
  ``transfer-PGD``   ``transfer-pgd``: PGD-20 on another trained model of the same data
                     (:func:`honestbench.suites.adaptive.pick_source`); dropped when there is none

A model with no gradient graph also loses the suite's gradient columns (they cannot run on it).
"""

from __future__ import annotations

import dataclasses

from honestbench.attacks import names_with_role
from honestbench.core.budgets import EPS_LINF
from honestbench.suites.adaptive import pick_source
from honestbench.suites.base import Entry, Suite

SQUARE_QUERIES = 1000
#: the preflight findings after which the masking columns run (honestbench.engine.probe.MASKING, the same set:
#: suites sit below the engine, so it is written here and a test keeps the two equal)
MASKING_FLAGS = frozenset({"no-gradient-graph", "forward-calls-autograd", "zero-gradients", "vanishing-gradients",
                           "nonfinite-gradients"})
BPDA_STEPS = 50
TRANSFER_STEPS = 20


def masking_entries(eps: float, source: str) -> list[Entry]:
    """The masking columns (module docstring) at L-inf ``eps``; ``source`` '' drops the transfer column."""
    entries = [Entry("BPDA-ST", "bpda-st", {"eps": eps, "steps": BPDA_STEPS, "source": source}),
               Entry("Square", "square", {"eps": eps, "n_queries": SQUARE_QUERIES})]
    if source:
        entries.append(Entry("transfer-PGD", "transfer-pgd", {"eps": eps, "alpha": 2.5 * eps / TRANSFER_STEPS,
                                                              "steps": TRANSFER_STEPS, "source": source}))
    return entries


def masking_suite(suite: Suite, preflight: dict | None, target: str | None = None, data: str | None = None
                  ) -> Suite:
    """``suite`` as run on a model whose preflight record (``{"flags": [...]}``) says its gradients are
    useless: :func:`with_masking`; ``suite`` itself otherwise."""
    flags = set((preflight or {}).get("flags", []))
    if not flags & MASKING_FLAGS:
        return suite
    return with_masking(suite, "no-gradient-graph" in flags, target, data)


def with_masking(suite: Suite, gradient_free: bool, target: str | None = None, data: str | None = None) -> Suite:
    """``suite`` plus the masking columns whose labels it does not have yet; without its gradient columns
    when ``gradient_free`` (no gradient reaches the input)."""
    pgds = [e for e in suite.entries if e.attack == "pgd-linf"]
    eps = float(next((e.params.get("eps", EPS_LINF) for e in pgds if e.label == "PGD"),
                     pgds[0].params.get("eps", EPS_LINF) if pgds else EPS_LINF))
    have = set(suite.labels)
    source = pick_source(target, None, data)
    extra = tuple(e for e in masking_entries(eps, source) if e.label not in have
                  and not (gradient_free and not source and e.attack == "bpda-st"))  # BPDA needs a stand-in
    entries = suite.entries
    note = f"; gradients useless (preflight): + {', '.join(e.label for e in extra)} at L-inf {255 * eps:.3g}/255"
    if gradient_free:
        needs_grad = set(names_with_role("white-box")) | set(names_with_role("eot"))
        entries = tuple(e for e in entries if e.attack not in needs_grad)
        note += ", gradient columns dropped (no gradient reaches the input)"
    kept = set(e.label for e in entries)
    aggregates = {k: v for k, v in suite.aggregates.items() if set(v) <= kept}
    return dataclasses.replace(suite, entries=entries + extra, aggregates=aggregates,
                               description=suite.description + note)
