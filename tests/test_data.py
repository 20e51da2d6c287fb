"""Data loading: shapes, dtypes, labels, canonical order, sha256 of the shipped files, clear errors."""

import numpy as np
import pytest
import torch

from honestbench import data
from honestbench.core.errors import DataError
from honestbench.core.io import sha256_file

needs_cifar = pytest.mark.skipif(not (data.data_dir() / data.EXACT_FILE).is_file(),
                                 reason="shipped CIFAR-10 files not found (set BENCH_DATA_DIR)")


@needs_cifar
def test_shipped_files_match_their_sha256():
    for name, digest in data.SHIPPED_SHA256.items():
        assert sha256_file(data.data_dir() / name) == digest


@needs_cifar
def test_cifar10_eval_set_is_the_exact_test_images_in_canonical_order():
    ev = data.load_eval("cifar10")
    assert ev.x.shape == (1017, 3, 32, 32) and ev.x.dtype == torch.float32
    assert ev.y.dtype == torch.int64 and ev.y.shape == (1017,)
    assert float(ev.x.min()) >= 0.0 and float(ev.x.max()) <= 1.0
    assert ev.index.tolist() == list(range(1017))
    # data README: test_batch labels start 3 8 8 0 6 6 1 6 3 1 (the first test image is a cat)
    assert ev.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    sub = data.load_eval("cifar10", n=256)
    assert len(sub) == 256 and torch.equal(sub.x, ev.x[:256])


@needs_cifar
def test_cifar10_train_set_decodes_and_substitutes_exact_pixels(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    tr = data.load_train("cifar10", progress=False)
    assert tr.x.shape == (50000, 32, 32, 3) and tr.x.dtype == np.uint8
    assert np.bincount(tr.y, minlength=10).tolist() == [5000] * 10
    assert tr.y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    exact = np.load(data.data_dir() / data.EXACT_FILE)
    assert np.array_equal(tr.x[exact["train_index"]], exact["x_train"])
    # the cache is reused (a second load reads the .npy written by the first)
    assert list(tmp_path.glob("cifar10_train_*.npy"))
    again = data.load_train("cifar10", progress=False)
    assert np.array_equal(again.x[:100], tr.x[:100])


def test_digits_split_and_shapes():
    ev = data.load_eval("digits", n=64)
    assert ev.x.shape == (64, 1, 8, 8) and ev.x.dtype == torch.float32
    tr = data.load_train("digits")
    assert tr.x.shape == (1400, 8, 8, 1) and tr.x.dtype == np.uint8
    assert len(data.load_eval("digits")) == 1797 - 1400


def test_missing_data_file_names_file_place_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as e:
        data.load_eval("cifar10")
    msg = str(e.value)
    assert "cifar10_exact.npz" in msg and str(tmp_path) in msg and "BENCH_DATA_DIR" in msg
    assert "\n" not in msg


def test_corrupt_data_file_is_reported(tmp_path, monkeypatch):
    (tmp_path / data.EXACT_FILE).write_bytes(b"not a zip")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="corrupt"):
        data.load_eval("cifar10")


def test_unknown_dataset_and_bad_n():
    with pytest.raises(DataError, match="unknown dataset"):
        data.load_eval("mnist")
    with pytest.raises(DataError, match="--n"):
        data.load_eval("digits", n=0)
