"""Proof of every break: witnesses stored exactly and compactly, `bench verify` passing on a fresh run and
failing, naming the image, on a nudged or replaced example; shard merges and resumption keep the witnesses;
RobustBench's tensor format round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import NoisyNet

from honestbench.data import load_eval
from honestbench.engine.cells import AttackCell, Examples
from honestbench.engine.options import EvalOptions
from honestbench.engine.runner import run_models
from honestbench.pipeline import verify as ver
from honestbench.pipeline.adv_file import check_adv_file, export_adv, load_adv
from honestbench.pipeline.proof import Budget
from honestbench.results import cell_path, load_cell, save_cell
from honestbench.results.witnesses import EXACT, LEVELS, Witnesses, decode, encode, quantised, read_witnesses
from honestbench.suites import Entry, Suite
from honestbench.zoo.source import ModelSource

# digits need larger budgets than CIFAR-10 to break; an early-exit suite with both norms
SUITE = Suite("verify-digits", "test", (
    Entry("FGSM", "fgsm", {"eps": 0.1}),
    Entry("PGD", "pgd-linf", {"eps": 0.1, "alpha": 0.025, "steps": 6, "random_start": True}),
    Entry("PGD-L2", "pgd-l2", {"eps": 1.0, "alpha": 0.25, "steps": 6, "random_start": True}),
))
FULL = Suite("verify-full", "test", SUITE.entries, full_matrix=True)


def _run(out, tiny, suite=SUITE, noisy=True):
    models = {"tiny": (tiny, "t"), "noisy": (NoisyNet(tiny, sigma=1.0), "n")}
    specs = [ModelSource.of("tiny", tiny, checkpoint_sha256="t")]
    if noisy:
        specs.append(ModelSource.of("noisy", models["noisy"][0], checkpoint_sha256="n", stochastic=True))
    run_models(specs, suite, load_eval("digits", 64), out, EvalOptions(batch_size=32, progress=False),
               log=lambda s: None)
    return lambda name: models[name]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, tiny_digits_model):
    out = tmp_path_factory.mktemp("fresh")
    return out, _run(out, tiny_digits_model)


def test_codec_is_exact_at_every_level():
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (3, 3, 4, 4)) / 255).astype(np.float32)
    x_adv = np.clip(x + rng.uniform(-0.03, 0.03, x.shape), 0, 1).astype(np.float32)
    for level in LEVELS:
        q, xw = quantised(x, x_adv, level)
        assert (np.abs(xw.astype(np.float64) - x) <= np.abs(x_adv.astype(np.float64) - x)).all()  # inside
        for i in range(3):
            assert decode(x[i], level, encode(x[i], xw[i], level, q[i])).tobytes() == xw[i].tobytes()
    for i in range(3):
        assert decode(x[i], EXACT, encode(x[i], x_adv[i], EXACT)).tobytes() == x_adv[i].tobytes()


def test_verify_passes_on_a_fresh_run(fresh):
    out, loader = fresh
    proofs = ver.verify_results(out, model_loader=loader)
    assert {p.model for p in proofs} == {"tiny", "noisy"}
    assert not ver.failures(proofs), ver.unproven_table(proofs)
    assert all(not p.unproven for p in proofs if p.model == "tiny")
    tiny = next(p for p in proofs if p.model == "tiny")
    assert tiny.breaks > 10 and tiny.witnesses == tiny.breaks  # one witness per broken image
    noisy = next(p for p in proofs if p.model == "noisy")
    assert noisy.passes == 10 and "10 seeded passes" in noisy.line()


def _tamper(out, model: str, change) -> tuple[int, str]:
    """Rewrite the first witness of ``model``'s first cell that holds one with ``change(x, x_w)``."""
    data = load_eval("digits", 64)
    clean = {int(i): data.x[p].numpy() for p, i in enumerate(data.index.tolist())}
    for label, wit in read_witnesses(out, model, ["FGSM", "PGD", "PGD-L2"]).items():
        if len(wit):
            i, level, xw = next(iter(wit.images(clean)))
            wit.level[0], wit.payloads[0] = EXACT, encode(clean[i], change(clean[i], xw), EXACT)
            arrays, meta = load_cell(cell_path(out, model, label))
            save_cell(cell_path(out, model, label), {**arrays, **wit.arrays()}, meta)
            return i, label
    raise AssertionError("no witness")


