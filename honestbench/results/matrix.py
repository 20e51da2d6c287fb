"""The per-sample robustness matrix of one model (samples x attacks), its worst-case combination, the merge of
shards, and Wilson intervals.

Robust flags are tri-state int8: ``1`` robust (clean-correct and still correct on the adversarial image),
``0`` not robust (misclassified clean, or fooled), ``-1`` (:data:`NOT_EVALUATED`) not evaluated (early-exit
mode: an earlier attack of the cascade had already fooled the sample). Perturbation norms are in the attack's
norm, in pixel units of [0, 1] images.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from honestbench.core.errors import BenchError
from honestbench.core.io import atomic_path

Z95 = 1.959963984540054
NOT_EVALUATED = -1


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
    only aggregate of attacks the harness computes: never a sum of accuracies."""
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
    int8 (N, A, R), tri-state flags of R further seeded passes (module docstring). Suites with bound columns
    only (:mod:`honestbench.engine.certified`): ``bounds`` int8 (N, B), the flags of ``meta["bounds"]``'s
    labels in order (``certified``, ``exact``: 1 proved robust, 0 not, -1 unknown); never part of the worst
    case, which is over attacks.
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
    bounds: np.ndarray | None = None

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
        bound_labels = list(self.meta.get("bounds", {}))
        if label in bound_labels and self.bounds is not None:
            return self.bounds[:, bound_labels.index(label)]
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

    def to_frame(self):
        """The matrix as a pandas DataFrame, one row per image: ``index`` (canonical id), ``label``,
        ``clean_pred``, ``clean_correct``, then per column (each attack, each aggregate, ``worst-case``) its
        tri-state robust flag (1 robust, 0 not, -1 not evaluated), and per attack ``<label>:pred`` and
        ``<label>:norm`` (the perturbation's size in the attack's norm, pixel units of [0, 1]; NaN when not
        evaluated)."""
        import pandas as pd  # function-level: pandas is slow to import and the matrix itself needs only numpy

        cols: dict[str, np.ndarray] = {"index": self.index, "label": self.y, "clean_pred": self.clean_pred,
                                       "clean_correct": self.clean_correct}
        for j, label in enumerate(self.labels):
            cols[label] = self.robust[:, j]
        for label in [*self.meta.get("aggregates", {}), "worst-case"]:
            cols[label] = self.column(label)
        for j, label in enumerate(self.labels):
            cols[f"{label}:pred"] = self.pred[:, j]
            cols[f"{label}:norm"] = self.norm[:, j]
        return pd.DataFrame(cols)

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
_OPTIONAL = ("clean_passes", "robust_passes", "bounds")  # stochastic models only; suites with bound columns


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

