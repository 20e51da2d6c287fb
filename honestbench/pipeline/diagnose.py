"""``bench run --diagnose``: the gradient-masking diagnostics of each evaluated model, kept in
``DIR/cells/<model>/diagnostics.json`` and read back into the records' ``warnings`` column.

The measured checks of one model get a time budget on a CPU (:func:`diagnostics_budget`), spent at the cost
of a forward+backward pass that the model's own attacks took (:func:`seconds_per_pass`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from honestbench import diagnostics as dg
from honestbench.core.io import write_json_atomic
from honestbench.engine.stochastic import R_DEFAULT
from honestbench.results import NOT_EVALUATED, Matrix, ModelRecord, RunInfo, diagnostics_path, record_rows

DIAG_BUDGET_S = 600.0  # seconds of diagnostic measurements per model on a CPU at least (diagnose_model)
DIAG_SHARE = 0.25  # ... or this share of the time its attacks took, whichever is more
DIAG_N = 128  # images the measured checks use


def diagnostics_budget(matrix: Matrix) -> float:
    """Seconds the measured diagnostics of one model may take on a CPU: :data:`DIAG_BUDGET_S`, or a quarter
    of the model's own attack time when that is more (a model whose evaluation took an hour can afford a
    quarter hour of checks). Read from the matrix, so a resumed run plans the same checks."""
    return max(DIAG_BUDGET_S, DIAG_SHARE * float(np.sum(matrix.seconds)))


def seconds_per_pass(matrix: Matrix) -> float | None:
    """Seconds per image and forward+backward pass as this model's attacks took them here (median over its
    gradient columns of seconds / (images attacked x :meth:`honestbench.attacks.Attack.cost`)), else twice the
    clean forward time per image; None when neither is known. Measured, so it includes what a clean
    timing misses: small batches, EOT, a CPU shared with other jobs."""
    specs = matrix.meta.get("specs", {})
    clean = matrix.clean_correct
    rates = []
    for j, label in enumerate(matrix.labels):
        cost = float(specs.get(label, {}).get("cost") or 0)
        images = int((clean & (matrix.robust[:, j] != NOT_EVALUATED)).sum())
        if cost >= 2 and images and matrix.seconds[j] > 0:  # multi-pass gradient attacks only
            rates.append(float(matrix.seconds[j]) / (images * cost))
    if rates:
        return float(np.median(rates))
    ms = matrix.meta.get("ms_per_image_b256")
    return 2 * ms / 1000 if ms else None


def _rows_key(rows: list[dict]) -> str:
    """A digest of what the diagnostics read from one model's records (counts and parameters, not dates)."""
    keep = ("attack", "kernel", "count", "count_hi", "n", "exact", "evaluated", "fooled", "params", "eps",
            "eps_effective", "stochastic", "unbounded_success")
    text = json.dumps([[r.get(k) for k in keep] for r in rows], default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_diagnostics(out: Path, model: str, rows: list[dict]) -> dict | None:
    """The model's saved diagnostics when they were computed from these rows (else None: stale)."""
    path = diagnostics_path(out, model)
    if not path.is_file():
        return None
    try:
        diag = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return diag if diag.get("key", {}).get("rows") == _rows_key(rows) else None


def diagnose_model(out: str | Path, record: ModelRecord, model: nn.Module, matrix: Matrix, run: RunInfo,
                   data, *, seed: int = 0, R: int = R_DEFAULT, budget_s: float | None = None,
                   n: int = DIAG_N, log: Callable[[str], None] = print) -> dict:
    """Run :func:`honestbench.diagnostics.diagnose` on one evaluated model and write
    ``cells/<model>/diagnostics.json`` (``flags`` as ``[[column, [flag, ...]], ...]``, the measurements run
    and skipped, their time). Resumable: nothing is measured again while the file belongs to the same
    records, checkpoint, seed, R and images.

    ``budget_s`` caps the measured checks (:func:`honestbench.diagnostics.plan_measures`, at the cost of a
    forward+backward pass that the model's own attacks took, :func:`seconds_per_pass`): a slow model on a CPU
    (a CIFAR WideResNet) skips the costliest checks (convergence, eps sweep), and the records say which."""
    out, name = Path(out), record.name
    rows = record_rows(matrix, run, name, record.facts.checkpoint_sha256, record.facts.training or "")
    n = min(n, matrix.n)
    stochastic = bool(matrix.meta.get("stochastic"))
    kept, skipped = dg.plan_measures(rows, name, stochastic=stochastic, n=n, budget_s=budget_s, R=R,
                                     seconds_per_pass=seconds_per_pass(matrix))
    key = {"rows": _rows_key(rows), "checkpoint_sha256": record.facts.checkpoint_sha256,
           "data_sha256": run.data_sha256, "seed": seed, "R": R, "n": n, "measured": kept}
    path = diagnostics_path(out, name)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("key") == json.loads(json.dumps(key, default=str)):
                return old
        except json.JSONDecodeError:
            pass
    if skipped:
        log(f"{name}: diagnostics skip {', '.join(skipped)} (over the {budget_s:.0f} s budget here)")
    t0 = time.perf_counter()
    flags = dg.diagnose(rows, model, data.x, data.y, name=name, seed=seed, n=n, measure=kept, R=R)
    seconds = time.perf_counter() - t0
    labels = [r["attack"] for r in rows]
    ordered = sorted(flags.items(),
                     key=lambda kv: labels.index(kv[0][1]) if kv[0][1] in labels else len(labels))
    diag = {"key": key, "model": name, "flags": [[label, fl] for (_, label), fl in ordered],
            "measured": kept, "skipped": skipped, "n": n, "seconds": seconds}
    write_json_atomic(path, diag)
    shown = sorted({dg.flag_name(f) for _, fl in ordered for f in fl})
    log(f"{name}: diagnostics ({', '.join(kept)}; {seconds:.0f} s): "
        + (", ".join(shown) if shown else "no flag"))
    return diag


def apply_saved(out: Path, name: str, rows: list[dict]) -> dict | None:
    """Fill the ``warnings`` of one model's record rows from its saved diagnostics when they belong to these
    very rows; returns what the run's ``diagnostics`` keeps of them (None: no current diagnostics). The
    ``annotate`` hook of :func:`honestbench.engine.runner.collect_records`."""
    diag = read_diagnostics(out, name, rows)
    if diag is None:
        return None
    dg.apply_warnings(rows, {(name, label): fl for label, fl in diag["flags"]})
    return {k: diag.get(k) for k in ("measured", "skipped", "n", "seconds")}
