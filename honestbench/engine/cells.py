"""Cells, the unit of resumption: a finished (model, attack) column, typed (:class:`CleanCell`,
:class:`AttackCell`), on disk as one ``.npz`` (:func:`honestbench.results.save_cell`), the key that ties it to
one configuration (:class:`CellCache`), and the seeds that make a cell's numbers independent of how the
images are sharded.

Seeding: samples are processed in blocks of ``batch_size`` consecutive positions; for each block and attack,
the generator of the attack and the torch RNG of a stochastic model are seeded from ``(seed, column label,
canonical id of the block's first sample)`` (:func:`derive_seed`). A shard whose boundaries are multiples of
``batch_size`` therefore reproduces exactly the single-process numbers, and the cells of consecutive shards
concatenate (:meth:`CleanCell.concat`, :meth:`AttackCell.concat`) into the one-process cell.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from honestbench.core.errors import BenchError
from honestbench.results import cell_path, load_cell, model_dir, save_cell
from honestbench.results.witnesses import Witnesses, has_witnesses

N_EXAMPLES = 8  # adversarial example images kept per (model, attack) cell: up to 4 robust + 4 fooled


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from ``seed`` and any labels (sha256: stable across runs, machines and Python)."""
    text = "|".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def samples_id(index, y) -> str:
    """The evaluation set's id in cell keys: sha256 of its canonical ids and labels (16 hex digits)."""
    index = np.asarray(index, dtype=np.int64)
    labels = torch.as_tensor(y).long().cpu().numpy()
    return hashlib.sha256(index.tobytes() + labels.tobytes()).hexdigest()[:16]


def _passes(arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    return arrays.get("passes")


def _concat(parts: list, name: str) -> np.ndarray | None:
    values = [getattr(p, name) for p in parts]
    return None if values[0] is None else np.concatenate(values)


@dataclass
class Examples:
    """The example images of one attack column: the first ``N_EXAMPLES // 2`` robust and the first fooled
    images by position; ``clean`` / ``adv`` uint8 NHWC, ``index`` their canonical ids, ``pred`` / ``conf``
    the adversarial prediction and confidence, ``robust`` 1 or 0. Stored as ``ex_<field>`` arrays."""

    index: np.ndarray
    clean: np.ndarray
    adv: np.ndarray
    pred: np.ndarray
    conf: np.ndarray
    robust: np.ndarray

    def __len__(self) -> int:
        return len(self.robust)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"ex_{f.name}": getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Examples:
        return cls(**{f.name: arrays[f"ex_{f.name}"] for f in fields(cls)})

    @classmethod
    def concat(cls, parts: list[Examples]) -> Examples:
        """The examples one process keeps, from those of consecutive shards (re-selected by position)."""
        with_ex = [p for p in parts if len(p)] or parts[:1]
        flags = np.concatenate([p.robust for p in with_ex])
        keep = np.zeros(len(flags), bool)
        for flag in (1, 0):
            keep[np.nonzero(flags == flag)[0][: N_EXAMPLES // 2]] = True
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in with_ex])[keep] for f in fields(cls)})


@dataclass
class CleanCell:
    """The clean pass of one model: predictions (int64), confidences (float32), float16 softmax ``probs``,
    wall ``seconds``, inference ms per image at batch 1 and 256, and for a stochastic model the correctness
    in R further seeded passes (``passes``, (N, R) int8)."""

    pred: np.ndarray
    conf: np.ndarray
    probs: np.ndarray
    seconds: float
    ms_b1: float
    ms_b256: float
    passes: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"pred": self.pred, "conf": self.conf, "probs": self.probs, "seconds": np.float64(self.seconds),
               "ms_b1": np.float64(self.ms_b1), "ms_b256": np.float64(self.ms_b256)}
        if self.passes is not None:
            out["passes"] = self.passes
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> CleanCell:
        return cls(a["pred"], a["conf"], a["probs"], float(a["seconds"]), float(a["ms_b1"]), float(a["ms_b256"]),
                   _passes(a))

    @classmethod
    def concat(cls, parts: list[CleanCell]) -> CleanCell:
        """Consecutive shards' clean cells as one: per-image arrays concatenated, seconds summed, the
        inference timings of the first shard."""
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("pred", "conf", "probs")),
                   sum(p.seconds for p in parts), parts[0].ms_b1, parts[0].ms_b256, _concat(parts, "passes"))


