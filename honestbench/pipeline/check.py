"""``bench check``: re-measure committed results and fail when robust accuracy drifts.

It reads a results directory (default ``results/ci``), rebuilds the exact suite (each model's own flavour
where the run recorded one: ``model_suites``, e.g. ``adaptive``), images, seeds, batch size, mode and number
of stochastic passes R that its records name, re-evaluates every model in memory (the directory is not
written) and compares each (model, column) row with the committed one:

* deterministic model: the counts must be identical (``count`` and, under early exit, ``count_hi``);
* stochastic model: each accuracy may move by at most ``TOLERANCE_SE`` = 3 binomial standard errors of the
  committed accuracy, ``3 * sqrt(p (1 - p) / n)`` with ``p`` clipped to ``[1/n, 1 - 1/n]`` (about +-8.1 pp at
  p = 0.5, n = 128), because its single stochastic passes are seeded but not bitwise reproducible across
  machines and thread counts.

A user's model (a card outside the zoo, or ``bench run --model FILE.py:builder@weights.pt``) is rebuilt from
the ``source`` its run recorded in ``cells/<model>/model.json`` (:mod:`honestbench.zoo.user`). A changed checkpoint
(its sha256, recomputed from the file), changed data, or an error while re-evaluating (e.g. an attack's budget
assertion) is a failure too. Exit status 1 and a diff table on any failure, 0 otherwise.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate
from torch import nn

from honestbench import zoo
from honestbench.core.errors import BenchError
from honestbench.core.io import file_sha256
from honestbench.core.threads import resolve_device
from honestbench.data import load_eval
from honestbench.engine.cascade import evaluate
from honestbench.engine.describe import recorded_suite
from honestbench.engine.options import EvalOptions
from honestbench.engine.stochastic import R_DEFAULT
from honestbench.results import RunInfo, read_model_record, read_run, record_rows
from honestbench.suites import get_suite
from honestbench.zoo.user import card_source, load_source, source_sha256

TOLERANCE_SE = 3.0
DEFAULT_RESULTS = Path("results") / "ci"  # relative to the working folder (a checkout's root in CI)


def tolerance(p: float, n: int) -> float:
    """Allowed absolute change of a stochastic model's accuracy: ``TOLERANCE_SE`` binomial standard errors."""
    if n <= 0:
        return 1.0
    p = min(max(p, 1 / n), 1 - 1 / n)
    return TOLERANCE_SE * math.sqrt(p * (1 - p) / n)


def _zoo_loader(device) -> Callable[[str], tuple[nn.Module, str]]:
    def load(name: str) -> tuple[nn.Module, str]:
        card = zoo.get_card(name)
        return card_source(card).load(device), card.sha256

    return load


def _with_sources(results: Path, device, fallback: Callable) -> Callable[[str], tuple[nn.Module, str]]:
    """Rebuild a model by name from the ``source`` its run recorded in ``cells/<model>/model.json`` (a card
    outside the zoo or a user's model spec, :mod:`honestbench.zoo.user`), else with ``fallback`` (the zoo card).
    The sha256 returned is the checkpoint's as it is on disk now: a retrained or tampered file fails."""

    def load(name: str) -> tuple[nn.Module, str]:
        source = _recorded_source(results, name)
        if not source or "zoo" in source:
            return fallback(name)
        if "card" in source:
            card = zoo.get_card(source["card"])
            sha = card.sha256 or (file_sha256(card.checkpoint_path()) if card.checkpoint else "")
            return load_source(source, device), sha
        return load_source(source, device), source_sha256(source)

    return load


def _recorded_source(results: Path, name: str) -> dict | None:
    record = read_model_record(results, name)
    return None if record is None else record.facts.source


def _suite_notes(run: RunInfo) -> list[str]:
    """Notes when the committed suite changed or vanished since the results (its committed definition is
    what is checked)."""
    try:
        current = {e.label: e.build().spec() for e in get_suite(run.suite).entries}
    except BenchError:
        return [f"suite {run.suite!r} no longer exists; checked its committed definition"]
    if current != run.attacks:
        return [f"suite {run.suite!r} has changed since these results; checked its committed definition"]
    return []