@pytest.mark.parametrize("how", ["nudged", "clean"])
def test_verify_fails_naming_the_image(tmp_path, tiny_digits_model, monkeypatch, capsys, how):
    loader = _run(tmp_path, tiny_digits_model, noisy=False)
    if how == "nudged":  # one pixel pushed 0.01 beyond the budget (inside the box)
        def change(x, xw):
            d = np.zeros_like(xw)
            k = int(np.argmax(np.abs(xw - x)))
            d.flat[k] = 0.2 if x.flat[k] < 0.5 else -0.2
            return np.clip(x + d, 0, 1).astype(np.float32)
    else:
        def change(x, xw):
            return x.copy()
    image, label = _tamper(tmp_path, "tiny", change)
    monkeypatch.setattr(ver, "_zoo_loader", lambda device: loader)
    from honestbench.cli.main import main

    assert main(["verify", str(tmp_path)]) == 1
    text = capsys.readouterr().out
    assert f"tiny  image {image}  {label}:" in text
    assert ("outside the budget" if how == "nudged" else "not misclassified") in text


def test_full_matrix_keeps_one_witness_per_image_and_resumes(tmp_path, tiny_digits_model):
    loader = _run(tmp_path, tiny_digits_model, FULL, noisy=False)
    wits = read_witnesses(tmp_path, "tiny", FULL.labels)
    ids = [i for w in wits.values() for i in w.index]
    assert len(ids) == len(set(ids)) > 10
    # a cell written before witnesses existed is recomputed, with its witnesses
    arrays, meta = load_cell(cell_path(tmp_path, "tiny", "PGD"))
    save_cell(cell_path(tmp_path, "tiny", "PGD"), {k: v for k, v in arrays.items() if not k.startswith("wit_")},
              meta)
    _run(tmp_path, tiny_digits_model, FULL, noisy=False)
    assert "wit_index" in load_cell(cell_path(tmp_path, "tiny", "PGD"))[0]
    assert not ver.failures(ver.verify_results(tmp_path, model_loader=loader), strict=True)


def test_shard_merge_keeps_witnesses():
    a, b = Witnesses(), Witnesses()
    a.add(3, 5, b"\x01abc")
    b.add(70, EXACT, b"\x00de")
    z = np.zeros(2, np.float32)

    def part(w: Witnesses) -> AttackCell:
        return AttackCell(np.zeros(2, np.int8), z, z, np.zeros(2, np.int16), z, 1.0,
                          Examples(*(np.zeros(0, np.int64) for _ in range(6))),
                          witnesses=w)

    merged = AttackCell.concat([part(a), part(b)]).witnesses
    assert merged.index == [3, 70] and merged.level == [5, EXACT] and merged.payloads == [b"\x01abc", b"\x00de"]


def test_robustbench_tensor_round_trip(fresh, tmp_path, tiny_digits_model):
    out, _ = fresh
    path = tmp_path / "adv.pt"
    n, written, eps = export_adv(out, "tiny", path)
    assert eps == 0.1
    adv = load_adv(path)
    assert adv.shape == (64, 1, 8, 8) and adv.dtype == torch.float32 and written > 10
    torch.save({"adv_complete": adv}, tmp_path / "aa.pth")  # AutoAttack's own form reads the same
    for p in (path, tmp_path / "aa.pth"):
        res = check_adv_file(p, tiny_digits_model, Budget("linf", 0.1), "digits")
        assert not res.invalid and res.robust == res.clean_correct - written  # every written image fools
    tight = check_adv_file(path, tiny_digits_model, Budget("linf", 0.01), "digits")
    assert tight.invalid and "outside the budget" in tight.invalid[0][1]
