"""CIFAR-10 in torchvision's own format (``ROOT/cifar-10-batches-py/test_batch``, ``data_batch_1..5``,
``batches.meta``: the python pickles of the official archive), read without running pickled code: the unpickler
admits only numpy's array reconstruction, so a tampered file cannot execute anything.

Where: the first of ``$BENCH_TORCHVISION_ROOT``, ``$BENCH_DATA_DIR`` and the cache folder that holds
``cifar-10-batches-py/test_batch``; when none does (and ``$BENCH_OFFLINE`` is unset) torchvision downloads the
official archive into the cache (:func:`download`). Pixels are uint8 NHWC RGB, labels int64, in the files' row
order (the canonical order of ``cifar10_exact.npz``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np

from honestbench.core.errors import DataError
from honestbench.core.io import atomic_path, cache_dir
from honestbench.data.files import DATA_ENV, data_dir, offline

BASE = "cifar-10-batches-py"
ROOT_ENV = "BENCH_TORCHVISION_ROOT"
#: the md5 of the official files (torchvision.datasets.CIFAR10's own pins; a test keeps them equal)
MD5 = {"test_batch": "40351d587109b95175f43aff81a1287e", "data_batch_1": "c99cafc152244af753f735de768cd75f",
       "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec", "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
       "data_batch_4": "634d18415352ddfa80567beed471001a", "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb"}
#: the canonical evaluation images: the first 1,017 test images, whose exact pixels ``cifar10_exact.npz`` ships
CANONICAL_N = 1017
#: :func:`images_sha256` of those 1,017 images and labels (computed from ``cifar10_exact.npz``; a test checks it)
CANONICAL_SHA256 = "7079b24dd5a645f3cebe565f0a9a07c6170ae3b18de923ff2f32e21b7cf62a67"

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds dicts, lists, strings, numbers and numpy arrays, and refuses anything else."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def images_sha256(x: np.ndarray, y: np.ndarray) -> str:
    """sha256 of uint8 NHWC pixels followed by int64 little-endian labels: names a set of images."""
    h = hashlib.sha256(np.ascontiguousarray(x, dtype=np.uint8).tobytes())
    h.update(np.asarray(y, dtype="<i8").tobytes())
    return h.hexdigest()


def find_root() -> Path | None:
    """The first folder of ``$BENCH_TORCHVISION_ROOT``, ``$BENCH_DATA_DIR``, the cache that holds the test batch."""
    env = [os.environ.get(ROOT_ENV, "").strip(), os.environ.get(DATA_ENV, "").strip()]
    roots = [Path(e).expanduser() for e in env if e] + [data_dir(), cache_dir().expanduser()]
    return next((r.resolve() for r in roots if (r / BASE / "test_batch").is_file()), None)


def where_looked() -> str:
    env = os.environ.get(ROOT_ENV, "").strip()
    return f"{BASE}/ in {f'{ROOT_ENV} ({env}), ' if env else ''}{DATA_ENV} and the cache ({cache_dir()})"


def download() -> Path:
    """torchvision's CIFAR-10 downloaded (md5-checked by torchvision) into the cache folder; its root."""
    root = cache_dir().expanduser()
    if offline():
        raise DataError(f"torchvision's CIFAR-10 not found ({where_looked()}) and BENCH_OFFLINE is set")
    # function-level: torchvision takes seconds to import and only this fallback needs it
    from torchvision.datasets import CIFAR10

    print(f"bench: downloading torchvision's CIFAR-10 (about 170 MB, once) into {root}", flush=True)
    try:
        CIFAR10(root=str(root), train=False, download=True)
    except Exception as e:  # URLError, OSError, RuntimeError (md5): one line
        raise DataError(f"torchvision's CIFAR-10 not found ({where_looked()}) and its download failed "
                        f"({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
    return root.resolve()


def read_batch(path: Path, md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: (uint8 (N, 32, 32, 3) RGB, int64 (N,)); ``md5`` checked first when given."""
    if md5 is not None:
        got = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        if got != md5:
            raise DataError(f"{path} is not the official CIFAR-10 file (md5 {got[:12]}... != {md5[:12]}...): "
                            "download it again (delete the folder; bench downloads it into the cache)")
    try:
        with open(path, "rb") as f:
            entry = _ArraysOnly(f, encoding="latin1").load()
        data = entry.get("data", entry.get(b"data"))
        labels = entry.get("labels", entry.get(b"labels"))
        x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(labels, dtype=np.int64)
    except Exception as e:  # refused globals, truncation, wrong shapes: one line
        raise DataError(f"{path} could not be read as a CIFAR-10 batch ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:120]}): replace it with the official file") from None
    if len(x) != len(y):
        raise DataError(f"{path}: {len(x)} images but {len(y)} labels: replace it with the official file")
    return np.ascontiguousarray(x), y


def write_folder(root: str | os.PathLike, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> Path:
    """Write ``x`` (uint8 NHWC) and ``y`` as ``ROOT/cifar-10-batches-py/test_batch`` and ``batches.meta`` in
    torchvision's format (what the official archive holds, with fewer rows): for tests and the wheel CI."""
    folder = Path(root) / BASE
    rows = np.ascontiguousarray(np.asarray(x, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(x), -1))
    batch = {"batch_label": "testing batch 1 of 1", "labels": [int(v) for v in y], "data": rows,
             "filenames": [f"{i:05d}.png" for i in range(len(y))]}
    meta = {"num_cases_per_batch": len(y), "label_names": list(classes), "num_vis": 3072}
    for name, obj in (("test_batch", batch), ("batches.meta", meta)):
        with atomic_path(folder / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)
    return folder
