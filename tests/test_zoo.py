"""Model cards: parsing, listing, building, checkpoint errors, weights-only loading, the published port."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from honestbench import zoo
from honestbench.core.errors import ModelCardError
from honestbench.core.io import sha256_file
from honestbench.nets import is_stochastic

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in

EXPECTED = {"regular", "pni", "smoothing", "smoothing-pgd", "smoothing-pgd-fgsm", "smoothing-pgd-fgsm-cw",
            "smoothing-pgd-fgsm-cw-pni", "slwta", "pgd-at", "gaussian-smoothing", "slwta-wrn34-1",
            "slwta-wrn34-1-panousis2021"}
PUBLISHED_SHA = "d41edd79468813b4c5568d2bef7d4082daaf5adeb021a93fcca5c10fa15299f5"

DIGITS_CARD = """
name = "{name}"
description = "test card"
backbone = "small-cnn"
data = "digits"
epochs = 1
seed = 0
checkpoint = "{ckpt}"
stochastic = false

[defence]
kind = "none"

[recipe]
kind = "natural"
batch_size = 64

[result]
sha256 = "{sha}"
"""


def write_card(tmp: Path, name: str, ckpt: Path, sha: str = "") -> Path:
    p = tmp / f"{name}.toml"
    p.write_text(DIGITS_CARD.format(name=name, ckpt=ckpt, sha=sha))
    return p


def test_all_cards_listed_and_parse():
    names = {c.name for c in zoo.list_cards()}
    assert names >= EXPECTED
    smoothing = {n for n in EXPECTED if n.startswith("smoothing")}
    assert {c.name for c in zoo.list_cards("smoothing*")} == smoothing
    assert [c.name for c in zoo.list_cards("regular,pni")] == ["regular", "pni"]  # zoo order, not the pattern's
    assert [c.name for c in zoo.list_cards()][: len(zoo.ZOO_ORDER)] == list(zoo.ZOO_ORDER)


@pytest.mark.parametrize("name", sorted(EXPECTED - {"slwta-wrn34-1-panousis2021"}))
def test_cards_build_and_declare_stochasticity(name):
    card = zoo.get_card(name)
    model = zoo.build_model(card).eval()
    assert is_stochastic(model) == card.stochastic
    if card.backbone == "small-cnn":
        assert sum(p.numel() for p in model.parameters()) <= 750_000


def test_unknown_card_suggests_closest():
    with pytest.raises(ModelCardError, match="did you mean 'regular'"):
        zoo.get_card("regulr")


def test_untrained_card_says_so():
    card = zoo.get_card("slwta-wrn34-1")
    if card.trained:
        pytest.skip("slwta-wrn34-1 has been trained")
    with pytest.raises(ModelCardError, match="untrained.*bench train slwta-wrn34-1"):
        zoo.load_card_model(card)


def test_missing_checkpoint_and_sha_mismatch(tmp_path):
    ckpt = tmp_path / "m.pt"
    write_card(tmp_path, "m", ckpt, sha="0" * 64)
    card = zoo.get_card("m", models_dir=tmp_path)
    with pytest.raises(ModelCardError, match=r"missing: run `bench train m`") as e:
        zoo.load_card_model(card)
    assert "\n" not in str(e.value)
    model = zoo.build_model(card)
    torch.save(model.state_dict(), ckpt)
    with pytest.raises(ModelCardError, match=r"does not match the card's sha256.*bench train m"):
        zoo.load_card_model(card)
    write_card(tmp_path, "m", ckpt, sha=sha256_file(ckpt))
    loaded = zoo.load_card_model(zoo.get_card("m", models_dir=tmp_path))
    assert not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(loaded(x), model.eval()(x))


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "evil.pt"
    with open(ckpt, "wb") as f:
        torch.save({"w": torch.zeros(1), "evil": _Evil()}, f)
    write_card(tmp_path, "evil", ckpt, sha=sha256_file(ckpt))
    with pytest.raises(ModelCardError, match="refused: not a weights-only state dict"):
        zoo.load_card_model(zoo.get_card("evil", models_dir=tmp_path))


def test_bad_card_one_line_errors(tmp_path):
    (tmp_path / "bad.toml").write_text("name = 'bad'\nepochs = 'x'\n")
    with pytest.raises(ModelCardError, match="epochs must be int"):
        zoo.get_card("bad", models_dir=tmp_path)
    (tmp_path / "broken.toml").write_text("name = \n")
    with pytest.raises(ModelCardError, match="cannot be read"):
        zoo.get_card("broken", models_dir=tmp_path)
    (tmp_path / "other.toml").write_text("name = 'different'\n")
    with pytest.raises(ModelCardError, match="differs from the file name"):
        zoo.get_card("other", models_dir=tmp_path)


def _published_path() -> Path:
    return zoo.get_card("slwta-wrn34-1-panousis2021").checkpoint_path()


@pytest.mark.skipif(not _published_path().is_file(),
                    reason="published SLWTA checkpoint absent (set BENCH_DATA_DIR to ../shared/data)")
def test_published_checkpoint_loads_strictly():
    from honestbench.nets.backbones.slwta_published import UNUSED_PREFIXES, SLWTAWideResNet

    card = zoo.get_card("slwta-wrn34-1-panousis2021")
    assert card.sha256 == PUBLISHED_SHA and card.trained and card.external
    state = torch.load(_published_path(), map_location="cpu", weights_only=True)
    assert sum(v.numel() for v in state.values()) == 492_748
    model = SLWTAWideResNet()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == []
    assert unexpected and all(k.startswith(UNUSED_PREFIXES) for k in unexpected)
    loaded = zoo.load_card_model(card)
    assert is_stochastic(loaded)
    assert loaded(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_copy_of_models_dir_lists(tmp_path):
    for p in zoo.MODELS_DIR.glob("*.toml"):
        shutil.copy(p, tmp_path / p.name)
    assert {c.name for c in zoo.list_cards(models_dir=tmp_path)} >= EXPECTED


@pytest.mark.skipif(not _published_path().is_file(), reason="published SLWTA checkpoint absent")
def test_published_surrogate_is_deterministic():
    from honestbench.nets import surrogate

    model = zoo.load_card_model("slwta-wrn34-1-panousis2021")
    x = torch.rand(2, 3, 32, 32)
    assert not torch.equal(model(x), model(x))  # nearly one-hot random choice at T = 0.01
    with surrogate(model, temperature=1.0):
        assert torch.equal(model(x), model(x))


@pytest.mark.slow
@pytest.mark.skipif(not _published_path().is_file(), reason="published SLWTA checkpoint absent")
def test_published_clean_accuracy_matches_authors():
    from honestbench.data import load_eval

    torch.manual_seed(0)
    ev = load_eval("cifar10")
    acc, _ = zoo.clean_accuracy(zoo.load_card_model("slwta-wrn34-1-panousis2021"), ev.x, ev.y, passes=10)
    assert acc == pytest.approx(0.868, abs=0.015)


@pytest.mark.parametrize("module", ["honestbench.zoo.cards", "honestbench.zoo"])
def test_cards_are_torch_free(module):
    """Listing the zoo (``bench list models``, ``bench report``'s row order) never imports torch."""
    code = (f"import sys, {module} as m; m.list_cards(); m.get_card('regular').checkpoint_path(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr


def test_loading_names_served_lazily():
    assert zoo.load_card_model is zoo.loading.load_card_model and "build_model" in dir(zoo)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        zoo.nope  # noqa: B018
