"""The package runs outside the repository: the zoo is package data, larger checkpoints are fetched by URL into
the cache with their sha256 checked (offline here: file:// URLs), CIFAR-10 resolves itself from the shipped file
or torchvision's own format, and the two sources give the same records."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from honestbench import data
from honestbench.core.errors import DataError, ModelCardError
from honestbench.core.io import sha256_file
from honestbench.data import files, tvformat
from honestbench.zoo import cards
from honestbench.zoo.fetch import fetch_checkpoint

SHIPPED = Path(data.data_dir()) / data.EXACT_FILE
needs_cifar = pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped CIFAR-10 files not found (set BENCH_DATA_DIR)")


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """An empty cache and no BENCH_DATA_DIR (as on a fresh machine); returns the cache folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache))
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("BENCH_TORCHVISION_ROOT", raising=False)
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    monkeypatch.setattr(files, "_checkout_data", lambda: None)  # not the checkout's ../shared/data either
    return cache


# ------------------------------------------------------------------------------------------------ the zoo
def test_zoo_is_package_data_read_through_importlib_resources():
    from importlib import resources

    assert resources.files("honestbench.zoo").joinpath("models") == cards.MODELS_DIR
    assert cards.MODELS_DIR.parent.name == "zoo" and cards.MODELS_DIR.parent.parent.name == "honestbench"
    for c in cards.list_cards():
        if not c.external and c.trained:  # every trained small checkpoint ships beside its card, relative to it
            assert c.checkpoint_path().is_file() and c.checkpoint_path().is_relative_to(cards.MODELS_DIR), c.name
            assert sha256_file(c.checkpoint_path()) == c.sha256, c.name


def test_incomplete_card_is_marked_in_one_place():
    c = cards.get_card("slwta-wrn34-1")
    assert (c.epochs_done, c.epochs) == (2, 30)
    assert c.training == "2/30 epochs" and c.display_name == "slwta-wrn34-1 (2/30 epochs)"
    assert cards.finish_hint(c.name, c.training) == ("slwta-wrn34-1: trained for 2 of its recipe's 30 epochs; train it "
                                                     "fully with `bench train slwta-wrn34-1 --update-card`")
    marked = {x.name: x.training for x in cards.list_cards() if x.training}
    assert marked == {"smoothing-pgd-fgsm-cw": "5/20 epochs", "smoothing-pgd-fgsm-cw-pni": "7/20 epochs",
                      "slwta-wrn34-1": "2/30 epochs"}  # the cards' [result] epochs_done against their recipes'
    assert not cards.get_card("slwta-wrn34-1-panousis2021").training  # trained by its authors: no epochs_done


def _upstream(tmp_path: Path, state: dict) -> Path:
    """A file in the upstream format: the authors' full training checkpoint with the state dict inside."""
    path = tmp_path / "upstream" / "ckpt.pt"
    path.parent.mkdir()
    torch.save({"epoch": 100, "model_state_dict": state,
                "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9}]}}, path)
    return path


def _card(tmp_path: Path, url: str, sha: str) -> cards.Card:
    return cards.Card(name="ext", checkpoint="data:ext_weights.pt", url=url, url_key="model_state_dict",
                      sha256=sha, external=True)


def test_fetch_extracts_the_state_dict_checks_its_sha256_and_caches_it(tmp_path, isolated, monkeypatch):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    ref = tmp_path / "ref" / "ext_weights.pt"  # what the fetch must reproduce byte for byte
    ref.parent.mkdir()
    torch.save(state, ref)
    url = _upstream(tmp_path, state).as_uri()
    monkeypatch.delenv("BENCH_OFFLINE")
    got = fetch_checkpoint(_card(tmp_path, url, sha256_file(ref)))
    assert got == isolated.resolve() / "ext_weights.pt" and sha256_file(got) == sha256_file(ref)
    assert sorted(p.name for p in isolated.iterdir()) == ["ext_weights.pt"]  # no temporary left behind
    # found in the cache next time: no download (the opener would fail)
    monkeypatch.setattr(files, "_open", lambda *a, **k: (_ for _ in ()).throw(OSError("no network")))
    assert fetch_checkpoint(_card(tmp_path, url, sha256_file(ref))) == got


def test_fetch_refuses_a_file_whose_sha256_differs_and_keeps_nothing(tmp_path, isolated, monkeypatch):
    url = _upstream(tmp_path, {"w": torch.zeros(3)}).as_uri()
    monkeypatch.delenv("BENCH_OFFLINE")
    with pytest.raises(ModelCardError, match="does not match the card's sha256.*not kept"):
        fetch_checkpoint(_card(tmp_path, url, "0" * 64))
    assert not isolated.exists() or not any(isolated.iterdir())


def test_fetch_refuses_pickled_code_without_running_it(tmp_path, isolated, monkeypatch):
    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "MARKER",))

    bad = tmp_path / "bad.pt"
    bad.write_bytes(pickle.dumps({"model_state_dict": Boom()}))
    monkeypatch.delenv("BENCH_OFFLINE")
    with pytest.raises(ModelCardError, match="not a weights-only torch checkpoint"):
        fetch_checkpoint(_card(tmp_path, bad.as_uri(), "0" * 64))
    assert not (tmp_path / "MARKER").exists()


