"""`bench check`: passes when nothing changed, fails on a broken kernel, a changed checkpoint or drift."""

from __future__ import annotations

import pytest
from conftest import NoisyNet

import honestbench.attacks.pgd as pgd
from honestbench.data import load_eval
from honestbench.engine.options import EvalOptions
from honestbench.engine.runner import run_models
from honestbench.pipeline import check as chk
from honestbench.suites import Entry, Suite
from honestbench.zoo.source import ModelSource

# a CI-like suite whose PGD fools digits (8/255 barely moves them)
SUITE = Suite("ci-digits", "test", (
    Entry("FGSM", "fgsm", {"eps": 0.1}),
    Entry("PGD", "pgd-linf", {"eps": 0.1, "alpha": 0.025, "steps": 6, "random_start": True}),
    Entry("noise", "noise", {"eps": 0.1}),
), full_matrix=True)


@pytest.fixture(scope="module")
def committed(tmp_path_factory, tiny_digits_model):
    tiny = tiny_digits_model
    models = {"tiny": tiny, "noisy": NoisyNet(tiny, sigma=1.0)}
    out = tmp_path_factory.mktemp("committed")
    specs = [ModelSource.of("tiny", tiny, checkpoint_sha256="t"),
             ModelSource.of("noisy", models["noisy"], checkpoint_sha256="n", stochastic=True)]
    run_models(specs, SUITE, load_eval("digits", 64), out, EvalOptions(batch_size=32, progress=False),
               log=lambda s: None)
    loader = {"tiny": (tiny, "t"), "noisy": (models["noisy"], "n")}
    return out, lambda name: loader[name]


def test_check_passes_when_nothing_changed(committed):
    out, loader = committed
    rows = chk.check(out, model_loader=loader)
    compared = [r for r in rows if r["model"] != "*"]
    assert compared and all(r["ok"] for r in rows), chk.format_rows(rows)
    assert {r["model"] for r in compared} == {"tiny", "noisy"}
    assert any("3 binomial s.e." in r["note"] for r in compared if r["model"] == "noisy")
    assert all("identical counts" in r["note"] for r in compared if r["model"] == "tiny")


def test_pgd_without_projection_fails_check(committed, monkeypatch, capsys):
    out, loader = committed
    monkeypatch.setattr(pgd, "project_linf_", lambda x_adv, x, eps: x_adv.clamp_(0, 1))  # the broken kernel
    monkeypatch.setattr(chk, "_zoo_loader", lambda device: loader)
    from honestbench.cli.main import main

    assert main(["check", "--results", str(out), "--models", "tiny"]) == 1
    text = capsys.readouterr().out
    assert "FAIL" in text and "exceeds its linf budget" in text


def test_weakened_pgd_changes_counts(committed, monkeypatch):
    """A subtler break that passes the budget assertion: PGD steps down the loss instead of up."""
    out, loader = committed
    original = pgd.PGDLinf._step_
    monkeypatch.setattr(pgd.PGDLinf, "_step_", lambda self, x_adv, grad, x: original(self, x_adv, -grad, x))
    rows = chk.check(out, model_loader=loader, models=["tiny"])
    failed = [r for r in rows if not r["ok"]]
    assert any(r["attack"] == "PGD" for r in failed), chk.format_rows(rows, only_failures=False)
    assert all(r["attack"] in ("PGD", "worst-case") for r in failed)
    table = chk.format_rows(rows)
    assert "PGD" in table and "committed" in table and "now" in table


def test_changed_checkpoint_fails(committed):
    out, loader = committed
    rows = chk.check(out, model_loader=lambda name: (loader(name)[0], "other-sha"), models=["tiny"])
    assert not rows[0]["ok"] and "checkpoint changed" in rows[0]["note"]


def test_tolerance():
    assert chk.tolerance(0.5, 128) == pytest.approx(3 * (0.25 / 128) ** 0.5)
    assert chk.tolerance(0.0, 100) == pytest.approx(3 * (0.01 * 0.99 / 100) ** 0.5)  # clipped at 1/n
    assert chk.tolerance(1.0, 100) == pytest.approx(chk.tolerance(0.0, 100))
