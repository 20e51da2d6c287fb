"""Records: one row per model x column (clean, each attack, each aggregate, worst case) with provenance, as
``DIR/records.json`` (``{"schema": 1, "run": {...}, "records": [row, ...]}``) and ``DIR/records.csv``.

Accuracies are fractions in [0, 1]; ``eps`` is in the attack's norm, in pixel units of [0, 1] images. A column
with unevaluated samples (early exit) is known only within bounds: ``count`` (known robust, lower bound),
``count_hi`` (upper bound), ``accuracy = count_hi / n`` and ``exact = False``. Stochastic models add
``accuracy_mean_R``, ``spread`` and ``R`` (the mean over R seeded passes; :mod:`honestbench.results`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from honestbench.core.errors import BenchError
from honestbench.core.io import atomic_path, source_checkout, write_json_atomic
from honestbench.results.layout import matrix_path
from honestbench.results.matrix import NOT_EVALUATED, Matrix, wilson_interval
from honestbench.results.run import RunInfo
from honestbench.zoo.cards import list_cards

SCHEMA = 1

RECORD_COLUMNS = [
    "model", "attack", "kernel", "accuracy", "count", "count_hi", "n", "exact", "ci_lo", "ci_hi",
    "evaluated", "fooled", "norm", "eps", "eps_effective", "norm_mean", "norm_median",
    "unbounded_success", "unbounded_norm_median", "params",
    "seconds", "ms_per_image_b1", "ms_per_image_b256", "mode", "suite", "dataset", "stochastic",
    "accuracy_mean_R", "spread", "R", "warnings", "git_commit", "checkpoint_sha256", "training", "data_sha256",
    "torch_version", "torchattacks_version", "art_version", "seed", "batch_size", "device", "date",
]


def record_rows(matrix: Matrix, run: RunInfo, model: str | None = None, checkpoint_sha256: str = "",
                training: str = "") -> list[dict]:
    """Rows of one model (``model``, default the matrix's): 'clean', each attack, each aggregate, 'worst-case'
    (in that order), with the run's facts."""
    n = matrix.n
    specs = matrix.meta.get("specs", {})
    base = {
        "model": model if model is not None else matrix.meta.get("model"),
        "mode": matrix.meta.get("mode"),
        "suite": run.suite,
        "dataset": run.dataset,
        "stochastic": bool(matrix.meta.get("stochastic", False)),
        "warnings": "",
        "checkpoint_sha256": checkpoint_sha256,
        "training": training,  # '2/30 epochs' for an incomplete card (Card.training), else ''
        **{k: getattr(run, k) for k in ("git_commit", "data_sha256", "torch_version", "torchattacks_version",
                                        "art_version", "seed", "batch_size", "device", "date")},
    }
    rows = []
    clean = matrix.clean_correct
    rows.append(_row(base, "clean", "clean", clean.astype(np.int8), n, {
        **mean_over_passes(matrix.passes("clean")),
        "norm": "none", "eps": 0.0, "eps_effective": 0.0, "params": "{}",
        "seconds": matrix.meta.get("clean_seconds"), "evaluated": n, "fooled": 0,
        "ms_per_image_b1": matrix.meta.get("ms_per_image_b1"),
        "ms_per_image_b256": matrix.meta.get("ms_per_image_b256")}))
    rows.extend(_attack_row(matrix, j, base) for j in range(len(matrix.labels)))
    aggregates = dict(matrix.meta.get("aggregates", {}))
    aggregates["worst-case"] = list(matrix.labels)
    for label, members in aggregates.items():
        cols = [matrix.labels.index(m) for m in members]
        rows.append(_row(base, label, "aggregate", matrix.aggregate(members), n, {
            **mean_over_passes(matrix.passes(label)),
            "norm": "/".join(sorted({str(specs.get(m, {}).get("norm")) for m in members})),
            "params": json.dumps({"members": members}), "seconds": float(matrix.seconds[cols].sum()),
            "evaluated": int(clean.sum())}))
    rows.extend(_bound_rows(matrix, base))
    return rows


def _bound_rows(matrix: Matrix, base: dict) -> list[dict]:
    """The rows of the bound columns (``certified``, ``exact``; :mod:`honestbench.engine.certified`): ``attack``
    the label, ``kernel`` the method, ``params`` the per-image limit and the column's note (a fallback, the
    unsettled images, or the refusal line of a model the bounds cannot handle: then no accuracy)."""
    rows = []
    for j, (label, info) in enumerate(matrix.meta.get("bounds", {}).items()):
        params = {k: v for k, v in (("limit_s", info.get("limit")), ("note", info.get("note"))) if v}
        row = _row(base, label, info["method"], matrix.bounds[:, j], matrix.n, {
            "norm": "linf", "eps": info["eps"], "eps_effective": info["eps"], "seconds": info["seconds"],
            "evaluated": matrix.n, "params": json.dumps(params)})
        if info.get("refused"):
            row.update(accuracy=None, ci_lo=None, ci_hi=None, exact=False)
        rows.append(row)
    return rows


def _attack_row(matrix: Matrix, j: int, base: dict) -> dict:
    """The row of attack column ``j``: its counts, the norms of the fooled samples, its timing."""
    label = matrix.labels[j]
    spec = matrix.meta.get("specs", {}).get(label, {})
    clean = matrix.clean_correct
    flags = matrix.robust[:, j]
    attacked = clean & (flags != NOT_EVALUATED)
    fooled = attacked & (flags == 0)
    norms = matrix.norm[fooled, j]
    norms = norms[np.isfinite(norms)]
    raw = matrix.raw_norm[attacked, j]
    unbounded = {}
    if attacked.any() and not np.isnan(raw).all():
        found = raw[np.isfinite(raw)]
        unbounded = {"unbounded_success": float(len(found) / len(raw)),
                     "unbounded_norm_median": float(np.median(found)) if len(found) else None}
    return _row(base, label, spec.get("kernel", label), flags, matrix.n, {
        **mean_over_passes(matrix.passes(label)),
        "norm": spec.get("norm"), "eps": spec.get("eps"), "eps_effective": spec.get("eps_effective"),
        "params": json.dumps(spec.get("params", {}), sort_keys=True),
        "seconds": float(matrix.seconds[j]), "evaluated": int(attacked.sum()),
        "fooled": int(fooled.sum()),
        "norm_mean": float(norms.mean()) if len(norms) else None,
        "norm_median": float(np.median(norms)) if len(norms) else None, **unbounded})


def mean_over_passes(flags: np.ndarray | None) -> dict:
    """``accuracy_mean_R``, ``spread`` and ``R`` of (N, R) per-pass flags: the mean over images and passes
    and the standard deviation (ddof 1) over the passes of the per-pass accuracy. Empty for None (no
    passes); only ``R`` when some image was not evaluated (early exit: the mean is unknown)."""
    if flags is None:
        return {}
    R = int(flags.shape[1])
    if (flags == NOT_EVALUATED).any() or not len(flags):
        return {"R": R}
    per_pass = (flags == 1).mean(0)
    return {"accuracy_mean_R": float(per_pass.mean()), "R": R,
            "spread": float(per_pass.std(ddof=1)) if R > 1 else 0.0}


def _row(base: dict, attack: str, kernel: str, flags: np.ndarray, n: int, extra: dict) -> dict:
    count = int((flags == 1).sum())
    count_hi = count + int((flags == NOT_EVALUATED).sum())
    lo, _ = wilson_interval(count, n)
    _, hi = wilson_interval(count_hi, n)
    row = {"attack": attack, "kernel": kernel, "accuracy": count_hi / n if n else float("nan"),
           "count": count, "count_hi": count_hi, "n": n, "exact": count == count_hi, "ci_lo": lo, "ci_hi": hi}
    row.update(extra)
    out = {**base, **row}
    return {k: out.get(k) for k in RECORD_COLUMNS}


def provenance(seed: int, device: str, data_sha256: str) -> dict:
    """Run-level provenance: git commit, library versions, seed, device, date (UTC)."""
    def ver(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "absent"

    return {"git_commit": git_commit(), "data_sha256": data_sha256, "torch_version": ver("torch"),
            "torchattacks_version": ver("torchattacks"), "art_version": ver("adversarial-robustness-toolbox"),
            "seed": seed, "device": str(device), "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}",
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def git_commit() -> str:
    """HEAD's commit (with '+dirty' when tracked files changed), or 'unknown' outside a git checkout (an
    installed wheel). ``$BENCH_GIT_COMMIT`` names it where the tree was copied without .git (e.g. a GPU machine)."""
    if os.environ.get("BENCH_GIT_COMMIT"):
        return os.environ["BENCH_GIT_COMMIT"]
    root = source_checkout()
    if root is None:
        return "unknown"
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_records(out: str | Path, rows: list[dict], run: RunInfo) -> None:
    """``DIR/records.json`` and ``DIR/records.csv``, each written atomically."""
    out = Path(out)
    write_json_atomic(out / "records.json", {"schema": SCHEMA, "run": run.to_json(), "records": rows})
    df = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    with atomic_path(out / "records.csv", "w") as f:
        df.to_csv(f, index=False)


def read_records(out: str | Path) -> tuple[dict, list[dict]]:
    """``(run_info, rows)`` of ``DIR/records.json``."""
    path = Path(out) / "records.json"
    if not path.is_file():
        raise BenchError(f"no records in {out} (expected {path}); run `bench run --out {out}` first")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BenchError(f"{path} is not valid JSON ({e}): restore it, or rerun `bench run` into a fresh --out"
                         ) from None
    if data.get("schema") != SCHEMA:
        raise BenchError(f"{path} has records schema {data.get('schema')}, this bench reads schema {SCHEMA}")
    return data.get("run", {}), data.get("records", [])


def read_run(out: str | Path) -> tuple[RunInfo, list[dict]]:
    """``(run, rows)`` of ``DIR/records.json``, the run typed (:class:`~honestbench.results.run.RunInfo`)."""
    run, rows = read_records(out)
    return RunInfo.from_json(run), rows


def model_order(names: Iterable[str]) -> list[str]:
    """``names`` (duplicates dropped) in leaderboard order: the zoo's models in registry order (the order of
    ``bench list models``), then any other name alphabetically. Records are written in the order their models
    finished (parallel ``bench run`` processes into one folder race), so every reader orders them here."""
    registry = {c.name: i for i, c in enumerate(list_cards())}
    return sorted(dict.fromkeys(names), key=lambda n: (0, registry[n], "") if n in registry else (1, 0, n))


def load(out: str | Path):
    """The records of a results directory as a pandas DataFrame (one row per model x attack): models in
    :func:`model_order`, each model's rows in their record order (clean, attacks, aggregates, worst case)."""
    _, rows = read_records(out)
    rank = {m: i for i, m in enumerate(model_order(r["model"] for r in rows))}
    rows = sorted(rows, key=lambda r: rank[r["model"]])  # stable: a model's own rows keep their order
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def load_matrix(out: str | Path, model: str) -> Matrix:
    """The saved per-sample matrix of ``model`` in results directory ``out``."""
    path = matrix_path(out, model)
    if not path.is_file():
        raise BenchError(f"no matrix for model {model!r} in {out} (expected {path})")
    return Matrix.load(path)
