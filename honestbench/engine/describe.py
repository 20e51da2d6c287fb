"""A run described, and read back: :func:`describe_run` makes the :class:`~honestbench.results.RunInfo` that
records and ``bench check`` read, :func:`suite_record` stores a suite's columns as data, and
:func:`recorded_suite` rebuilds the suite exactly as a run measured it (even if the named suite changed
since). Budgets are in pixel units of [0, 1] images."""

from __future__ import annotations

from honestbench.engine.options import EvalOptions
from honestbench.results import RunInfo, SuiteRecord, provenance
from honestbench.suites import Entry, Suite, get_suite


def suite_record(suite: Suite) -> SuiteRecord:
    """A suite's columns as data: what ``model.json`` and the run info store and :func:`recorded_suite` reads."""
    return SuiteRecord([[e.label, e.attack, dict(e.params)] for e in suite.entries], dict(suite.aggregates),
                       suite.full_matrix, suite.description)


def describe_run(suite: Suite, data, opts: EvalOptions, command: str, data_source: str) -> RunInfo:
    """The run-level facts of evaluating ``data`` (a :class:`honestbench.data.EvalSet`) under ``suite``."""
    mode = "full-matrix" if (opts.full_matrix or suite.full_matrix) else "early-exit"
    prov = provenance(opts.seed, str(opts.device), data.source_sha256)
    prov.pop("seed")
    return RunInfo(
        suite=suite.name, suite_description=suite.description, dataset=data.name, n=len(data), seed=opts.seed,
        mode=mode, batch_size=opts.batch_size, data_source=getattr(data, "source", data_source),
        suite_full_matrix=suite.full_matrix,
        attacks={e.label: e.build().spec() for e in suite.entries},
        entries=[[e.label, e.attack, e.params] for e in suite.entries], aggregates=dict(suite.aggregates),
        command=command, classes=list(data.classes),
        order=suite.labels if mode == "full-matrix" else
        [e.label for e in sorted(suite.entries, key=lambda e: e.build().cost())],
        **prov, R=opts.passes,  # stochastic passes per image (mean-over-R columns); bench check re-measures with it
        suite_params=dict(suite.params))  # e.g. adaptive:aa_eot=5 (honestbench.suites.get_suite)


def recorded_suite(run: RunInfo, model: str | None = None) -> Suite:
    """The suite exactly as ``run`` recorded it (its entries and parameters); with ``model``: that model's
    own suite where the run recorded one (``model_suites``, :func:`honestbench.suites.model_suite`)."""
    own = run.suite_of(model) if model is not None else None
    if own is None and not run.entries:
        return get_suite(run.suite)
    rec = own or run.suite_record
    entries = tuple(Entry(label, attack, dict(kw)) for label, attack, kw in rec.entries)
    return Suite(run.suite, rec.description, entries,
                 dict(rec.aggregates), run.n, rec.full_matrix, dict(run.suite_params))
