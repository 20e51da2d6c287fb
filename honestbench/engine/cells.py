"""Cells, the unit of resumption: a finished (model, attack) column on disk, the key that ties it to one
configuration, and the seeds that make a cell's numbers independent of how the images are sharded.

Seeding: samples are processed in blocks of ``batch_size`` consecutive positions; for each block and attack,
the generator of the attack and the torch RNG of a stochastic model are seeded from ``(seed, column label,
canonical id of the block's first sample)`` (:func:`derive_seed`). A shard whose boundaries are multiples of
``batch_size`` therefore reproduces exactly the single-process numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from honestbench.core.errors import BenchError
from honestbench.results import cell_path, load_cell, safe_name, save_cell

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

    def get(self, label: str, key: dict) -> dict[str, np.ndarray] | None:
        found = load_cell(self.path(label))
        if found is None:
            return None
        arrays, meta = found
        want = json.loads(json.dumps({**self.key, **key}, default=str))
        if meta.get("key") != want:
            diff = sorted(k for k in set(want) | set(meta.get("key", {}))
                          if want.get(k) != meta.get("key", {}).get(k))
            where = self.out / "cells" / safe_name(self.model)
            raise BenchError(
                f"{self.path(label)} was computed with a different configuration "
                f"({', '.join(diff)} differ): use another --out, or delete {where}")
        return arrays

    def put(self, label: str, key: dict, arrays: dict[str, np.ndarray]) -> None:
        save_cell(self.path(label), arrays, {"key": {**self.key, **key}})

