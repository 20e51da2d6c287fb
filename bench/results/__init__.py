"""Records, the per-sample robustness matrix, and the on-disk layout of a results directory.

A results directory (``bench run --out DIR``) holds::

    DIR/records.json            {"schema": 1, "run": {...}, "records": [row, ...]}  (atomic)
    DIR/records.csv             the same rows, flat (atomic)
    DIR/matrices/<model>.npz    the per-sample matrix of one model (:class:`Matrix`)
    DIR/cells/<model>/model.json        card name, checkpoint sha256, stochastic flag, ...
    DIR/cells/<model>/clean.npz         clean predictions + inference timings (a "cell")
    DIR/cells/<model>/<attack>.npz      one attack's column + 8 example images (a "cell")
    DIR/leaderboard.md, DIR/figures/*.png   written by :mod:`bench.report` from the files above

Cells are the unit of resumption: each is written atomically once its attack has finished on every sample,
so Ctrl-C leaves only complete cells, and a rerun skips them. Everything downstream (records, report,
``bench check``, merges of sharded runs) reads these files and never re-runs an attack.

Robust flags are tri-state int8: ``1`` robust (clean-correct and still correct on the adversarial image),
``0`` not robust (misclassified clean, or fooled), ``-1`` not evaluated (early-exit mode: an earlier
attack of the cascade had already fooled the sample). A per-attack column with ``-1`` entries is known only
within bounds: ``count`` counts the samples known robust (lower bound), ``count_hi`` adds the unevaluated
ones (upper bound); the row's ``accuracy`` is the upper bound ``count_hi / n`` and ``exact`` is False.

Stochastic models (mean over R passes): the robust flags above come from ONE seeded stochastic forward pass
per image. A stochastic model's matrix also holds ``clean_passes`` (N, R) and ``robust_passes`` (N, A, R):
the correctness of each image in R further seeded passes, clean and on the attack's adversarial image
(tri-state like ``robust``; a pass counts as robust when both its clean and its adversarial prediction are
right; an image the reference clean pass got wrong is not attacked and counts 0). Its records then add
``accuracy_mean_R`` (the mean over images and the R passes), ``spread`` (standard deviation over the R
passes of the per-pass accuracy) and ``R``; both are empty for deterministic models and for columns not
evaluated on every image (early exit).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.core.io import REPO_ROOT, atomic_path, write_json_atomic

SCHEMA = 1
Z95 = 1.959963984540054
NOT_EVALUATED = -1

RECORD_COLUMNS = [
    "model", "attack", "kernel", "accuracy", "count", "count_hi", "n", "exact", "ci_lo", "ci_hi",
    "evaluated", "fooled", "norm", "eps", "eps_effective", "norm_mean", "norm_median",
    "unbounded_success", "unbounded_norm_median", "params",
    "seconds", "ms_per_image_b1", "ms_per_image_b256", "mode", "suite", "dataset", "stochastic",
    "accuracy_mean_R", "spread", "R", "warnings", "git_commit", "checkpoint_sha256", "data_sha256",
    "torch_version", "torchattacks_version", "art_version", "seed", "batch_size", "device", "date",
]


# ----------------------------------------------------------------------------------------------- statistics
def wilson_interval(count: int | np.ndarray, n: int | np.ndarray, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (95 % by default) of the proportion ``count / n``; ``(0, 1)`` when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = count / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if count <= 0 else max(0.0, centre - half)  # exact endpoints (no 1e-19 rounding residue)
    hi = 1.0 if count >= n else min(1.0, centre + half)
    return float(lo), float(hi)


def combine(flags: np.ndarray) -> np.ndarray:
    """Per-sample intersection (worst case) of tri-state robust flags, shape (N, k) -> (N,).

    0 if any flag is 0 (some attack fooled the sample), 1 if all are 1, otherwise -1 (unknown). This is the
    only aggregate of attacks the harness computes: never a sum of accuracies (the report's 114.6 %)."""
    flags = np.asarray(flags, dtype=np.int8)
    if flags.ndim == 1:
        return flags.copy()
    out = np.full(flags.shape[:1] + flags.shape[2:], NOT_EVALUATED, dtype=np.int8)
    out[(flags == 1).all(axis=1)] = 1
    out[(flags == 0).any(axis=1)] = 0
    return out  # (N, k, R) per-pass flags -> (N, R): the same rule for every pass


# ----------------------------------------------------------------------------------------------- the matrix
@dataclass
class Matrix:
    """Per-sample robustness matrix of one model: N samples x A attacks.

    ``index`` holds canonical sample ids (sorted), ``labels`` the attack column labels (suite order).
    ``robust`` int8 (N, A) tri-state; ``norm`` float32 (N, A) perturbation size in the attack's norm
    (NaN when not evaluated); ``raw_norm`` float32 (N, A) the unthresholded norm of a minimum-norm attack
    (CW: ``inf`` where it found no adversarial image, NaN for other attacks); ``pred`` int16 (N, A)
    adversarial prediction (-1 when not evaluated); ``conf`` float32 (N, A) its softmax probability.
    ``clean_*`` are the clean pass; ``clean_probs`` float16 (N, classes). ``seconds`` (A,) wall time per
    attack; ``meta`` is JSON-able: model name, mode, seed, per-attack specs, aggregates, timings,
    stochastic flag. Stochastic models only (else None): ``clean_passes`` int8 (N, R) and ``robust_passes``
    int8 (N, A, R), tri-state flags of R further seeded passes (module docstring).
    """

    index: np.ndarray
    y: np.ndarray
    labels: list[str]
    clean_pred: np.ndarray
    clean_conf: np.ndarray
    clean_probs: np.ndarray
    robust: np.ndarray
    norm: np.ndarray
    pred: np.ndarray
    conf: np.ndarray
    seconds: np.ndarray
    raw_norm: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    clean_passes: np.ndarray | None = None
    robust_passes: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.raw_norm is None:
            self.raw_norm = np.full(self.robust.shape, np.nan, np.float32)

    # -- derived columns
    @property
    def n(self) -> int:
        return len(self.index)

    @property
    def clean_correct(self) -> np.ndarray:
        return self.clean_pred == self.y

    def column(self, label: str) -> np.ndarray:
        """Tri-state robust flags of one attack label, or of an aggregate / 'worst-case' / 'clean'."""
        if label == "clean":
            return self.clean_correct.astype(np.int8)
        if label == "worst-case":
            return self.worst_case()
        if label in self.labels:
            return self.robust[:, self.labels.index(label)]
        aggregates = self.meta.get("aggregates", {})
        if label in aggregates:
            return self.aggregate(aggregates[label])
        raise KeyError(f"no column {label!r} (attacks: {', '.join(self.labels)})")

    def aggregate(self, labels: list[str]) -> np.ndarray:
        """Per-sample intersection of the given attack columns (see :func:`combine`)."""
        cols = [self.labels.index(label) for label in labels]
        return combine(np.concatenate([self.clean_correct[:, None].astype(np.int8), self.robust[:, cols]], 1))

    def worst_case(self) -> np.ndarray:
        """Per-sample worst case over every attack of the suite (exact in both modes: the cascade attacks a
        sample with every attack until one fools it)."""
        return self.aggregate(self.labels)

    # -- mean over R stochastic passes
    @property
    def R(self) -> int | None:
        """Number of extra stochastic passes per image (None: a single-pass matrix, deterministic model)."""
        return None if self.clean_passes is None else int(self.clean_passes.shape[1])

    def passes(self, label: str) -> np.ndarray | None:
        """(N, R) tri-state flags of column ``label`` (an attack, an aggregate, 'worst-case' or 'clean') in
        each of the R passes; None without passes. Aggregates are per pass: robust in pass r when robust to
        every member in pass r."""
        if self.clean_passes is None or self.robust_passes is None:
            return None
        if label == "clean":
            return self.clean_passes.astype(np.int8)
        if label in self.labels:
            return self.robust_passes[:, self.labels.index(label)]
        members = self.labels if label == "worst-case" else self.meta.get("aggregates", {}).get(label)
        if members is None:
            raise KeyError(f"no column {label!r} (attacks: {', '.join(self.labels)})")
        cols = [self.labels.index(m) for m in members]
        return combine(np.concatenate([self.clean_passes[:, None].astype(np.int8),
                                       self.robust_passes[:, cols]], 1))

    # -- persistence
    def save(self, path: str | Path) -> None:
        """Write the matrix as one npz atomically."""
        arrays = {k: getattr(self, k) for k in _ARRAYS + _OPTIONAL if getattr(self, k) is not None}
        with atomic_path(path, "wb") as f:
            np.savez_compressed(f, labels=np.array(self.labels, dtype=str),
                                meta=np.array(json.dumps(self.meta, default=str)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Matrix:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _ARRAYS + _OPTIONAL if k in z.files}
            return cls(labels=[str(s) for s in z["labels"]], meta=json.loads(str(z["meta"])), **arrays)

    def subset(self, mask: np.ndarray) -> Matrix:
        """The rows selected by a boolean mask (e.g. one shard)."""
        kw = {k: getattr(self, k)[mask] for k in _ARRAYS + _OPTIONAL
              if k != "seconds" and getattr(self, k) is not None}
        return Matrix(labels=list(self.labels), seconds=self.seconds.copy(), meta=dict(self.meta), **kw)


_ARRAYS = ("index", "y", "clean_pred", "clean_conf", "clean_probs", "robust", "norm", "raw_norm", "pred",
           "conf", "seconds")
_OPTIONAL = ("clean_passes", "robust_passes")  # stochastic models only


def merge_matrices(parts: list[Matrix]) -> Matrix:
    """Merge shards of one model's matrix (disjoint sample ids, same attacks) into one, sorted by id.

    Seconds are summed (total compute); a duplicated sample id or a different attack list is an error, so a
    merge can neither lose nor double-count a sample."""
    if not parts:
        raise BenchError("nothing to merge")
    first = parts[0]
    for p in parts[1:]:
        if p.labels != first.labels:
            raise BenchError(f"cannot merge matrices with different attacks: {first.labels} vs {p.labels}")
        for key in ("model", "mode", "seed", "specs"):
            if p.meta.get(key) != first.meta.get(key):
                raise BenchError(f"cannot merge matrices with different {key}: "
                                 f"{first.meta.get(key)!r} vs {p.meta.get(key)!r}")
    index = np.concatenate([p.index for p in parts])
    order = np.argsort(index, kind="stable")
    ordered = index[order]
    dup = ordered[1:][np.diff(ordered) == 0]
    if len(dup):
        raise BenchError("cannot merge: sample ids occur in more than one shard "
                         f"(e.g. {np.unique(dup)[:5].tolist()})")
    kw = {k: np.concatenate([getattr(p, k) for p in parts])[order] for k in _ARRAYS if k != "seconds"}
    for k in _OPTIONAL:  # mean-over-R passes: kept only when every shard has them with the same R
        got = [getattr(p, k) for p in parts]
        if all(g is not None for g in got) and len({g.shape[1:] for g in got}) == 1:
            kw[k] = np.concatenate(got)[order]
    seconds = np.sum([p.seconds for p in parts], axis=0)
    meta = dict(first.meta)
    meta["shards"] = len(parts) if len(parts) > 1 else meta.get("shards", 1)
    return Matrix(labels=list(first.labels), seconds=seconds, meta=meta, **kw)


# ----------------------------------------------------------------------------------------------- layout
def safe_name(label: str) -> str:
    """A file-name-safe form of a model or attack label ('PGD 8/255' -> 'PGD_8-255')."""
    return re.sub(r"[^A-Za-z0-9._+@=-]+", "_", label.replace("/", "-")).strip("_") or "_"


def cell_path(out: str | Path, model: str, label: str) -> Path:
    """``DIR/cells/<model>/<label>.npz``; ``label`` 'clean' is the clean pass."""
    return Path(out) / "cells" / safe_name(model) / f"{safe_name(label)}.npz"


def matrix_path(out: str | Path, model: str) -> Path:
    return Path(out) / "matrices" / f"{safe_name(model)}.npz"


def save_cell(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write one cell (arrays + a JSON ``meta`` with its configuration key) atomically."""
    with atomic_path(path, "wb") as f:
        np.savez_compressed(f, meta=np.array(json.dumps(meta, default=str)), **arrays)


def load_cell(path: str | Path) -> tuple[dict[str, np.ndarray], dict] | None:
    """A cell's arrays and meta, or None when it does not exist or cannot be read (then it is recomputed)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "meta"}
            return arrays, json.loads(str(z["meta"]))
    except Exception:  # a truncated file from an older, non-atomic writer: recompute
        return None


# ----------------------------------------------------------------------------------------------- records
def record_rows(matrix: Matrix, model_info: dict, run_info: dict) -> list[dict]:
    """Rows of one model: 'clean', each attack, each aggregate, 'worst-case' (in that order)."""
    n = matrix.n
    specs = matrix.meta.get("specs", {})
    base = {
        "model": model_info.get("name", matrix.meta.get("model")),
        "mode": matrix.meta.get("mode"),
        "suite": run_info.get("suite"),
        "dataset": run_info.get("dataset"),
        "stochastic": bool(matrix.meta.get("stochastic", False)),
        "warnings": "",
        "checkpoint_sha256": model_info.get("checkpoint_sha256", ""),
        **{k: run_info.get(k) for k in ("git_commit", "data_sha256", "torch_version", "torchattacks_version",
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
    for j, label in enumerate(matrix.labels):
        spec = specs.get(label, {})
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
        rows.append(_row(base, label, spec.get("kernel", label), flags, n, {
            **mean_over_passes(matrix.passes(label)),
            "norm": spec.get("norm"), "eps": spec.get("eps"), "eps_effective": spec.get("eps_effective"),
            "params": json.dumps(spec.get("params", {}), sort_keys=True),
            "seconds": float(matrix.seconds[j]), "evaluated": int(attacked.sum()),
            "fooled": int(fooled.sum()),
            "norm_mean": float(norms.mean()) if len(norms) else None,
            "norm_median": float(np.median(norms)) if len(norms) else None, **unbounded}))
    aggregates = dict(matrix.meta.get("aggregates", {}))
    aggregates["worst-case"] = list(matrix.labels)
    for label, members in aggregates.items():
        cols = [matrix.labels.index(m) for m in members]
        rows.append(_row(base, label, "aggregate", matrix.aggregate(members), n, {
            **mean_over_passes(matrix.passes(label)),
            "norm": "/".join(sorted({str(specs.get(m, {}).get("norm")) for m in members})),
            "params": json.dumps({"members": members}), "seconds": float(matrix.seconds[cols].sum()),
            "evaluated": int(clean.sum())}))
    return rows


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
    from importlib.metadata import PackageNotFoundError, version

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
    """HEAD's commit (with '+dirty' when tracked files changed), or 'unknown' outside a git checkout.
    ``$BENCH_GIT_COMMIT`` names it where the tree was copied without .git (e.g. a GPU machine)."""
    if os.environ.get("BENCH_GIT_COMMIT"):
        return os.environ["BENCH_GIT_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_records(out: str | Path, rows: list[dict], run_info: dict) -> None:
    """``DIR/records.json`` and ``DIR/records.csv``, each written atomically."""
    import pandas as pd

    out = Path(out)
    write_json_atomic(out / "records.json", {"schema": SCHEMA, "run": run_info, "records": rows})
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
        raise BenchError(f"{path} is not valid JSON ({e})") from None
    if data.get("schema") != SCHEMA:
        raise BenchError(f"{path} has records schema {data.get('schema')}, this bench reads schema {SCHEMA}")
    return data.get("run", {}), data.get("records", [])


def model_order(names: Iterable[str]) -> list[str]:
    """``names`` (duplicates dropped) in leaderboard order: the zoo's models in registry order (the order of
    ``bench list models``), then any other name alphabetically. Records are written in the order their models
    finished (parallel ``bench run`` processes into one folder race), so every reader orders them here."""
    from bench.zoo import list_cards

    registry = {c.name: i for i, c in enumerate(list_cards())}
    return sorted(dict.fromkeys(names), key=lambda n: (0, registry[n], "") if n in registry else (1, 0, n))


def load(out: str | Path):
    """The records of a results directory as a pandas DataFrame (one row per model x attack): models in
    :func:`model_order`, each model's rows in their record order (clean, attacks, aggregates, worst case)."""
    import pandas as pd

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
