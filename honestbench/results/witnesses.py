"""Witnesses: the adversarial example of every broken image, stored compactly and exactly (torch-free).

A witness is one float32 image ``x_w`` (NCHW pixels in [0, 1]) that the model misclassified, kept in the cell
of the attack column that broke the image (arrays ``wit_index``, ``wit_level``, ``wit_len``, ``wit_blob``),
so resumption and shard merges (which concatenate a cell's per-sample arrays) keep them. By default an image
gets ONE witness: the first column of the cascade (suite order under full matrix) that broke it.

Encoding, given the clean image ``x`` (float32, from the data) -- every level reconstructs ``x_w`` bit for bit:
  * ``level k >= 0`` (quantised): ``q = trunc((x_adv - x) * 2**k)`` (integers, the attack's perturbation
    truncated toward zero onto the grid ``2**-k``) and ``x_w = float32(x + float32(q) * 2**-k)`` (one IEEE
    rounding, monotone, so ``x_w`` lies between ``x`` and ``x_adv`` pixel by pixel: never outside the attack's
    budget or the [0, 1] box). The engine keeps the coarsest level whose ``x_w`` the model still
    misclassifies (:mod:`honestbench.engine.witness`); ``q`` is stored as int8/int16/int32, zlib level 9;
  * ``level -1`` (exact): the attack's own ``x_adv``, as the XOR of its float32 bit pattern with ``x``'s,
    byte planes split (better compression), zlib level 9; used when no quantised image still fools.

Each payload starts with one byte naming its integer type (1, 2 or 4 bytes; 0 for the exact XOR form).
Size, measured (``bench run --models regular,pgd-at --suite ci --out D``, 128 CIFAR-10 images, then ``bench
verify D``): 151 witnesses, 618 and 479 bytes of payload each (regular, pgd-at), 605 bytes each on disk in the
cells (most of them FGSM's, at level 5: the sign pattern). Finer levels (PGD's iterates, L2 perturbations) and
the exact form cost more; a raw float32 CIFAR-10 image is 12,288 bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from honestbench.results.layout import cell_path, load_cell

#: quantisation grids 2**-k tried from coarsest to finest (then the exact form)
LEVELS: tuple[int, ...] = (4, 5, 6, 7, 8, 10, 12, 14)
EXACT = -1
KEYS = ("wit_index", "wit_level", "wit_len", "wit_blob")
_INT_TYPES = {1: np.int8, 2: np.int16, 4: np.int32}


def quantised(x: np.ndarray, x_adv: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """``(q, x_w)`` of module docstring level ``level`` for images ``x``, ``x_adv`` (float32, same shape)."""
    q = np.trunc((x_adv.astype(np.float64) - x.astype(np.float64)) * 2.0 ** level).astype(np.int64)
    return q, _rebuild(x, q, level)


def _rebuild(x: np.ndarray, q: np.ndarray, level: int) -> np.ndarray:
    step = np.float32(2.0 ** -level)
    return (x.astype(np.float32) + q.astype(np.float32) * step).astype(np.float32)


def _shuffle(bits: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bits.reshape(-1).view(np.uint8).reshape(-1, 4).T)


def encode(x: np.ndarray, x_w: np.ndarray, level: int, q: np.ndarray | None = None) -> bytes:
    """One image's payload: ``q`` at ``level`` >= 0, else ``x_w`` exactly (its bits XOR ``x``'s)."""
    if level == EXACT:
        xor = x.astype(np.float32).view(np.uint32) ^ x_w.astype(np.float32).view(np.uint32)
        return b"\x00" + zlib.compress(_shuffle(xor).tobytes(), 9)
    big = int(np.abs(q).max()) if q.size else 0
    width = 1 if big < 2 ** 7 else 2 if big < 2 ** 15 else 4
    return bytes([width]) + zlib.compress(q.astype(_INT_TYPES[width]).tobytes(), 9)


def decode(x: np.ndarray, level: int, payload: bytes) -> np.ndarray:
    """The witness image (float32, ``x``'s shape) from its clean image ``x`` and payload (:func:`encode`)."""
    width, raw = payload[0], zlib.decompress(payload[1:])
    if level == EXACT:
        planes = np.frombuffer(raw, np.uint8).reshape(4, -1).T
        xor = np.ascontiguousarray(planes).view(np.uint32).reshape(x.shape)
        return (x.astype(np.float32).view(np.uint32) ^ xor).view(np.float32)
    q = np.frombuffer(raw, _INT_TYPES[width]).reshape(x.shape)
    return _rebuild(x, q, level)


@dataclass
class Witnesses:
    """The witnesses of one cell: canonical image ids, levels, payload lengths and the concatenated payloads."""

    index: list[int] = field(default_factory=list)
    level: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)

    def add(self, image_id: int, level: int, payload: bytes) -> None:
        self.index.append(int(image_id))
        self.level.append(int(level))
        self.payloads.append(payload)

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def concat(cls, parts: list[Witnesses | None]) -> Witnesses | None:
        """Consecutive shards' witnesses as one (None when any shard's cell predates witnesses)."""
        if any(p is None for p in parts):
            return None
        return cls([i for p in parts for i in p.index], [lv for p in parts for lv in p.level],
                   [b for p in parts for b in p.payloads])

    def arrays(self) -> dict[str, np.ndarray]:
        """The cell arrays (:data:`KEYS`): 1-d, so a shard merge's concatenation keeps them consistent."""
        blob = b"".join(self.payloads)
        return {"wit_index": np.asarray(self.index, np.int64), "wit_level": np.asarray(self.level, np.int8),
                "wit_len": np.asarray([len(p) for p in self.payloads], np.int32),
                "wit_blob": np.frombuffer(blob, np.uint8).copy() if blob else np.zeros(0, np.uint8)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Witnesses:
        """The witnesses of a cell's arrays (none when the cell holds none)."""
        out = cls()
        if "wit_index" not in arrays:
            return out
        blob = np.asarray(arrays["wit_blob"], np.uint8).tobytes()
        ends = np.cumsum(np.asarray(arrays["wit_len"], np.int64))
        starts = ends - np.asarray(arrays["wit_len"], np.int64)
        for i, lv, a, b in zip(arrays["wit_index"], arrays["wit_level"], starts, ends, strict=True):
            out.add(int(i), int(lv), blob[int(a):int(b)])
        return out

    def images(self, clean: dict[int, np.ndarray]) -> Iterable[tuple[int, int, np.ndarray]]:
        """``(image id, level, witness image)`` for each witness, decoded against ``clean[image id]``."""
        for i, lv, p in zip(self.index, self.level, self.payloads, strict=True):
            yield i, lv, decode(clean[i], lv, p)

    def nbytes(self) -> int:
        """Bytes of the payloads plus 13 per witness (id, level, length) before the cell file's compression."""
        return sum(len(p) for p in self.payloads) + 13 * len(self)


def has_witnesses(arrays: dict[str, np.ndarray]) -> bool:
    """True when a cell's arrays carry the witness arrays (cells written before witnesses existed do not)."""
    return all(k in arrays for k in KEYS)


def read_witnesses(out: str | Path, model: str, labels: Sequence[str]) -> dict[str, Witnesses]:
    """``{column label: Witnesses}`` of model ``model`` in results directory ``out`` (empty when a cell
    is missing or holds no witnesses)."""
    found = {}
    for label in labels:
        cell = load_cell(cell_path(out, model, label))
        found[label] = Witnesses.from_arrays(cell[0]) if cell else Witnesses()
    return found
