"""Evaluate a list of models into a results directory (``DIR/cells``, ``DIR/matrices``, ``DIR/records.*``;
layout in :mod:`honestbench.results`), resumably, and rebuild the records from the matrices.

Each model gets its own flavour of the suite (:func:`honestbench.suites.model_suite`: the stochastic flavour of
``adaptive``, and ``standard`` plus EOT and adaptive columns, for a stochastic model), stored in
``cells/<model>/model.json``. Layers above plug in through two hooks: ``after_model`` runs once a model's
matrix is saved (``bench run --diagnose``: the gradient-masking checks), ``annotate`` adds to a model's rows
while the records are collected (their ``warnings``) and returns a summary kept in the run's
``diagnostics``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from honestbench.core.errors import BenchError, ModelCardError
from honestbench.core.io import write_json_atomic
from honestbench.engine import shards as distributed
from honestbench.engine.cascade import detect_stochastic, evaluate
from honestbench.engine.cells import CellCache
from honestbench.engine.options import EvalOptions
from honestbench.engine.probe import PROBE_IMAGES, preflight
from honestbench.results import Matrix, matrix_path, provenance, read_records, record_rows, safe_name, write_records
from honestbench.suites import Suite, model_suite, suite_entries
from honestbench.suites.masking import masking_suite

RUN_KEYS = ("suite", "dataset", "n", "seed", "mode", "batch_size")

#: after_model(name, model, matrix, info, run_info): once a model's matrix is saved
AfterModel = Callable[[str, nn.Module, Matrix, dict, dict], None]
#: annotate(out, model, rows) -> summary or None: may fill the rows' warnings while records are collected
Annotate = Callable[[Path, str, list[dict]], dict | None]


@dataclass
class ModelSpec:
    """A model to evaluate: its name, a loader (called once, lazily) and card facts for the records
    (``checkpoint_sha256``, ``stochastic``, ``description``, ``data``)."""

    name: str
    load: Callable[[], nn.Module]
    info: dict = field(default_factory=dict)


def run_info_for(suite: Suite, data, opts: EvalOptions, command: str, data_source: str) -> dict:
    """The run-level facts every record row and ``bench check`` read: suite, data, mode, provenance."""
    mode = "full-matrix" if (opts.full_matrix or suite.full_matrix) else "early-exit"
    info = {"suite": suite.name, "suite_description": suite.description, "dataset": data.name,
            "n": len(data), "seed": opts.seed, "mode": mode, "batch_size": opts.batch_size,
            "data_source": data_source, "suite_full_matrix": suite.full_matrix,
            "attacks": {e.label: e.build().spec() for e in suite.entries},
            "entries": [[e.label, e.attack, e.params] for e in suite.entries],
            "aggregates": dict(suite.aggregates), "command": command, "classes": list(data.classes),
            "order": suite.labels if mode == "full-matrix" else
            [e.label for e in sorted(suite.entries, key=lambda e: e.build().cost())],
            **provenance(opts.seed, str(opts.device), data.source_sha256)}
    info["R"] = opts.passes  # stochastic passes per image (mean-over-R columns); bench check re-measures with it
    if suite.params:  # e.g. adaptive:aa_eot=5 (honestbench.suites.get_suite)
        info["suite_params"] = dict(suite.params)
    return info


def _join_earlier(out: Path, run_info: dict, command: str, names: list[str]) -> None:
    """Refuse a directory holding another configuration; else keep its earlier commands and models."""
    old: dict = {}
    if (out / "records.json").is_file():
        old, _ = read_records(out)
        bad = [k for k in RUN_KEYS if k in old and old[k] != run_info[k]]
        if bad:
            was = ", ".join(f"{k}={old[k]}" for k in bad)
            now = ", ".join(f"{k}={run_info[k]}" for k in bad)
            raise BenchError(f"{out} holds results of another configuration ({was}; this run: {now}): "
                             "choose another --out")
    run_info["commands"] = list(dict.fromkeys([*old.get("commands", []), command]))
    run_info["models"] = list(dict.fromkeys([*old.get("models", []), *names]))


def run_models(
    models: Iterable[ModelSpec],
    suite: Suite,
    data,
    out: str | Path,
    options: EvalOptions | None = None,
    *,
    command: str = "",
    data_source: str = "npz",
    log: Callable[[str], None] = print,
    after_model: AfterModel | None = None,
    annotate: Annotate | None = None,
) -> list[dict]:
    """Evaluate each model on ``data`` (a :class:`honestbench.data.EvalSet`) under ``suite`` into ``out``, resuming
    finished cells; records are rewritten after every model (so Ctrl-C keeps all finished models). Returns
    the record rows of every model in ``out`` (under torchrun: on rank 0; other ranks get []).

    Each model is evaluated with its own flavour of ``suite`` (stochastic: the card says so or two forward
    passes differ), stochastic models also with ``options.passes`` further passes per image."""
    out = Path(out)
    opts = options or EvalOptions()
    run_info = run_info_for(suite, data, opts, command, data_source)
    models = list(models)
    _join_earlier(out, run_info, command, [spec.name for spec in models])
    shard = distributed.current_shard(len(data), opts.batch_size)  # None outside torchrun
    for spec in models:
        t0 = time.perf_counter()
        try:
            model = spec.load()
        except ModelCardError as e:  # e.g. a checkpoint file missing: the other models still run
            if len(models) == 1:  # the only model asked for: its error is the run's error (one line)
                raise
            log(f"note: skipping {spec.name}: {e}")
            continue
        model, pre = preflight(model.to(opts.device), data.x[:PROBE_IMAGES].to(opts.device),
                               data.y[:PROBE_IMAGES].to(opts.device), spec.name)
        for note in pre.notes:  # a model that fights the harness: named, then evaluated anyway
            log(f"note: {note}")
        info = {"name": spec.name, **spec.info, "preflight": pre.record()}
        matrix = _evaluate_model(spec.name, model, info, suite, data, out, opts, shard)
        if matrix is None:  # another torchrun rank: rank 0 holds the merged matrix
            continue
        if after_model is not None:
            after_model(spec.name, model, matrix, info, run_info)
        collect_records(out, run_info, annotate)
        wc = matrix.worst_case()
        log(f"{spec.name}: clean {100 * matrix.clean_correct.mean():.1f} %, worst case "
            f"{100 * (wc == 1).mean():.1f} % over {', '.join(matrix.labels)} "
            f"({time.perf_counter() - t0:.1f} s{', stochastic' if matrix.meta['stochastic'] else ''})")
    return collect_records(out, run_info, annotate) if shard is None or shard.is_main else []


def _evaluate_model(name: str, model: nn.Module, info: dict, suite: Suite, data, out: Path, opts: EvalOptions,
                    shard: distributed.Shard | None) -> Matrix | None:
    """One model's matrix under its own suite, written to ``DIR/matrices``; None on a torchrun rank > 0."""
    stochastic = bool(info.get("stochastic")) or detect_stochastic(model, data.x, opts.device, opts.seed)
    msuite = model_suite(suite, stochastic, name, data.name)  # this model's flavour of the suite
    msuite = masking_suite(msuite, info.get("preflight"), name, data.name)  # + BPDA / Square / transfer if masked
    info["suite"] = suite_entries(msuite)
    write_json_atomic(out / "cells" / safe_name(name) / "model.json", info)
    key = {"checkpoint_sha256": info.get("checkpoint_sha256", ""), "dataset": data.name,
           "data_sha256": data.source_sha256}

    def run(x: torch.Tensor, y: torch.Tensor, *, index, cache: CellCache, progress: bool = opts.progress
            ) -> Matrix:
        return evaluate(model, x, y, msuite, replace(opts, progress=progress), index=index, cache=cache,
                        stochastic=stochastic, name=name)

    if shard:  # under torchrun: this rank's images; rank 0 gets the merged matrix, the others None
        matrix = shard.evaluate(run, data, out, name, key)
        if matrix is None:
            return None
    else:
        matrix = run(data.x, data.y, index=data.index, cache=CellCache(out, name, key))
    matrix.meta["checkpoint_sha256"] = info.get("checkpoint_sha256", "")
    matrix.save(matrix_path(out, name))
    return matrix