@dataclass
class AttackCell:
    """One attack's column: tri-state ``robust`` flags (int8: 1, 0, -1 not evaluated), perturbation ``norm``
    and, for a minimum-norm attack, the unthresholded ``raw_norm`` (float32, NaN where not measured),
    adversarial ``pred`` (int16) and ``conf``, wall ``seconds``, the :class:`Examples`, and for a stochastic
    model ``passes`` ((N, R) int8, tri-state)."""

    robust: np.ndarray
    norm: np.ndarray
    raw_norm: np.ndarray
    pred: np.ndarray
    conf: np.ndarray
    seconds: float
    examples: Examples
    passes: np.ndarray | None = None
    witnesses: Witnesses | None = None  # the adversarial example of every image it broke (None: an old cell)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"robust": self.robust, "norm": self.norm, "raw_norm": self.raw_norm, "pred": self.pred,
               "conf": self.conf, "seconds": np.float64(self.seconds)}
        if self.passes is not None:
            out["passes"] = self.passes
        wit = self.witnesses.arrays() if self.witnesses is not None else {}
        return {**out, **self.examples.arrays(), **wit}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> AttackCell:
        return cls(a["robust"], a["norm"], a["raw_norm"], a["pred"], a["conf"], float(a["seconds"]),
                   Examples.from_arrays(a), _passes(a), Witnesses.from_arrays(a) if has_witnesses(a) else None)

    @classmethod
    def concat(cls, parts: list[AttackCell]) -> AttackCell:
        """Consecutive shards' cells as one: per-image arrays concatenated, seconds summed, the examples
        re-selected exactly as one process selects them (:meth:`Examples.concat`)."""
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("robust", "norm", "raw_norm", "pred",
                                                                               "conf")),
                   sum(p.seconds for p in parts), Examples.concat([p.examples for p in parts]),
                   _concat(parts, "passes"), Witnesses.concat([p.witnesses for p in parts]))


Cell = CleanCell | AttackCell
C = TypeVar("C", CleanCell, AttackCell)


@dataclass
class CellCache:
    """Finished (model, attack) cells under ``DIR/cells/<model>/``; ``key`` fixes the configuration they
    belong to (model checkpoint, data, seed, batch size, mode). A cell of another configuration is an error,
    never silently mixed in."""

    out: Path
    model: str
    key: dict = field(default_factory=dict)

    def path(self, label: str) -> Path:
        return cell_path(self.out, self.model, label)

    def full_key(self, key: dict) -> dict:
        """The configuration key stored with a cell: this cache's ``key`` and the cell's own, as JSON."""
        return json.loads(json.dumps({**self.key, **key}, default=str))

    def get(self, label: str, key: dict, kind: type[C]) -> C | None:
        """The finished cell ``label`` (a ``kind``) when it exists for ``key``, else None."""
        found = load_cell(self.path(label))
        if found is None:
            return None
        arrays, meta = found
        want = self.full_key(key)
        if meta.get("key") != want:
            diff = sorted(k for k in set(want) | set(meta.get("key", {}))
                          if want.get(k) != meta.get("key", {}).get(k))
            raise BenchError(
                f"{self.path(label)} was computed with a different configuration "
                f"({', '.join(diff)} differ): use another --out, or delete {model_dir(self.out, self.model)}")
        return kind.from_arrays(arrays)

    def put(self, label: str, key: dict, cell: Cell) -> None:
        """Write the finished cell ``label`` with its key (atomically)."""
        save_cell(self.path(label), cell.arrays(), {"key": {**self.key, **key}})
