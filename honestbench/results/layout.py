"""Where a results directory keeps its files: file-name-safe labels, cell and matrix paths, and the atomic
cell files (arrays + a JSON ``meta`` with the configuration key) that make a run resumable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from honestbench.core.io import atomic_path


def safe_name(label: str) -> str:
    """A file-name-safe form of a model or attack label ('PGD 8/255' -> 'PGD_8-255')."""
    return re.sub(r"[^A-Za-z0-9._+@=-]+", "_", label.replace("/", "-")).strip("_") or "_"


def model_dir(out: str | Path, model: str) -> Path:
    """``DIR/cells/<model>/``: the model's cells, its ``model.json`` and its diagnostics."""
    return Path(out) / "cells" / safe_name(model)


def model_info_path(out: str | Path, model: str) -> Path:
    """``DIR/cells/<model>/model.json``: what the run knew of the model (card facts, source, its suite)."""
    return model_dir(out, model) / "model.json"


def diagnostics_path(out: str | Path, model: str) -> Path:
    """``DIR/cells/<model>/diagnostics.json``: the model's saved ``--diagnose`` flags."""
    return model_dir(out, model) / "diagnostics.json"


def cell_path(out: str | Path, model: str, label: str) -> Path:
    """``DIR/cells/<model>/<label>.npz``; ``label`` 'clean' is the clean pass."""
    return model_dir(out, model) / f"{safe_name(label)}.npz"


def shard_cell_path(out: str | Path, model: str, shard: str, label: str) -> Path:
    """``DIR/cells/<model>/shards/<start>-<end>/<label>.npz``: a torchrun rank's cell of its shard."""
    return model_dir(out, model) / "shards" / shard / f"{safe_name(label)}.npz"


def matrix_path(out: str | Path, model: str) -> Path:
    """``DIR/matrices/<model>.npz``: the model's per-sample matrix."""
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