def collect_records(out: str | Path, run_info: dict, annotate: Annotate | None = None) -> list[dict]:
    """Rebuild and write ``records.json``/``records.csv`` from every model matrix in ``out``: with each
    model's own suite where it differs from the run's (``run_info["model_suites"]``, for ``bench check``) and
    what ``annotate`` adds to each model's rows (its summaries in ``run_info["diagnostics"]``)."""
    out = Path(out)
    rows: list[dict] = []
    model_suites: dict[str, dict] = {}
    annotated: dict[str, dict] = {}
    run_entries = run_info.get("entries")
    rank = {safe_name(m): i for i, m in enumerate(run_info.get("models", []))}
    paths = sorted((out / "matrices").glob("*.npz"), key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    for path in paths:
        matrix = Matrix.load(path)
        info_path = out / "cells" / path.stem / "model.json"
        info = (json.loads(info_path.read_text()) if info_path.is_file()
                else {"name": matrix.meta.get("model")})
        mrows = record_rows(matrix, info, run_info)
        name = mrows[0]["model"]
        own = info.get("suite")
        if own and json.loads(json.dumps(own["entries"])) != json.loads(json.dumps(run_entries)):
            model_suites[name] = own
        summary = annotate(out, name, mrows) if annotate is not None else None
        if summary is not None:
            annotated[name] = summary
        rows.extend(mrows)
    run_info = {**run_info, "models": list(dict.fromkeys(r["model"] for r in rows))}
    if model_suites:
        run_info["model_suites"] = model_suites
    if annotated:
        run_info["diagnostics"] = annotated
    if rows:  # no model evaluated yet: no empty records file
        write_records(out, rows, run_info)
    return rows
