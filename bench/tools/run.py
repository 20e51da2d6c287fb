"""The ``bench run`` pipeline: pick zoo models, evaluate them under a suite into a results directory
(:func:`bench.eval.runner.run_models`), diagnose them on request (:mod:`bench.tools.diagnose`), write the
leaderboard and print it. Images are the dataset's evaluation set with pixels in [0, 1]."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path

from torch import nn

from bench import report, zoo
from bench.core.errors import BenchError
from bench.core.io import REPO_ROOT
from bench.data import load_eval
from bench.eval import distributed
from bench.eval.options import EvalOptions
from bench.eval.runner import ModelSpec, run_models
from bench.results import Matrix
from bench.suites import DEFAULT_SUITE, Suite, get_suite
from bench.tools.diagnose import apply_saved, diagnose_model, diagnostics_budget

FULL_COMMAND = "bench run --models all --suite standard --out results/standard"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def select_cards(spec: str) -> list:
    """Zoo cards for ``all``, comma-separated names or shell globs ('smoothing*'); in order, no repeats."""
    if spec.strip() in ("all", "*", ""):
        return zoo.list_cards("*")
    cards: dict[str, object] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if any(ch in part for ch in "*?["):
            found = zoo.list_cards(part)
            if not found:
                raise BenchError(f"no model matches {part!r}; see `bench list models`")
        else:
            found = [zoo.get_card(part)]
        cards.update((c.name, c) for c in found)
    return list(cards.values())


def model_specs(cards: Iterable, dataset: str, device, log: Callable[[str], None] = _log) -> list[ModelSpec]:
    """The trained cards of ``dataset`` as lazily loaded :class:`ModelSpec`; a note for each one skipped."""
    specs = []
    for card in cards:
        if not card.trained:
            log(f"note: skipping {card.name}: untrained (train it with `bench train {card.name}`)")
        elif card.data != dataset:
            log(f"note: skipping {card.name}: a {card.data} model (this run: --dataset {dataset})")
        else:
            specs.append(ModelSpec(card.name, partial(zoo.load_model, card, device),
                                   {"checkpoint_sha256": card.sha256, "stochastic": bool(card.stochastic),
                                    "description": card.description, "data": card.data}))
    return specs


def evaluate_and_diagnose(
    models: Iterable[ModelSpec],
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
) -> list[dict]:
    """:func:`bench.eval.runner.run_models` with the records' warnings read from each model's saved
    diagnostics, and with ``diagnose`` the diagnostics run on each model after its matrix
    (:func:`bench.tools.diagnose.diagnose_model`; ``diagnose_budget_s`` caps its measurements per model,
    default :func:`bench.tools.diagnose.diagnostics_budget` on a CPU)."""
    opts = options or EvalOptions()
    out = Path(out)

    def after_model(name: str, model: nn.Module, matrix: Matrix, info: dict, run_info: dict) -> None:
        budget = diagnose_budget_s if diagnose_budget_s is not None else (
            diagnostics_budget(matrix) if opts.device.type == "cpu" else None)
        diagnose_model(out, name, model, matrix, info, run_info, data, seed=opts.seed, R=opts.passes,
                       budget_s=budget, log=log)

    return run_models(models, suite, data, out, opts, command=command, data_source=data_source, log=log,
                      after_model=after_model if diagnose else None, annotate=apply_saved)


def run_bench(models: str, suite: str | None, options: EvalOptions, *, n: int | None = None,
              out: str | Path | None = None, dataset: str = "cifar10", data_source: str = "npz",
              diagnose: bool = False, write_report: bool = True, command: str = "bench run") -> int:
    """``bench run``: evaluate the zoo models ``models`` (:func:`select_cards`) under ``suite`` on the first
    ``n`` images into ``out`` (default results/latest), write records + matrices (+ leaderboard and figures
    with ``write_report``), print the leaderboard. Under torchrun only rank 0 writes outside its shards."""
    suite_ = get_suite(suite or DEFAULT_SUITE)
    n = n if n is not None else suite_.default_n
    out = Path(out) if out else REPO_ROOT / "results" / "latest"
    options = replace(options, device=distributed.init(options.device))  # under torchrun: the rank's device
    specs = model_specs(select_cards(models), dataset, options.device)
    if not specs:
        raise BenchError(f"no trained {dataset} model matches --models {models!r}; see `bench list models`")
    data = load_eval(dataset, n, data_source)
    t0 = time.perf_counter()
    rows = evaluate_and_diagnose(specs, suite_, data, out, options, diagnose=diagnose, command=command,
                                 data_source=data_source, log=_log)
    if not distributed.is_main():  # another torchrun rank: rank 0 merged and writes records and report
        return 0
    if not rows:
        raise BenchError(f"no model could be evaluated (see the notes above); nothing written to {out}")
    if write_report:
        report.write_report(out)
    print(report.leaderboard_markdown(out, figures=False))
    _log(f"wrote {out} in {time.perf_counter() - t0:.1f} s"
         + (f"; leaderboard: {out / 'leaderboard.md'}" if write_report else ""))
    if suite_.name != "standard" or n is not None:
        _log(f"this was a quick evaluation (suite {suite_.name}, {len(data)} images); the full one: {FULL_COMMAND}")
    return 0
