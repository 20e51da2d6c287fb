"""Datasets: CIFAR-10 from the shipped npz files (or torchvision), and scikit-learn's 8x8 digits.

Every loader returns pixels in [0, 1] (float32, NCHW) for evaluation, or uint8 NHWC for training
(augmentation happens on uint8 / float batches in :mod:`honestbench.train`).

CIFAR-10 evaluation uses the 1,017 exact test images of ``cifar10_exact.npz`` in canonical order;
training uses all 50,000 images of ``cifar10_train_jpeg.npz`` decoded once and cached as a uint8 array
in the user's cache directory, with exact pixels substituted where known.
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
from honestbench.core.io import REPO_ROOT, cache_dir, sha256_file

EXACT_FILE = "cifar10_exact.npz"
TRAIN_JPEG_FILE = "cifar10_train_jpeg.npz"
SHIPPED_SHA256 = {
    EXACT_FILE: "62c5f6e73db2b19903c5fc0387cd794d7aa669475566dff502614c061765021c",
    TRAIN_JPEG_FILE: "0907844d5ef26329710961c4f4f0779383ca7959def6d9093b3ebb6086975b4a",
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASETS = ("cifar10", "digits")
SOURCES = ("npz", "torchvision")
_verified: dict[Path, str] = {}


@dataclass
class EvalSet:
    """Evaluation images: ``x`` float32 (N, C, H, W) in [0, 1], ``y`` int64 (N,), ``index`` canonical ids."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    classes: tuple[str, ...]
    source_sha256: str

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class TrainSet:
    """Training images: ``x`` uint8 (N, H, W, C), ``y`` int64 (N,)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]


def data_dir() -> Path:
    """Where the shipped data lives: ``$BENCH_DATA_DIR``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("BENCH_DATA_DIR")
    return Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared" / "data").resolve()


def _shipped_file(name: str) -> Path:
    path = data_dir() / name
    hint = "set BENCH_DATA_DIR to the folder that holds it (e.g. export BENCH_DATA_DIR=/path/to/shared/data)"
    if not path.is_file():
        raise DataError(f"data file {name} not found in {path.parent}: {hint}")
    if path not in _verified:
        digest = sha256_file(path)
        if digest != SHIPPED_SHA256[name]:
            raise DataError(
                f"data file {path} is corrupt (sha256 {digest[:12]}... != {SHIPPED_SHA256[name][:12]}...): "
                f"replace it with the shipped copy, or {hint}"
            )
        _verified[path] = digest
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
    """The evaluation set ``name``; ``n`` keeps the first ``n`` images in canonical order.

    ``source='npz'`` reads the shipped exact test images; ``'torchvision'`` reads torchvision's CIFAR10
    test split from ``data_dir()`` (its first 1,017 images are the same canonical ids).
    """
    if name == "digits":
        x, y = _digits()
        x, y = x[_DIGITS_TRAIN:], y[_DIGITS_TRAIN:]
        k = _subset(n, len(y), "digits")
        return EvalSet("digits", torch.from_numpy(x[:k]), torch.from_numpy(y[:k]),
                       torch.arange(_DIGITS_TRAIN, _DIGITS_TRAIN + k), tuple(str(i) for i in range(10)), "sklearn")
    if name != "cifar10":
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if source == "torchvision":
        x, y = _torchvision_cifar10(train=False)
        k = _subset(n, len(y), "cifar10")
        return EvalSet("cifar10", _to_float_nchw(x[:k]), torch.from_numpy(y[:k]), torch.arange(k),
                       CIFAR10_CLASSES, "torchvision")
    if source != "npz":
        raise DataError(f"unknown data source {source!r}: choose one of {', '.join(SOURCES)}")
    path = _shipped_file(EXACT_FILE)
    x, y, idx = _arrays(path, "x_test", "y_test", "test_index")
    if x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8 or len(x) != len(y) or len(idx) != len(y):
        raise DataError(f"data file {path} has unexpected arrays (x_test {x.shape} {x.dtype}, y_test {y.shape}, "
                        "expected uint8 (N, 32, 32, 3) and N labels): replace it with the shipped copy")
    k = _subset(n, len(y), "cifar10")
    return EvalSet("cifar10", _to_float_nchw(x[:k]), torch.from_numpy(y[:k].astype(np.int64)),
                   torch.from_numpy(idx[:k].astype(np.int64)), CIFAR10_CLASSES, _verified[path])


def load_train(name: str = "cifar10", source: str = "npz", progress: bool = True) -> TrainSet:
    """The training set ``name`` as uint8 NHWC (CIFAR-10: all 50,000 images, exact pixels where known)."""
    if name == "digits":
        x, y = _digits()
        x = (x[:_DIGITS_TRAIN] * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
        return TrainSet("digits", np.ascontiguousarray(x), y[:_DIGITS_TRAIN], tuple(str(i) for i in range(10)))
    if name != "cifar10":
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if source == "torchvision":
        x, y = _torchvision_cifar10(train=True)
        return TrainSet("cifar10", x, y, CIFAR10_CLASSES)
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


def _torchvision_cifar10(train: bool) -> tuple[np.ndarray, np.ndarray]:
    # function-level: torchvision takes seconds to import and only this optional source needs it
    from torchvision.datasets import CIFAR10

    root = os.environ.get("BENCH_TORCHVISION_ROOT", str(data_dir()))
    try:
        ds = CIFAR10(root=root, train=train, download=False)
    except RuntimeError:
        raise DataError(
            f"torchvision CIFAR10 files not found under {root}: download them with "
            f"torchvision.datasets.CIFAR10('{root}', download=True) or set BENCH_TORCHVISION_ROOT"
        ) from None
    return np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)


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