def test_offline_error_is_one_line_naming_file_url_and_bench_data_dir(tmp_path, isolated):
    card = cards.get_card("slwta-wrn34-1-panousis2021")
    with pytest.raises(ModelCardError) as e:
        fetch_checkpoint(card)
    msg = str(e.value)
    assert "slwta_wrn34_1_panousis2021.pt" in msg and card.url in msg and "BENCH_DATA_DIR" in msg
    assert "\n" not in msg


def test_unreachable_url_is_the_same_one_line_error(tmp_path, isolated, monkeypatch):
    monkeypatch.delenv("BENCH_OFFLINE")
    card = _card(tmp_path, (tmp_path / "nowhere.pt").as_uri(), "0" * 64)
    with pytest.raises(ModelCardError, match=r"ext_weights.pt not found in .* not fetched from file://.*BENCH_DATA_DIR"):
        fetch_checkpoint(card)


@pytest.mark.skipif(not (Path(data.data_dir()) / "slwta_wrn34_1_panousis2021.pt").is_file(),
                    reason="published SLWTA checkpoint absent (set BENCH_DATA_DIR)")
def test_fetch_of_the_published_card_reproduces_the_shipped_file(tmp_path, monkeypatch):
    """The card's sha256 is that of the extracted state dict: a fetch from a file in the upstream format
    (the shipped state dict put back inside a full checkpoint) stores exactly the shipped bytes."""
    shipped = Path(data.data_dir()) / "slwta_wrn34_1_panousis2021.pt"
    url = _upstream(tmp_path, torch.load(shipped, weights_only=True)).as_uri()
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCH_DATA_DIR")
    monkeypatch.setattr(files, "_checkout_data", lambda: None)
    monkeypatch.delenv("BENCH_OFFLINE", raising=False)
    card = cards.get_card("slwta-wrn34-1-panousis2021")
    card.url = url
    got = fetch_checkpoint(card)
    assert sha256_file(got) == card.sha256 == sha256_file(shipped)


# ------------------------------------------------------------------------------------------------ data
def _tv_folder(root: Path) -> Path:
    e = np.load(SHIPPED)
    return tvformat.write_folder(root, e["x_test"], e["y_test"], data.CIFAR10_CLASSES)


@needs_cifar
def test_canonical_digest_is_the_shipped_files():
    e = np.load(SHIPPED)
    assert tvformat.images_sha256(e["x_test"], e["y_test"]) == tvformat.CANONICAL_SHA256
    assert len(e["y_test"]) == tvformat.CANONICAL_N


def test_md5_pins_are_torchvisions():
    from torchvision.datasets import CIFAR10

    assert dict(CIFAR10.train_list + CIFAR10.test_list) == tvformat.MD5