def check(
    results: str | Path = DEFAULT_RESULTS,
    *,
    models: list[str] | None = None,
    device: str = "cpu",
    model_loader: Callable[[str], nn.Module | tuple[nn.Module, str]] | None = None,
    progress: bool = False,
) -> list[dict]:
    """Re-evaluate the models of committed ``results`` and compare; one dict per compared row with ``ok``.

    ``model_loader(name)`` returns the model (or ``(model, checkpoint_sha256)``); default: the zoo card.
    """
    results = Path(results)
    if not (results / "records.json").is_file():
        raise BenchError(f"no committed results in {results}: make them with "
                         f"`bench run --models all --suite ci --out {results}`")
    run, rows = read_run(results)
    dev = resolve_device(device)
    loader = model_loader or _with_sources(results, dev, _zoo_loader(dev))
    notes = _suite_notes(run)
    data = load_eval(run.dataset, run.n, run.data_source)
    committed: dict[str, list[dict]] = {}
    for r in rows:
        committed.setdefault(r["model"], []).append(r)
    names = list(committed)
    if models:
        unknown = [m for m in models if m not in committed]
        if unknown:
            raise BenchError(f"{results} has no results for {', '.join(unknown)} "
                             f"(it has: {', '.join(names)})")
        names = [m for m in names if m in models]
    opts = EvalOptions(full_matrix=run.mode == "full-matrix", batch_size=int(run.batch_size), seed=int(run.seed),
                       device=dev, passes=int(run.R if run.R is not None else R_DEFAULT), progress=progress)
    out: list[dict] = []
    for name in names:
        out.extend(_check_model(name, committed[name], run, data, loader, opts))
    for note in notes:
        out.append({"model": "*", "attack": "*", "ok": True, "note": note})
    return out


def _check_model(name: str, old: list[dict], run: RunInfo, data, loader: Callable, opts: EvalOptions) -> list[dict]:
    """The compared rows of one model: re-evaluated in memory under its committed suite and settings."""
    stochastic = bool(old[0]["stochastic"])
    base = {"model": name, "stochastic": stochastic}
    if data.source_sha256 != run.data_sha256:
        return [{**base, "attack": "*", "ok": False, "note": "evaluation data changed (sha256)"}]
    try:
        loaded = loader(name)
        model, sha = loaded if isinstance(loaded, tuple) else (loaded, old[0].get("checkpoint_sha256"))
        if sha != old[0].get("checkpoint_sha256"):
            return [{**base, "attack": "*", "ok": False,
                     "note": f"checkpoint changed: {str(old[0].get('checkpoint_sha256'))[:12]} -> {str(sha)[:12]}"}]
        matrix = evaluate(model, data.x, data.y, recorded_suite(run, name), opts, stochastic=stochastic or None,
                          index=data.index, name=name)
    except Exception as e:  # a broken kernel's own assertion is a failure, not a crash
        where = traceback.extract_tb(e.__traceback__)[-1]
        return [{**base, "attack": "*", "ok": False,
                 "note": f"error: {type(e).__name__}: {e} ({Path(where.filename).name}:{where.lineno})"}]
    new = {r["attack"]: r for r in record_rows(matrix, run, name)}
    return [_compare(base, r, new.get(r["attack"]), stochastic) for r in old]


def _compare(base: dict, old: dict, new: dict | None, stochastic: bool) -> dict:
    row = {**base, "attack": old["attack"], "n": old["n"], "committed": _acc(old)}
    if new is None:
        return {**row, "ok": False, "note": "column missing from the re-measurement"}
    row["now"] = _acc(new)
    if not stochastic:
        ok = new["count"] == old["count"] and new["count_hi"] == old["count_hi"]
        note = "identical counts required (deterministic)"
    else:
        tol = tolerance(old["accuracy"], old["n"])
        lo_old, lo_new = old["count"] / old["n"], new["count"] / new["n"]
        ok = abs(new["accuracy"] - old["accuracy"]) <= tol and abs(lo_new - lo_old) <= tol
        note = f"tolerance +-{100 * tol:.2f} pp (3 binomial s.e.)"
    return {**row, "ok": ok, "note": note}


def _acc(r: dict) -> str:
    if r["exact"]:
        return f"{100 * r['accuracy']:.2f} % ({r['count']}/{r['n']})"
    lo = 100 * r["count"] / r["n"]
    return f"{lo:.2f}..{100 * r['accuracy']:.2f} % ({r['count']}..{r['count_hi']}/{r['n']})"


def format_rows(rows: list[dict], only_failures: bool = True) -> str:
    """The diff table (failing rows only by default)."""
    show = [r for r in rows if not r["ok"]] if only_failures else rows
    table = [[r["model"], r["attack"], r.get("committed", ""), r.get("now", ""), "ok" if r["ok"] else "FAIL",
              r.get("note", "")] for r in show]
    return tabulate(table, headers=["model", "column", "committed", "now", "", "rule"], tablefmt="github",
                    disable_numparse=True)
