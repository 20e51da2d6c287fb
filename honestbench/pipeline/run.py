"""The ``bench run`` pipeline: pick zoo models, evaluate them under a suite into a results directory
(:func:`honestbench.engine.runner.run_models`), diagnose them on request (:mod:`honestbench.pipeline.diagnose`), write
the
leaderboard and print it. Images are the dataset's evaluation set with pixels in [0, 1]."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from torch import nn

from honestbench import report
from honestbench.core.errors import BenchError
from honestbench.data import load_eval
from honestbench.diagnostics import ALWAYS_CHECKS, apply_warnings, record_flags
from honestbench.diagnostics.preflight import preflight_flags, preflight_record
from honestbench.engine.options import EvalOptions
from honestbench.engine.runner import run_models
from honestbench.engine.world import World, join
from honestbench.pipeline.diagnose import apply_saved, diagnose_model, diagnostics_budget
from honestbench.pipeline.models import resolve_model_specs
from honestbench.report.summary import check_sort, summary_text
from honestbench.results import Matrix, ModelRecord, RunInfo
from honestbench.suites import DEFAULT_SUITE, Suite, get_suite
from honestbench.zoo.source import ModelSource

#: the closing hint: the full evaluation, into a fresh git-ignored folder (never the committed results/)
FULL_COMMAND = "bench run --models all --suite standard --out runs/standard"
#: where `bench run` writes without --out: git-ignored (.gitignore has /runs/), never the committed results/
DEFAULT_OUT = Path("runs") / "latest"  # relative to the working folder


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def evaluate_and_diagnose(
    models: Iterable[ModelSource],
    suite: Suite,
    data,
    out: str | Path,
    options: EvalOptions | None = None,
    *,
    diagnose: bool = False,
    diagnose_budget_s: float | None = None,
    command: str = "",
    data_source: str = "npz",
    log: Callable[[str], None] = print,
    world: World | None = None,
) -> list[dict]:
    """:func:`honestbench.engine.runner.run_models` with the records' warnings read from each model's saved
    diagnostics, and with ``diagnose`` the diagnostics run on each model after its matrix
    (:func:`honestbench.pipeline.diagnose.diagnose_model`; ``diagnose_budget_s`` caps its measurements per model,
    default :func:`honestbench.pipeline.diagnose.diagnostics_budget` on a CPU)."""
    opts = options or EvalOptions()
    out = Path(out)

    def after_model(record: ModelRecord, model: nn.Module, matrix: Matrix, run: RunInfo) -> None:
        budget = diagnose_budget_s if diagnose_budget_s is not None else (
            diagnostics_budget(matrix) if opts.device.type == "cpu" else None)
        diagnose_model(out, record, model, matrix, run, data, seed=opts.seed, R=opts.passes, budget_s=budget,
                       log=log)

    return run_models(models, suite, data, out, opts, command=command, data_source=data_source, log=log,
                      after_model=after_model if diagnose else None, annotate=annotate_records, world=world)


def annotate_records(out: Path, name: str, rows: list[dict]) -> dict:
    """The ``annotate`` hook of every ``bench run``: the record checks that need no forward pass
    (:data:`honestbench.diagnostics.ALWAYS_CHECKS`: FGSM > PGD, adaptive stronger than plain, accuracy rising
    with eps, per-sample aggregates) on one model's rows, then its saved ``--diagnose`` flags
    (:func:`honestbench.pipeline.diagnose.apply_saved`); returns what the run's ``diagnostics`` keeps of them."""
    apply_warnings(rows, record_flags(rows, only=ALWAYS_CHECKS))
    pre = preflight_record(out, name)  # what the preflight found before the attacks (honestbench.engine.probe)
    apply_warnings(rows, preflight_flags(name, pre))
    return {"record_checks": list(ALWAYS_CHECKS), **({"preflight": pre["flags"]} if pre.get("flags") else {}),
            **(apply_saved(out, name, rows) or {})}


def run_bench(models: str, suite: str | Suite | None, options: EvalOptions, *, n: int | None = None,
              out: str | Path | None = None, dataset: str = "cifar10", data_source: str = "npz",
              diagnose: bool = False, write_report: bool = True, command: str = "bench run",
              print_all: bool = False, sort: str | None = None, extra_models: Iterable[str] = (),
              normalize: dict | None = None, models_dir: str | Path | None = None) -> int:
    """``bench run``: evaluate the zoo models ``models`` (:func:`honestbench.zoo.cards.select_cards`) under ``suite``
    on the first ``n`` images into ``out``, write records + matrices (+ leaderboard and figures
    with ``write_report``, rows ordered by ``sort``: :func:`honestbench.report.sort_models`), print the terminal
    summary (:mod:`honestbench.report.summary`; the whole markdown with ``print_all``). ``suite``: a name or a
    :class:`~honestbench.suites.Suite` (e.g. scaled by ``--eps``); ``models_dir``: a folder of the user's cards.
    Default ``out``: :data:`DEFAULT_OUT`. Under torchrun only rank 0 writes outside its shards."""
    suite_ = suite if isinstance(suite, Suite) else get_suite(suite or DEFAULT_SUITE)
    check_sort(sort, suite_)
    n = n if n is not None else suite_.default_n
    out = Path(out) if out else DEFAULT_OUT
    world = join(options.device)  # this process, or its torchrun world (and the rank's device)
    options = replace(options, device=world.device)
    # zoo names, card files and the user's model specs (``extra_models``: --model), validated when loaded
    specs = resolve_model_specs(models, extra_models, dataset, n, data_source, normalize, models_dir=models_dir)
    if not specs:
        raise BenchError(f"no trained {dataset} model matches --models {models!r}; see `bench list models`")
    data = load_eval(dataset, n, data_source)
    t0 = time.perf_counter()
    rows = evaluate_and_diagnose(specs, suite_, data, out, options, diagnose=diagnose, command=command,
                                 data_source=data_source, log=_log, world=world)
    if not world.is_main:  # another torchrun rank: rank 0 merged and writes records and report
        return 0
    if not rows:
        raise BenchError(f"no model could be evaluated (see the notes above); nothing written to {out}")
    if write_report:
        report.write_report(out, sort=sort)
    if print_all:
        print(report.leaderboard_markdown(out, figures=False, sort=sort))
    print(summary_text(out, sort=sort, seconds=time.perf_counter() - t0, report_written=write_report))
    if suite_.name != "standard" or n is not None:
        _log(f"this was a quick evaluation (suite {suite_.name}, {len(data)} images); the full one: {FULL_COMMAND} "
             "(a fresh, git-ignored folder)")
    return 0