@needs_cifar
def test_torchvision_folder_gives_the_shipped_images(tmp_path, isolated):
    _tv_folder(isolated)
    ev = data.load_eval("cifar10", n=300)
    assert ev.source == "torchvision" and ev.source_sha256 == data.SHIPPED_SHA256[data.EXACT_FILE]
    # torchvision itself reads the folder the test wrote (its own format) to the same pixels
    from torchvision.datasets import CIFAR10

    ds = CIFAR10.__new__(CIFAR10)  # skip the md5 check of the official files: this folder holds 1,017 rows
    with open(isolated / tvformat.BASE / "test_batch", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    ds.data = np.vstack(entry["data"]).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
    e = np.load(SHIPPED)
    assert np.array_equal(ds.data, e["x_test"]) and entry["labels"] == e["y_test"].tolist()
    ref = data.load_eval("cifar10", n=300, source="npz")  # still torchvision: no shipped file here
    assert torch.equal(ev.x, ref.x) and torch.equal(ev.y, ref.y)


@needs_cifar
def test_shipped_file_wins_and_equals_the_torchvision_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    _tv_folder(tmp_path / "cache")
    npz = data.load_eval("cifar10")
    tv = data.load_eval("cifar10", source="torchvision")
    assert (npz.source, tv.source) == ("npz", "torchvision") and len(npz) == len(tv) == 1017
    assert torch.equal(npz.x, tv.x) and torch.equal(npz.y, tv.y) and torch.equal(npz.index, tv.index)
    assert npz.source_sha256 == tv.source_sha256


@needs_cifar
def test_beyond_1017_images_needs_the_official_test_batch(tmp_path, isolated):
    with pytest.raises(DataError, match=r"--n 2000 is more than the 1,017 exact images.*--n 1017 or fewer"):
        data.load_eval("cifar10", n=2000)
    _tv_folder(isolated)  # 1,017 rows: not the official file
    with pytest.raises(DataError, match="not the official CIFAR-10 file"):
        data.load_eval("cifar10", n=2000)


@needs_cifar
def test_beyond_1017_reads_the_whole_test_set(tmp_path, isolated, monkeypatch):
    rng = np.random.default_rng(0)
    e = np.load(SHIPPED)
    x = np.concatenate([e["x_test"], rng.integers(0, 256, (2000 - 1017, 32, 32, 3), dtype=np.uint8)])
    y = np.concatenate([e["y_test"], rng.integers(0, 10, 2000 - 1017)])
    folder = tvformat.write_folder(isolated, x, y, data.CIFAR10_CLASSES)
    monkeypatch.setitem(tvformat.MD5, "test_batch", __import__("hashlib").md5(
        (folder / "test_batch").read_bytes()).hexdigest())  # stands in for the official file's pin
    ev = data.load_eval("cifar10", n=1500)
    assert len(ev) == 1500 and ev.source == "torchvision"
    assert ev.source_sha256 == sha256_file(folder / "test_batch")
    assert torch.equal(ev.x[:1017], data.load_eval("cifar10").x)


def test_a_folder_with_other_images_is_refused(tmp_path, isolated):
    x = np.zeros((1017, 32, 32, 3), np.uint8)
    tvformat.write_folder(isolated, x, np.zeros(1017, np.int64), data.CIFAR10_CLASSES)
    with pytest.raises(DataError, match="not CIFAR-10's canonical test images"):
        data.load_eval("cifar10", n=16)


def test_pickled_code_in_a_batch_file_is_refused_not_run(tmp_path, isolated):
    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "MARKER",))

    (isolated / tvformat.BASE).mkdir(parents=True)
    (isolated / tvformat.BASE / "test_batch").write_bytes(pickle.dumps({"data": Boom(), "labels": [1]}))
    with pytest.raises(DataError, match="could not be read as a CIFAR-10 batch"):
        data.load_eval("cifar10", n=4)
    assert not (tmp_path / "MARKER").exists()


def test_no_data_anywhere_is_one_line_naming_both_sources(isolated):
    with pytest.raises(DataError) as e:
        data.load_eval("cifar10", n=8)
    msg = str(e.value)
    assert "cifar10_exact.npz" in msg and "cifar-10-batches-py" in msg and "BENCH_DATA_DIR" in msg
    assert "\n" not in msg


# ------------------------------------------------------------------------------------------------ records
_SOURCE_FIELDS = {"data_source"}
_VOLATILE = {"date", "seconds", "ms_per_image_b1", "ms_per_image_b256", "command", "commands", "git_commit"}


