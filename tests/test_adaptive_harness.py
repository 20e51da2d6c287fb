"""The adaptive suite inside the harness: per-model suites, --diagnose warnings in records and leaderboard,
mean-over-R columns of stochastic models, resumable diagnostics and `bench check` on per-model suites.

Tiny digits models only (conftest's CNN and a logit-noise wrapper); the adaptive attacks run with a few steps
(suite parameters), so every test takes seconds.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from conftest import NoisyNet

from honestbench import diagnostics as dg
from honestbench.attacks.transfer import register_transfer_source
from honestbench.core.errors import BenchError
from honestbench.data import load_eval
from honestbench.engine.options import EvalOptions
from honestbench.pipeline.run import evaluate_and_diagnose
from honestbench.report import leaderboard_markdown
from honestbench.results import Matrix, RunInfo, load, record_rows
from honestbench.suites import ADAPTIVE_PARAMS, get_suite, model_suite
from honestbench.zoo.source import ModelSource

N = 32
CHEAP = ("aa_steps=3,aa_eot=2,aa_queries=20,steps=4,eot=3,surrogate_steps=4,bpda_steps=3,bpda_eot=2,"
         "transfer_steps=3")


@pytest.fixture(scope="module")
def digits():
    return load_eval("digits", N)


@pytest.fixture(scope="module")
def source(tiny_digits_model):
    """A transfer source for the suites (a copy: transfer from the target itself is refused)."""
    register_transfer_source("pgd-at", copy.deepcopy(tiny_digits_model))
    yield
    register_transfer_source("pgd-at", None)


def quiet(**kw):
    return {"log": lambda s: None, **kw}


def by(rows, model):
    return {r["attack"]: r for r in rows if r["model"] == model}


# ----------------------------------------------------------------------------------------------- suites
def test_model_suite_picks_the_flavour_per_model(source):
    adaptive = get_suite("adaptive")
    det = model_suite(adaptive, False, "tiny", "digits")
    sto = model_suite(adaptive, True, "tiny", "digits")
    assert det.labels == sto.labels == ["AutoAttack", "PGD", "surrogate-PGD", "BPDA-PGD", "transfer-PGD"]
    assert det.full_matrix and sto.full_matrix
    assert det.attacks()["AutoAttack"].name == "autoattack"
    assert sto.attacks()["AutoAttack"].name == "autoattack-rand" and sto.attacks()["AutoAttack"].eot == 20

    standard = get_suite("standard")
    assert model_suite(standard, False, "tiny", "digits") is standard  # deterministic: unchanged
    plus = model_suite(standard, True, "tiny", "digits")
    assert plus.labels[:len(standard.labels)] == standard.labels and plus.aggregates == standard.aggregates
    assert {"AutoAttack", "EOT-PGD", "surrogate-PGD", "BPDA-PGD", "transfer-PGD"} <= set(plus.labels)
    ci = get_suite("ci")
    assert model_suite(ci, False, "tiny", "digits") is ci  # other suites: as named for deterministic models
    ci_sto = model_suite(ci, True, "tiny", "digits")
    # issue 15: a stochastic model gets the surrogate twin of the ci PGD column
    # (honestbench.suites.model.surrogate_twin)
    assert ci_sto.labels == ci.labels + ["surrogate-PGD"] and ci.attacks()["PGD"].early_stop is True

    # a stochastic model's gradient attacks all run every step (no early stop on one noisy pass: the
    # suite's own PGD columns too); the added ones use EOT; the deterministic flavour has no EOT
    for suite in (sto, plus, ci_sto):
        for label, attack in suite.attacks().items():
            if hasattr(attack, "early_stop"):
                assert attack.early_stop is False, label
            if label in standard.labels:
                continue
            if attack.name in ("pgd-linf", "bpda-pgd", "autoattack-rand"):
                assert attack.eot > 1, label
    assert all(getattr(a, "eot", 1) == 1 for a in det.attacks().values())


def test_suite_parameters(source):
    s = get_suite("adaptive:aa_eot=5,bpda_eot=4")
    assert s.name == "adaptive" and s.params == {"aa_eot": 5, "bpda_eot": 4} and "aa_eot=5" in s.description
    sto = model_suite(s, True, "tiny", "digits")
    assert sto.attacks()["AutoAttack"].eot == 5 and sto.attacks()["BPDA-PGD"].eot == 4
    assert sto.attacks()["PGD"].eot == ADAPTIVE_PARAMS["eot"]  # untouched
    assert model_suite(get_suite("standard:eot=7"), True, "tiny", "digits").attacks()["EOT-PGD"].eot == 7
    assert get_suite("adaptive:eot=20") is get_suite("adaptive")  # the defaults: the registered suite
    for bad in ("ci:eot=2", "adaptive:nope=1", "adaptive:eot=0", "adaptive:eot=x"):
        with pytest.raises(BenchError):
            get_suite(bad)


# ----------------------------------------------------------------------------------------------- run
def test_adaptive_run_per_model_suites_mean_over_R_and_check(tiny_digits_model, digits, source, tmp_path):
    det, sto = tiny_digits_model, NoisyNet(tiny_digits_model)
    specs = [ModelSource.of("det", det, checkpoint_sha256="d"),
             ModelSource.of("sto", sto, checkpoint_sha256="s")]  # found stochastic by 2 passes
    rows = evaluate_and_diagnose(specs, get_suite(f"adaptive:{CHEAP}"), digits, tmp_path,
                                 EvalOptions(passes=4, progress=False), **quiet())
    d, s = by(rows, "det"), by(rows, "sto")
    labels = ["clean", "AutoAttack", "PGD", "surrogate-PGD", "BPDA-PGD", "transfer-PGD", "worst-case"]
    assert list(d) == list(s) == labels
    assert d["AutoAttack"]["kernel"] == "autoattack" and s["AutoAttack"]["kernel"] == "autoattack-rand"
    assert json.loads(s["PGD"]["params"])["eot"] == 3 and json.loads(d["PGD"]["params"])["eot"] == 1

    # the per-model suites are stored where report and check find them
    info = json.loads((tmp_path / "cells" / "sto" / "model.json").read_text())
    assert [e[1] for e in info["suite"]["entries"]][0] == "autoattack-rand"
    run = json.loads((tmp_path / "records.json").read_text())["run"]
    assert "sto" in run["model_suites"] and run["R"] == 4 and run["suite_params"]["aa_eot"] == 2

    for r in (d, s):  # the worst case is the per-sample intersection: never above any single column
        assert all(r["worst-case"]["accuracy"] <= r[c]["accuracy"] for c in labels[1:-1])
    # mean over R: stochastic model only, with its spread; worst case <= every column in the mean too
    assert all(r["accuracy_mean_R"] is None and r["R"] is None for r in d.values())
    for r in s.values():
        assert r["R"] == 4 and 0 <= r["accuracy_mean_R"] <= 1 and r["spread"] >= 0
    assert all(s["worst-case"]["accuracy_mean_R"] <= s[c]["accuracy_mean_R"] for c in labels[:-1])
    assert s["clean"]["spread"] > 0  # sigma-2 logit noise changes some predictions between passes

    matrix = Matrix.load(tmp_path / "matrices" / "sto.npz")
    assert matrix.R == 4 and matrix.robust_passes.shape == (N, 5, 4)
    assert ((matrix.robust_passes == 1) <= (matrix.clean_passes[:, None] == 1)).all()

    text = leaderboard_markdown(tmp_path, figures=False)
    assert "## Stochastic models: mean over R passes" in text and "| sto " in text
    assert "(det) " in text and "(sto) " in text  # the budget table: one row per configuration of a column

    from honestbench.pipeline.check import check

    out = check(tmp_path, model_loader=lambda name: (det if name == "det" else sto,
                                                      {"det": "d", "sto": "s"}[name]))
    assert all(r["ok"] for r in out), [r for r in out if not r["ok"]]
    assert {r["attack"] for r in out if r["model"] == "sto"} == set(labels)


def test_diagnose_fills_warnings_records_and_leaderboard(tiny_digits_model, digits, source, tmp_path,
                                                         monkeypatch):
    """standard on a stochastic model: its single-pass columns are flagged (no EOT; not early stop: the
    harness runs a stochastic model's attacks without it), the added EOT columns are not; the diagnostics
    are resumable and their flags explained once per name."""
    sto = NoisyNet(tiny_digits_model)
    spec = [ModelSource.of("sto", sto, checkpoint_sha256="s", stochastic=True)]
    suite = get_suite(f"standard:{CHEAP}")
    rows = evaluate_and_diagnose(spec, suite, digits, tmp_path, EvalOptions(passes=2, progress=False), diagnose=True,
                                 **quiet())
    r = by(rows, "sto")
    assert "EOT-PGD" in r and "AutoAttack" in r
    assert dg.NO_EOT in r["PGD"]["warnings"] and dg.EARLY_STOP not in r["PGD"]["warnings"]
    assert json.loads(r["PGD"]["params"])["early_stop"] is False
    assert dg.NO_EOT in r["FGSM"]["warnings"] and "methods.md" in r["PGD"]["warnings"]
    assert r["EOT-PGD"]["warnings"] == "" and r["surrogate-PGD"]["warnings"] == ""
    diag = json.loads((tmp_path / "cells" / "sto" / "diagnostics.json").read_text())
    assert diag["measured"] and diag["skipped"] == []  # a tiny model fits the CPU budget
    assert "eot" in diag["measured"]

    text = leaderboard_markdown(tmp_path, figures=False)
    assert f"{dg.NO_EOT} [" in text  # the warnings column names the flags and their footnotes
    assert "What the flags mean:" in text and "diagnostics ran on sto" in text
    assert text.count(dg.explain(dg.NO_EOT)) == 1  # one explanation per distinct flag

    def boom(*a, **k):
        raise AssertionError("diagnostics re-measured")

    monkeypatch.setattr(dg, "diagnose", boom)  # resumed: cells and diagnostics.json are reused
    again = evaluate_and_diagnose(spec, suite, digits, tmp_path, EvalOptions(passes=2, progress=False), diagnose=True,
                                  **quiet())
    assert [x["warnings"] for x in again] == [x["warnings"] for x in rows]
    assert load(tmp_path)["warnings"].tolist() == [x["warnings"] for x in rows]


def test_deterministic_model_gets_no_eot_and_no_warning(tiny_digits_model, digits, source, tmp_path):
    spec = [ModelSource.of("det", tiny_digits_model, checkpoint_sha256="d")]
    rows = evaluate_and_diagnose(spec, get_suite("ci"), digits, tmp_path, EvalOptions(progress=False), diagnose=True,
                                 **quiet())
    assert all(r["warnings"] == "" and r["R"] is None and not r["stochastic"] for r in rows)
    assert all(json.loads(r["params"]).get("eot", 1) == 1 for r in rows if r["kernel"] != "aggregate")
    assert "none raised (diagnostics ran on det)" in leaderboard_markdown(tmp_path, figures=False)


# ----------------------------------------------------------------------------------------------- pieces
def test_mean_over_passes_columns_from_a_matrix():
    robust = np.array([[1], [1], [0], [1]], np.int8)
    clean_passes = np.array([[1, 1], [1, 0], [0, 0], [1, 1]], np.int8)
    robust_passes = np.array([[[1, 0]], [[1, 0]], [[0, 0]], [[-1, -1]]], np.int8)
    m = Matrix(index=np.arange(4), y=np.zeros(4, np.int64), labels=["A"],
               clean_pred=np.array([0, 0, 1, 0]), clean_conf=np.ones(4, np.float32),
               clean_probs=np.ones((4, 2), np.float16), robust=robust, norm=np.zeros((4, 1), np.float32),
               pred=np.zeros((4, 1), np.int16), conf=np.ones((4, 1), np.float32), seconds=np.zeros(1),
               meta={"stochastic": True}, clean_passes=clean_passes, robust_passes=robust_passes)
    rows = {r["attack"]: r for r in record_rows(m, RunInfo(), "m")}
    assert rows["clean"]["accuracy_mean_R"] == pytest.approx(5 / 8) and rows["clean"]["R"] == 2
    assert rows["clean"]["spread"] == pytest.approx(np.std([3 / 4, 2 / 4], ddof=1))
    assert rows["A"]["accuracy_mean_R"] is None and rows["A"]["R"] == 2  # one image not evaluated
    m.robust_passes[3] = 1
    rows = {r["attack"]: r for r in record_rows(m, RunInfo(), "m")}
    assert rows["A"]["accuracy_mean_R"] == pytest.approx(4 / 8)
    assert rows["worst-case"]["accuracy_mean_R"] == pytest.approx(4 / 8)


def test_plan_measures_keeps_the_budget():
    recs = [{"model": "m", "attack": "PGD", "kernel": "pgd-linf", "accuracy": 0.5, "n": 128, "eps": 8 / 255,
             "eps_effective": 8 / 255, "norm": "linf", "stochastic": True,
             "params": json.dumps({"eps": 8 / 255, "steps": 20, "eot": 20, "early_stop": False})}]
    kept, skipped = dg.plan_measures(recs, "m", stochastic=True, n=128, budget_s=None)
    # no eot=1 row: nothing to measure; the binarization test needs a deterministic model
    assert skipped == [] and set(kept) == set(dg.MEASURES) - {"eot", "binarization"}
    assert "binarization" in dg.plan_measures(recs, "m", stochastic=False)[0]
    one_pass = [{**recs[0], "params": json.dumps({"eps": 8 / 255, "steps": 20, "eot": 1})}]
    assert "eot" in dg.plan_measures(one_pass, "m", stochastic=True)[0]
    assert "eot" not in dg.plan_measures(one_pass, "m", stochastic=False)[0]
    # a WideResNet on a CPU: ~8 ms per forward+backward pass and image
    kept, skipped = dg.plan_measures(recs, "m", stochastic=True, n=128, budget_s=600, seconds_per_pass=0.008)
    assert kept[:2] == ["stochastic", "gradients"] and "single-step" in kept
    assert {"convergence", "eps-sweep"} <= set(skipped)
