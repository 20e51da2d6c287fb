"""Datasets: CIFAR-10 from the shipped npz files or torchvision's copy, and scikit-learn's 8x8 digits.

Every loader returns pixels in [0, 1] (float32, NCHW) for evaluation, or uint8 NHWC for training
(augmentation happens on uint8 / float batches in :mod:`honestbench.train`).

CIFAR-10 evaluation uses the canonical first 1,017 test images in canonical order: read from
``cifar10_exact.npz`` when ``$BENCH_DATA_DIR`` or the cache holds it, else from torchvision's CIFAR-10 test set
(:mod:`honestbench.data.tvformat`; downloaded into the cache when absent and the network allows), whose first
1,017 images are checked equal to the shipped file's (a pinned sha256); ``n`` beyond 1,017 reads the whole
10,000-image test set from torchvision's copy. Training uses all 50,000 images of ``cifar10_train_jpeg.npz``
decoded once and cached as a uint8 array in the user's cache directory, with exact pixels substituted where
known (or torchvision's training batches).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from honestbench.core.errors import DataError
from honestbench.core.io import cache_dir, file_sha256
from honestbench.data import tvformat
from honestbench.data.files import data_dir, find_file, where_searched

__all__ = ["CIFAR10_CLASSES", "DATASETS", "EXACT_FILE", "SHIPPED_SHA256", "SOURCES", "TRAIN_JPEG_FILE", "EvalSet",
           "TrainSet", "data_dir", "input_shape", "load_eval", "load_train"]

EXACT_FILE = "cifar10_exact.npz"
TRAIN_JPEG_FILE = "cifar10_train_jpeg.npz"
SHIPPED_SHA256 = {
    EXACT_FILE: "62c5f6e73db2b19903c5fc0387cd794d7aa669475566dff502614c061765021c",
    TRAIN_JPEG_FILE: "0907844d5ef26329710961c4f4f0779383ca7959def6d9093b3ebb6086975b4a",
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASETS = ("cifar10", "digits")
SOURCES = ("npz", "torchvision")


@dataclass
class EvalSet:
    """Evaluation images: ``x`` float32 (N, C, H, W) in [0, 1], ``y`` int64 (N,), ``index`` canonical ids.

    ``source_sha256`` names the images: for CIFAR-10's canonical first 1,017 the sha256 of
    ``cifar10_exact.npz``, whether they were read from that file or from torchvision's copy (checked equal to
    it by :data:`honestbench.data.tvformat.CANONICAL_SHA256`), so records from either source compare; beyond
    1,017 images the sha256 of torchvision's ``test_batch``. ``source`` says which file was read: ``npz``,
    ``torchvision`` or ``sklearn``."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    classes: tuple[str, ...]
    source_sha256: str
    source: str = "npz"

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class TrainSet:
    """Training images: ``x`` uint8 (N, H, W, C), ``y`` int64 (N,)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]


_HINT = "set BENCH_DATA_DIR to the folder that holds it (e.g. export BENCH_DATA_DIR=/path/to/shared/data)"


def _shipped_file(name: str) -> Path:
    """The shipped file ``name`` from ``$BENCH_DATA_DIR`` or the cache, sha256-checked; one-line
    :class:`DataError` naming where it was looked for otherwise."""
    path = find_file(name)
    if path is None:
        raise DataError(f"data file {name} not found in {where_searched()}: {_HINT}")
    digest = file_sha256(path)
    if digest != SHIPPED_SHA256[name]:
        raise DataError(f"data file {path} is corrupt (sha256 {digest[:12]}... != {SHIPPED_SHA256[name][:12]}...): "
                        f"replace it with the shipped copy, or {_HINT}")
    return path


def _load_npz(path: Path) -> np.lib.npyio.NpzFile:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # zip / format errors -> one line
        first = " ".join(str(e).split())[:160]
        raise DataError(f"data file {path} could not be read ({type(e).__name__}: {first}): replace it with the "
                        "shipped copy") from None


def _arrays(path: Path, *keys: str) -> tuple[np.ndarray, ...]:
    """The arrays ``keys`` of the npz file ``path``; :class:`DataError` when one is missing or unreadable."""
    z = _load_npz(path)
    missing = [k for k in keys if k not in z.files]
    if missing:
        raise DataError(f"data file {path} lacks the array {missing[0]!r} (it has {', '.join(z.files) or 'none'}): "
                        "replace it with the shipped copy")
    try:
        return tuple(z[k] for k in keys)
    except Exception as e:  # a member that does not decompress or parse
        raise DataError(f"data file {path} could not be read ({type(e).__name__}): replace it with the shipped copy"
                        ) from None


def _subset(n: int | None, total: int, name: str) -> int:
    """How many images ``--n`` keeps: all when None; :class:`DataError` when it is < 1 or more than there are
    (never silently fewer images than asked for)."""
    if n is None:
        return total
    if n < 1:
        raise DataError(f"--n must be >= 1, got {n}: use a positive number of images (or leave --n out)")
    if n > total:
        raise DataError(f"--n {n} is more than the {total:,} {name} evaluation images: use --n {total} or fewer "
                        "(or leave --n out)")
    return n


def _to_float_nchw(x_uint8_nhwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x_uint8_nhwc.transpose(0, 3, 1, 2))).float().div_(255.0)


def load_eval(name: str = "cifar10", n: int | None = None, source: str = "npz") -> EvalSet:
    """The evaluation set ``name``; ``n`` keeps the first ``n`` images in canonical order (default: CIFAR-10's
    1,017 canonical images, all of the digits' evaluation split).

    ``source='npz'``: the shipped exact test images when ``$BENCH_DATA_DIR`` or the cache holds
    ``cifar10_exact.npz``, else torchvision's copy (the same images, checked); ``'torchvision'``: torchvision's
    copy only. ``n`` above 1,017 reads torchvision's whole test set (10,000 images).
    """
    if name == "digits":
        x, y = _digits()
        x, y = x[_DIGITS_TRAIN:], y[_DIGITS_TRAIN:]
        k = _subset(n, len(y), "digits")
        return EvalSet("digits", torch.from_numpy(x[:k]), torch.from_numpy(y[:k]),
                       torch.arange(_DIGITS_TRAIN, _DIGITS_TRAIN + k), tuple(str(i) for i in range(10)), "sklearn",
                       "sklearn")
    if name != "cifar10":
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}: choose one of {', '.join(SOURCES)}")
    if (n is not None and n > tvformat.CANONICAL_N) or source == "torchvision" or find_file(EXACT_FILE) is None:
        return _torchvision_eval(n, strict=source == "torchvision")
    path = _shipped_file(EXACT_FILE)
    x, y, idx = _arrays(path, "x_test", "y_test", "test_index")
    if x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8 or len(x) != len(y) or len(idx) != len(y):
        raise DataError(f"data file {path} has unexpected arrays (x_test {x.shape} {x.dtype}, y_test {y.shape}, "
                        "expected uint8 (N, 32, 32, 3) and N labels): replace it with the shipped copy")
    k = _subset(n, len(y), "cifar10")
    return EvalSet("cifar10", _to_float_nchw(x[:k]), torch.from_numpy(y[:k].astype(np.int64)),
                   torch.from_numpy(idx[:k].astype(np.int64)), CIFAR10_CLASSES, SHIPPED_SHA256[EXACT_FILE], "npz")


def _torchvision_eval(n: int | None, strict: bool) -> EvalSet:
    """CIFAR-10's evaluation images from torchvision's copy (found, else downloaded): the canonical 1,017
    (checked equal to the shipped file's) or, for ``n`` above 1,017, the official test batch (md5-checked)."""
    root = tvformat.find_root()
    if root is None:
        try:
            root = tvformat.download()
        except DataError as e:
            if n is not None and n > tvformat.CANONICAL_N:
                raise DataError(f"--n {n} is more than the {tvformat.CANONICAL_N:,} exact images of {EXACT_FILE}: "
                                f"more need torchvision's CIFAR-10 test set ({e}): use --n "
                                f"{tvformat.CANONICAL_N} or fewer, or put cifar-10-batches-py in the cache") from None
            if strict:
                raise DataError(f"{e}: let bench download it (online), or set {tvformat.ROOT_ENV} to the folder that "
                                f"holds {tvformat.BASE}") from None
            raise DataError(f"data file {EXACT_FILE} not found in {where_searched()}, and {e}: {_HINT}") from None
    path = root / tvformat.BASE / "test_batch"
    full = n is not None and n > tvformat.CANONICAL_N
    x, y = tvformat.read_batch(path, tvformat.MD5["test_batch"] if full else None)
    if full:
        k = _subset(n, len(y), "cifar10")
        return EvalSet("cifar10", _to_float_nchw(x[:k]), torch.from_numpy(y[:k]), torch.arange(k), CIFAR10_CLASSES,
                       file_sha256(path), "torchvision")
    if len(y) < tvformat.CANONICAL_N or tvformat.images_sha256(x[:tvformat.CANONICAL_N], y[:tvformat.CANONICAL_N]
                                                               ) != tvformat.CANONICAL_SHA256:
        raise DataError(f"{path}: its first {tvformat.CANONICAL_N:,} images are not CIFAR-10's canonical test "
                        "images: replace the folder with torchvision's download")
    k = _subset(n, tvformat.CANONICAL_N, "cifar10")
    return EvalSet("cifar10", _to_float_nchw(x[:k]), torch.from_numpy(y[:k]), torch.arange(k), CIFAR10_CLASSES,
                   SHIPPED_SHA256[EXACT_FILE], "torchvision")


def load_train(name: str = "cifar10", source: str = "npz", progress: bool = True) -> TrainSet:
    """The training set ``name`` as uint8 NHWC (CIFAR-10: all 50,000 images, exact pixels where known)."""
    if name == "digits":
        x, y = _digits()
        x = (x[:_DIGITS_TRAIN] * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
        return TrainSet("digits", np.ascontiguousarray(x), y[:_DIGITS_TRAIN], tuple(str(i) for i in range(10)))
    if name != "cifar10":
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if source == "torchvision":
        root = tvformat.find_root() or tvformat.download()
        parts = [tvformat.read_batch(root / tvformat.BASE / f"data_batch_{i}", tvformat.MD5[f"data_batch_{i}"])
                 for i in range(1, 6)]
        return TrainSet("cifar10", np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                        CIFAR10_CLASSES)
    if source != "npz":
        raise DataError(f"unknown data source {source!r}: choose one of {', '.join(SOURCES)}")
    jpeg_path = _shipped_file(TRAIN_JPEG_FILE)
    exact_path = _shipped_file(EXACT_FILE)
    cached = cache_dir() / f"cifar10_train_{SHIPPED_SHA256[TRAIN_JPEG_FILE][:16]}.npy"
    z = _load_npz(jpeg_path)
    y = z["y"].astype(np.int64)
    if cached.is_file():
        try:
            x = np.load(cached, mmap_mode="r", allow_pickle=False)
            if x.shape == (len(y), 32, 32, 3) and x.dtype == np.uint8:
                return TrainSet("cifar10", np.asarray(x), y, CIFAR10_CLASSES)
        except (ValueError, OSError):
            pass  # a broken cache is rebuilt below
    x = _decode_jpegs(z["jpeg"], z["offsets"], progress)
    e = _load_npz(exact_path)
    x[e["train_index"]] = e["x_train"]
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, cached)
    return TrainSet("cifar10", x, y, CIFAR10_CLASSES)


def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray, progress: bool) -> np.ndarray:
    n = len(offsets) - 1
    out = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for i in tqdm(range(n), desc="decoding CIFAR-10 JPEGs (once; cached)", disable=not progress, unit="img"):
        img = Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB")
        out[i] = np.asarray(img)
    return out


_DIGITS_TRAIN = 1400


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits as float32 (N, 1, 8, 8) in [0, 1]; first 1,400 train, rest eval."""
    # function-level: scikit-learn takes a second to import and only the digits dataset needs it
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    return np.ascontiguousarray(x), d.target.astype(np.int64)


def input_shape(name: str) -> tuple[int, int, int]:
    """(C, H, W) of dataset ``name``."""
    return (1, 8, 8) if name == "digits" else (3, 32, 32)