def _records(out: Path) -> dict:
    d = json.loads((out / "records.json").read_text())
    run = {k: v for k, v in d["run"].items() if k not in _SOURCE_FIELDS | _VOLATILE}
    rows = [{k: v for k, v in r.items() if k not in _VOLATILE} for r in d["records"]]
    return {"run": run, "rows": rows, "source": d["run"].get("data_source")}


@needs_cifar
def test_records_from_torchvision_folder_and_shipped_file_agree(tmp_path, monkeypatch):
    """The same ``bench run`` from the shipped file and from a torchvision-format folder written from it:
    records equal bit for bit apart from the data-source field (and timings, dates)."""
    from honestbench.cli.main import main

    tv_cache = tmp_path / "tv"
    _tv_folder(tv_cache)
    argv = ["run", "--models", "regular,pgd-at", "--suite", "ci", "--n", "16", "--quiet"]
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert main([*argv, "--out", str(tmp_path / "npz")]) == 0
    monkeypatch.delenv("BENCH_DATA_DIR")
    monkeypatch.setattr(files, "_checkout_data", lambda: None)
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tv_cache))
    assert main([*argv, "--out", str(tmp_path / "tv-out")]) == 0
    a, b = _records(tmp_path / "npz"), _records(tmp_path / "tv-out")
    assert (a["source"], b["source"]) == ("npz", "torchvision")
    assert json.dumps(a["run"], sort_keys=True) == json.dumps(b["run"], sort_keys=True)
    assert json.dumps(a["rows"], sort_keys=True) == json.dumps(b["rows"], sort_keys=True)
    for m in ("regular", "pgd-at"):
        za = np.load(tmp_path / "npz" / "matrices" / f"{m}.npz")
        zb = np.load(tmp_path / "tv-out" / "matrices" / f"{m}.npz")
        for k in za.files:
            if k not in ("seconds", "meta"):
                assert np.array_equal(za[k], zb[k], equal_nan=za[k].dtype.kind == "f"), (m, k)


# ------------------------------------------------------------------------------------------------ the mark
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (REPO_ROOT / "results" / "ci" / "records.json").is_file(), reason="no results/ci")
def test_report_marks_incomplete_models_from_the_records_alone(tmp_path):
    import shutil

    from honestbench.report import table1, timing_table
    from honestbench.report.summary import summary_text
    from honestbench.results import load

    out = tmp_path / "ci"
    shutil.copytree(REPO_ROOT / "results" / "ci", out)
    df = load(out)
    assert "| slwta-wrn34-1 (2/30 epochs) (stochastic)" in table1(df)[0]
    assert "| slwta-wrn34-1 (2/30 epochs) " in timing_table(df) and "| pgd-at " in timing_table(df)
    text = summary_text(out)
    assert "slwta-wrn34-1 (2/30 epochs) (stochastic)" in text
    assert "train it fully with `bench train slwta-wrn34-1 --update-card`" in text
    # records written before the field existed: no mark, no line
    data = json.loads((out / "records.json").read_text())
    for r in data["records"]:
        r.pop("training", None)
    (out / "records.json").write_text(json.dumps(data))
    assert "epochs)" not in table1(load(out))[0] and "train it fully" not in summary_text(out)


def test_training_log_sections_are_replaced_not_repeated(tmp_path):
    from honestbench.zoo.writing import write_training_log

    write_training_log("m", "CPU time", {"s": 1.5}, "cmd --a", root=tmp_path)
    write_training_log("m", "Other", {"x": "y"}, "cmd --b", root=tmp_path)
    path = write_training_log("m", "CPU time", {"s": 2.5}, "cmd --c", root=tmp_path)
    text = path.read_text()
    assert path == tmp_path / "results" / "training" / "m.md" and text.startswith("# Training measurements: m\n")
    assert text.count("## CPU time") == 1 and "| s | 2.5 |" in text and "cmd --c" in text and "cmd --a" not in text
    assert "## Other" in text and "cmd --b" in text


def test_bench_list_models_shows_the_mark():
    from honestbench.cli.listing import model_rows

    names = [r[0] for r in model_rows()]
    assert "slwta-wrn34-1 (2/30 epochs)" in names and "regular" in names
