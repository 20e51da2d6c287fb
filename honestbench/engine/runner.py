"""Evaluate a list of models into a results directory (``DIR/cells``, ``DIR/matrices``, ``DIR/records.*``;
layout in :mod:`honestbench.results`), resumably, and rebuild the records from the matrices.

One path for one process and for a torchrun world (:mod:`honestbench.engine.world`): each rank evaluates its
shard of the images (:mod:`honestbench.engine.shards`; a single process has one shard, all of them), rank 0
holds the model's matrix and writes the records.

Each model is a :class:`~honestbench.zoo.source.ModelSource` and gets its own flavour of the suite
(:func:`honestbench.suites.model_suite`: the suite's per-model policy for a stochastic model), stored with its
facts in ``cells/<model>/model.json`` (:class:`~honestbench.results.ModelRecord`). Layers above plug in
through two hooks: ``after_model`` runs once a model's matrix is saved (``bench run --diagnose``: the
gradient-masking checks), ``annotate`` adds to a model's rows while the records are collected (their
``warnings``) and returns a summary kept in the run's ``diagnostics``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from honestbench.core.errors import BenchError, ModelCardError
from honestbench.engine.cascade import detect_stochastic, evaluate
from honestbench.engine.cells import CellCache
from honestbench.engine.describe import describe_run, suite_record
from honestbench.engine.options import EvalOptions
from honestbench.engine.probe import PROBE_IMAGES, preflight
from honestbench.engine.shards import shard_of
from honestbench.engine.world import World, join
from honestbench.nets.fast import INFERENCE_COPY
from honestbench.results import (
    RUN_KEYS,
    Matrix,
    ModelRecord,
    RunInfo,
    matrix_path,
    read_model_record,
    read_run,
    record_rows,
    safe_name,
    write_model_record,
    write_records,
)
from honestbench.suites import Suite, model_suite
from honestbench.suites.masking import masking_suite
from honestbench.zoo.source import ModelFacts, ModelSource

#: after_model(model record, model, matrix, run): once a model's matrix is saved
AfterModel = Callable[[ModelRecord, nn.Module, Matrix, RunInfo], None]
#: annotate(out, model, rows) -> summary or None: may fill the rows' warnings while records are collected
Annotate = Callable[[Path, str, list[dict]], dict | None]


def _join_earlier(out: Path, run: RunInfo, command: str, names: list[str]) -> RunInfo:
    """Refuse a directory holding another configuration; else keep its earlier commands and models."""
    old = RunInfo()
    if (out / "records.json").is_file():
        old, _ = read_run(out)
        bad = [k for k in RUN_KEYS if getattr(old, k) is not None and getattr(old, k) != getattr(run, k)]
        if bad:
            was = ", ".join(f"{k}={getattr(old, k)}" for k in bad)
            now = ", ".join(f"{k}={getattr(run, k)}" for k in bad)
            raise BenchError(f"{out} holds results of another configuration ({was}; this run: {now}): "
                             "choose another --out")
    return run.replace(commands=list(dict.fromkeys([*old.commands, command])),
                       models=list(dict.fromkeys([*old.models, *names])))


def run_models(
    models: Iterable[ModelSource],
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
    world: World | None = None,
) -> list[dict]:
    """Evaluate each model on ``data`` (a :class:`honestbench.data.EvalSet`) under ``suite`` into ``out``, resuming
    finished cells; records are rewritten after every model (so Ctrl-C keeps all finished models). Returns
    the record rows of every model in ``out`` on the main process of ``world`` (default :func:`join`: this
    process, or its torchrun world); other ranks get [].

    Each model is evaluated with its own flavour of ``suite`` (stochastic: the card says so or two forward
    passes differ), stochastic models also with ``options.passes`` further passes per image."""
    out = Path(out)
    opts = options or EvalOptions()
    world = world or join(opts.device)
    opts = replace(opts, device=world.device)
    models = list(models)
    run = _join_earlier(out, describe_run(suite, data, opts, command, data_source), command, [m.name for m in models])
    for source in models:
        t0 = time.perf_counter()
        try:
            model = source.load(opts.device)
        except ModelCardError as e:  # e.g. a checkpoint file missing: the other models still run
            if len(models) == 1:  # the only model asked for: its error is the run's error (one line)
                raise
            log(f"note: skipping {source.name}: {e}")
            continue
        model, pre = preflight(model.to(opts.device), data.x[:PROBE_IMAGES].to(opts.device),
                               data.y[:PROBE_IMAGES].to(opts.device), source.name)
        for note in pre.notes:  # a model that fights the harness: named, then evaluated anyway
            log(f"note: {note}")
        matrix, record = _evaluate_model(source, model, suite, data, out, opts, world, pre.record())
        if matrix is None:  # another torchrun rank: rank 0 holds the merged matrix
            continue
        if after_model is not None:
            after_model(record, model, matrix, run)
        collect_records(out, run, annotate)
        wc = matrix.worst_case()
        log(f"{source.name}: clean {100 * matrix.clean_correct.mean():.1f} %, worst case "
            f"{100 * (wc == 1).mean():.1f} % over {', '.join(matrix.labels)} "
            f"({time.perf_counter() - t0:.1f} s{', stochastic' if matrix.meta['stochastic'] else ''})")
    return collect_records(out, run, annotate) if world.is_main else []


def _evaluate_model(source: ModelSource, model: nn.Module, suite: Suite, data, out: Path, opts: EvalOptions,
                    world: World, preflight_found: dict | None = None) -> tuple[Matrix | None, ModelRecord]:
    """One model's matrix under its own suite (plus the masking columns when the preflight found masked
    gradients), written to ``DIR/matrices`` (None on a torchrun rank > 0), and its record (``model.json``)."""
    name, facts = source.name, source.facts
    if getattr(model, "inference_optimized", False):  # honestbench.zoo.evaluation_model's copy
        facts = replace(facts, evaluated_as=INFERENCE_COPY)
    stochastic = bool(facts.stochastic) or detect_stochastic(model, data.x, opts.device, opts.seed)
    msuite = model_suite(suite, stochastic, name, data.name)  # this model's flavour of the suite
    msuite = masking_suite(msuite, preflight_found, name, data.name)  # + BPDA / Square / transfer if masked
    record = ModelRecord(name, facts, suite_record(msuite), preflight_found)
    write_model_record(out, record)
    key = {"checkpoint_sha256": facts.checkpoint_sha256, "dataset": data.name, "data_sha256": data.source_sha256,
           **({"evaluated_as": facts.evaluated_as} if facts.evaluated_as else {})}

    def run(x: torch.Tensor, y: torch.Tensor, *, index, cache: CellCache, progress: bool | None = None) -> Matrix:
        o = opts if progress is None else replace(opts, progress=progress)
        return evaluate(model, x, y, msuite, o, index=index, cache=cache, stochastic=stochastic, name=name)

    matrix = shard_of(world, len(data), opts.batch_size).evaluate(run, data, out, name, key)
    if matrix is not None:
        matrix.meta["checkpoint_sha256"] = facts.checkpoint_sha256
        matrix.save(matrix_path(out, name))
    return matrix, record


def collect_records(out: str | Path, run: RunInfo, annotate: Annotate | None = None) -> list[dict]:
    """Rebuild and write ``records.json``/``records.csv`` from every model matrix in ``out``: with each
    model's own suite where it differs from the run's (``model_suites``, for ``bench check``) and what
    ``annotate`` adds to each model's rows (its summaries in the run's ``diagnostics``)."""
    out = Path(out)
    rows: list[dict] = []
    model_suites = {}
    annotated: dict[str, dict] = {}
    rank = {safe_name(m): i for i, m in enumerate(run.models)}
    paths = sorted((out / "matrices").glob("*.npz"), key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    for path in paths:
        matrix = Matrix.load(path)
        record = read_model_record(out, path.stem) or ModelRecord(matrix.meta.get("model"), ModelFacts())
        mrows = record_rows(matrix, run, record.name, record.facts.checkpoint_sha256,
                        record.facts.training or "")
        name = mrows[0]["model"]
        if record.suite is not None and _as_json(record.suite.entries) != _as_json(run.entries):
            model_suites[name] = record.suite
        summary = annotate(out, name, mrows) if annotate is not None else None
        if summary is not None:
            annotated[name] = summary
        rows.extend(mrows)
    run = run.replace(models=list(dict.fromkeys(r["model"] for r in rows)), model_suites=model_suites,
                      diagnostics=annotated)
    if rows:  # no model evaluated yet: no empty records file
        write_records(out, rows, run)
    return rows


def _as_json(value: object) -> object:
    return json.loads(json.dumps(value))
