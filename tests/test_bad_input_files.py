"""The bad-input catalogue (issue 16), part 2: damaged or missing data files, checkpoints (missing, truncated,
tampered, carrying pickled code, a whole pickled model, a state dict that does not fit) and model cards (not
TOML, unknown key, wrong type). Same assertions as part 1 (tests/test_bad_input.py, :func:`catalogue.expect`);
the checkpoint carrying code must be refused without its code running (a marker file must not appear).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from catalogue import bad_run, expect, run, tmp_zoo, use_zoo, write_card  # noqa: F401 (fixtures)

import honestbench.zoo.cards as cards
from honestbench.core.io import sha256_file
from honestbench.data import EXACT_FILE, data_dir


# ------------------------------------------------------------------------------------------------ data
@pytest.fixture
def data_copy(tmp_path, monkeypatch) -> Path:
    """A private BENCH_DATA_DIR holding a copy of the exact CIFAR-10 test file (to damage)."""
    d = tmp_path / "data"
    d.mkdir()
    src = data_dir() / EXACT_FILE
    if not src.is_file():
        pytest.skip("CIFAR-10 files absent")
    shutil.copy(src, d / EXACT_FILE)
    monkeypatch.setenv("BENCH_DATA_DIR", str(d))
    return d / EXACT_FILE


def bad_cifar_run(capsys, tmp_path, case, *needles):
    out = tmp_path / "out"
    rc, err = run(capsys, ["run", "--models", "cif", "--suite", "ci", "--n", "8", "--quiet", "--out", str(out)])
    return expect(case, rc, err, 2, *needles, out=out)


def test_missing_data_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "nowhere"))
    bad_cifar_run(capsys, tmp_path, "missing data folder", f"{EXACT_FILE} not found", "BENCH_DATA_DIR")


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "wrong shape"])
def test_damaged_npz(capsys, tmp_path, data_copy, damage):
    import numpy as np

    if damage == "truncated":
        data_copy.write_bytes(data_copy.read_bytes()[:10_000])
    elif damage == "random bytes":
        data_copy.write_bytes(np.random.default_rng(0).bytes(10_000))
    else:
        np.savez(data_copy, x_test=np.zeros((4, 28, 28), np.uint8), y_test=np.zeros(4), test_index=np.arange(4))
    bad_cifar_run(capsys, tmp_path, f"{damage} npz", "is corrupt (sha256", "replace it with the shipped copy")


@pytest.mark.parametrize("damage, needles", [
    ("truncated", ["could not be read", "replace it with the shipped copy"]),
    ("wrong shape", ["unexpected arrays", "replace it with the shipped copy"]),
    ("missing array", ["lacks the array 'x_test'", "replace it with the shipped copy"]),
])
def test_damaged_npz_past_the_hash(capsys, tmp_path, data_copy, monkeypatch, damage, needles):
    """Defence in depth: a damaged file whose sha256 were right still gives one line (the hash is patched)."""
    import numpy as np

    import honestbench.data as data

    if damage == "truncated":
        data_copy.write_bytes(data_copy.read_bytes()[:100_000])
    elif damage == "wrong shape":
        np.savez(data_copy, x_test=np.zeros((4, 28, 28), np.uint8), y_test=np.zeros(4), test_index=np.arange(4))
    else:
        np.savez(data_copy, y_test=np.zeros(4))
    monkeypatch.setitem(data.SHIPPED_SHA256, EXACT_FILE, sha256_file(data_copy))
    bad_cifar_run(capsys, tmp_path, f"{damage} npz (sha256 matching)", *needles)


# ------------------------------------------------------------------------------------------------ checkpoints
class Marker:
    """Pickles to a call of ``os.system`` that would create a marker file: code hidden in a checkpoint."""

    path = ""

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def damage_checkpoint(zoo: Path, kind: str, tmp_path: Path) -> None:
    ckpt = zoo / "dig.pt"
    good = torch.load(ckpt, weights_only=True)
    keep_sha = kind in ("truncated", "tampered", "missing")
    if kind == "missing":
        ckpt.unlink()
    elif kind == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif kind == "tampered":
        raw = bytearray(ckpt.read_bytes())
        raw[-100] ^= 1
        ckpt.write_bytes(bytes(raw))
    elif kind == "pickled code":
        Marker.path = str(tmp_path / "MARKER")
        torch.save({"fc.weight": Marker()}, ckpt)
    elif kind == "whole module":
        from honestbench.zoo.loading import build_model

        torch.save(build_model(cards.parse_card(zoo / "dig.toml")), ckpt)
    elif kind == "keys do not fit":
        good["extra.weight"] = good.pop("fc.bias")
        torch.save(good, ckpt)
    elif kind == "shapes do not fit":
        good["fc.bias"] = torch.zeros(7)
        torch.save(good, ckpt)
    elif kind == "truncated, sha256 matching":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    if not keep_sha:  # the card pins this file: only the loader stands between it and the user
        text = (zoo / "dig.toml").read_text().split("[result]")[0]
        (zoo / "dig.toml").write_text(text + f'[result]\nsha256 = "{sha256_file(ckpt)}"\n')


@pytest.mark.parametrize("kind, needles", [
    ("missing", ["dig.pt is missing", "bench train dig"]),
    ("truncated", ["does not match the card's sha256", "bench train dig"]),
    ("tampered", ["does not match the card's sha256", "bench train dig"]),
    ("truncated, sha256 matching", ["refused", "truncated or corrupt", "save it again"]),
    ("pickled code", ["refused: not a weights-only state dict", "pickled code (posix.system)", "it was not run",
                      "state dicts of tensors"]),
    ("whole module", ["refused: not a weights-only state dict", "SmallCNN", "torch.save(model)",
                      "save model.state_dict()"]),
    ("keys do not fit", ["missing keys (1): fc.bias", "unexpected keys (1): extra.weight", "check the architecture"]),
    ("shapes do not fit", ["wrong shapes", "fc.bias (7,) vs (10,)", "check the architecture"]),
])
def test_bad_checkpoint(capsys, tmp_path, monkeypatch, kind, needles):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    write_card(zoo, "dig")
    monkeypatch.setattr(cards, "MODELS_DIR", zoo)
    damage_checkpoint(zoo, kind, tmp_path)
    bad_run(capsys, tmp_path, f"checkpoint: {kind}", [], *needles)
    assert not (tmp_path / "MARKER").exists(), "the checkpoint's code ran"


# ------------------------------------------------------------------------------------------------ cards
@pytest.mark.parametrize("case, text, needles", [
    ("card that does not parse", 'name = "dig"\nbackbone = \n', ["dig.toml: cannot be read", "fix its TOML"]),
    ("card with an unknown key", 'name = "dig"\nbackbon = "small-cnn"\n',
     ["dig.toml: unknown key 'backbon'", "did you mean 'backbone'", "fix or remove it"]),
    ("card with a wrong type", 'name = "dig"\nepochs = "ten"\n',
     ["dig.toml: epochs must be int, got str 'ten'", "fix it in the card"]),
])
def test_bad_card(capsys, tmp_path, monkeypatch, case, text, needles):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "dig.toml").write_text(text)
    monkeypatch.setattr(cards, "MODELS_DIR", zoo)
    bad_run(capsys, tmp_path, case, [], *needles)
