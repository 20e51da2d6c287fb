"""The robustness matrix: early exit vs full matrix, seeding, stochastic models, resumable cells, run."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import NoisyNet

from honestbench.attacks import create_attack
from honestbench.attacks.base import Attack
from honestbench.core.errors import BenchError
from honestbench.data import load_eval
from honestbench.engine.cascade import evaluate
from honestbench.engine.options import EvalOptions
from honestbench.engine.runner import run_models
from honestbench.results import load, merge_matrices
from honestbench.suites import Entry, Suite, get_suite
from honestbench.zoo.source import ModelSource

N = 96
# deterministic attacks (no random start) strong enough to fool some digits
DET = Suite("det", "test", (
    Entry("FGSM", "fgsm", {"eps": 0.15}),
    Entry("PGD", "pgd-linf", {"eps": 0.15, "alpha": 0.03, "steps": 8, "random_start": False}),
    Entry("PGD-L2", "pgd-l2", {"eps": 1.0, "steps": 8, "random_start": False}),
), aggregates={"PGD-L2+Linf": ["PGD-L2", "PGD"]})
RANDOM = Suite("rnd", "test", (
    Entry("PGD", "pgd-linf", {"eps": 0.15, "alpha": 0.03, "steps": 5, "random_start": True}),
    Entry("noise", "noise", {"eps": 0.15}),
))


@pytest.fixture(scope="module")
def tiny(tiny_digits_model):  # conftest's session model (not modified here)
    return tiny_digits_model


@pytest.fixture(scope="module")
def digits():
    return load_eval("digits", N)


class Spy(Attack):
    """Wraps an attack and records how many images it was asked to attack."""

    def __init__(self, inner: Attack):
        self.inner, self.seen = inner, []
        self.name, self.norm = inner.name, inner.norm

    def __getattr__(self, key):  # steps, eps, ... of the wrapped attack (for the cascade's cost order)
        if key == "inner":
            raise AttributeError(key)
        return getattr(self.inner, key)

    def params(self):
        return self.inner.params()

    @property
    def budget(self):
        return self.inner.budget

    def effective_eps(self):
        return self.inner.effective_eps()

    def __call__(self, model, x, y, generator=None):
        self.seen.append(len(x))
        return self.inner(model, x, y, generator)


def test_early_exit_same_worst_case_as_full_matrix(tiny, digits):
    early = evaluate(tiny, digits.x, digits.y, DET, EvalOptions(batch_size=32, progress=False), index=digits.index)
    full = evaluate(tiny, digits.x, digits.y, DET, EvalOptions(batch_size=32, progress=False, full_matrix=True),
                    index=digits.index)
    assert early.meta["mode"] == "early-exit" and full.meta["mode"] == "full-matrix"
    np.testing.assert_array_equal(early.worst_case(), full.worst_case())
    assert (full.worst_case() == 0).sum() > (~full.clean_correct).sum()  # the attacks fool something
    assert (full.robust != -1).all()  # full matrix: every column exact
    for j in range(len(DET.labels)):  # early exit: where evaluated, the same flag; bounds contain it
        col, ref = early.robust[:, j], full.robust[:, j]
        known = col != -1
        np.testing.assert_array_equal(col[known], ref[known])
        assert (col == 1).sum() <= (ref == 1).sum() <= (col != 0).sum()
    first = early.meta["order"][0]
    assert (early.column(first) != -1).all()  # the first attack of the cascade is exact


def test_early_exit_attacks_only_open_samples(tiny, digits):
    spies = {e.label: Spy(e.build()) for e in DET.entries}
    m = evaluate(tiny, digits.x, digits.y, spies, EvalOptions(batch_size=1000, progress=False), index=digits.index)
    assert m.meta["order"] == ["FGSM", "PGD", "PGD-L2"]  # cheapest first
    assert sum(spies["FGSM"].seen) == m.clean_correct.sum()  # misclassified clean images never attacked
    fooled_by_fgsm = (m.column("FGSM") == 0) & m.clean_correct
    assert sum(spies["PGD"].seen) == m.clean_correct.sum() - fooled_by_fgsm.sum()
    spies_full = {e.label: Spy(e.build()) for e in DET.entries}
    evaluate(tiny, digits.x, digits.y, spies_full, EvalOptions(full_matrix=True, progress=False))
    assert all(sum(s.seen) == m.clean_correct.sum() for s in spies_full.values())


def test_worst_case_not_above_any_column(tiny, digits):
    for full in (False, True):
        m = evaluate(tiny, digits.x, digits.y, DET, EvalOptions(full_matrix=full, progress=False))
        wc = (m.worst_case() == 1).sum()
        for label in [*m.labels, "PGD-L2+Linf", "clean"]:
            assert wc <= (m.column(label) == 1).sum()


def test_results_independent_of_sharding(tiny, digits):
    """Per-block seeds: shards aligned to the batch size reproduce the single-process matrix exactly."""
    opts = EvalOptions(batch_size=32, progress=False)
    whole = evaluate(tiny, digits.x, digits.y, RANDOM, opts, index=digits.index)
    parts = []
    for lo, hi in ((0, 64), (64, N)):
        parts.append(evaluate(tiny, digits.x[lo:hi], digits.y[lo:hi], RANDOM, opts, index=digits.index[lo:hi]))
    merged = merge_matrices(parts[::-1])
    np.testing.assert_array_equal(merged.index, whole.index)
    np.testing.assert_array_equal(merged.robust, whole.robust)
    np.testing.assert_allclose(merged.norm, whole.norm, equal_nan=True)
    # and a different seed changes the random starts (so the seed is really used)
    other = evaluate(tiny, digits.x, digits.y, {"noise": create_attack("noise", eps=0.3)},
                     EvalOptions(seed=1, progress=False, full_matrix=True))
    same = evaluate(tiny, digits.x, digits.y, {"noise": create_attack("noise", eps=0.3)},
                    EvalOptions(seed=0, progress=False, full_matrix=True))
    assert not np.array_equal(other.norm, same.norm)


def test_stochastic_model_detected_and_reproducible(tiny, digits):
    noisy = NoisyNet(tiny)
    state = torch.random.get_rng_state()
    quiet = EvalOptions(progress=False)
    a = evaluate(noisy, digits.x, digits.y, RANDOM, quiet)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    b = evaluate(noisy, digits.x, digits.y, RANDOM, quiet)
    assert a.meta["stochastic"] and not evaluate(tiny, digits.x[:8], digits.y[:8], RANDOM, quiet).meta["stochastic"]
    np.testing.assert_array_equal(a.robust, b.robust)
    np.testing.assert_array_equal(a.clean_pred, b.clean_pred)


# ----------------------------------------------------------------------------------------------- run / resume
QUIET = EvalOptions(progress=False)


def models_for(tiny):
    return [ModelSource.of("tiny", tiny, checkpoint_sha256="t0")]


def test_run_resume_skips_finished_cells(tiny, digits, tmp_path, monkeypatch):
    quiet = {"log": lambda s: None}
    rows = run_models(models_for(tiny), DET, digits, tmp_path, QUIET, command="test", **quiet)
    assert {r["attack"] for r in rows} == {"clean", "FGSM", "PGD", "PGD-L2", "PGD-L2+Linf", "worst-case"}
    before = load(tmp_path)

    calls = []
    original = Attack.__call__

    def spy(self, model, x, y, generator=None):
        calls.append(self.name)
        return original(self, model, x, y, generator)

    monkeypatch.setattr(Attack, "__call__", spy)
    run_models(models_for(tiny), DET, digits, tmp_path, QUIET, command="again", **quiet)
    assert calls == []  # every cell was finished: nothing re-attacked
    after = load(tmp_path)
    assert after["count"].tolist() == before["count"].tolist()
    run = json.loads((tmp_path / "records.json").read_text())["run"]
    assert run["commands"] == ["test", "again"]

    (tmp_path / "cells" / "tiny" / "PGD-L2.npz").unlink()  # only this cell is recomputed
    run_models(models_for(tiny), DET, digits, tmp_path, QUIET, log=lambda s: None)
    assert set(calls) == {"pgd-l2"}
    assert load(tmp_path)["count"].tolist() == before["count"].tolist()


def test_interrupt_leaves_dir_consistent(tiny, digits, tmp_path, monkeypatch):
    original = Attack.__call__

    def interrupt_pgd(self, model, x, y, generator=None):
        if self.name == "pgd-linf":
            raise KeyboardInterrupt
        return original(self, model, x, y, generator)

    monkeypatch.setattr(Attack, "__call__", interrupt_pgd)
    with pytest.raises(KeyboardInterrupt):
        run_models(models_for(tiny), DET, digits, tmp_path, QUIET, log=lambda s: None)
    files = sorted(p.name for p in (tmp_path / "cells" / "tiny").iterdir())
    assert files == ["FGSM.npz", "clean.npz", "model.json"]  # finished cells only, no temp files
    monkeypatch.undo()
    rows = run_models(models_for(tiny), DET, digits, tmp_path, QUIET, log=lambda s: None)
    assert len(rows) == 6


def test_other_configuration_in_same_dir_is_refused(tiny, digits, tmp_path):
    run_models(models_for(tiny), DET, digits, tmp_path, QUIET, log=lambda s: None)
    with pytest.raises(BenchError, match="another configuration"):
        run_models(models_for(tiny), DET, digits, tmp_path, EvalOptions(seed=3, progress=False), log=lambda s: None)
    with pytest.raises(BenchError, match="different configuration"):  # cells of another checkpoint
        spec = [ModelSource.of("tiny", tiny, checkpoint_sha256="changed")]
        run_models(spec, DET, digits, tmp_path, QUIET, log=lambda s: None)


@dataclasses.dataclass
class FakeCard:
    name: str
    sha256: str = "x"
    stochastic: bool = False
    description: str = "fake"
    data: str = "digits"
    trained: bool = True
    user: bool = False
    source: dict | None = None
    training: str = ""  # Card.training: trained for as many epochs as its recipe


def test_run_command_end_to_end(tiny, tmp_path, monkeypatch, capsys):
    """`bench run --dataset digits` through the CLI with a fake zoo (untrained card skipped with a note)."""
    import honestbench.zoo.cards as cards_mod
    import honestbench.zoo.user as user_mod
    from honestbench.cli.main import main

    cards = [FakeCard("a"), FakeCard("b"), FakeCard("untrained", trained=False)]
    monkeypatch.setattr(cards_mod, "list_cards", lambda pattern="*", **dirs: cards)
    monkeypatch.setattr(user_mod, "evaluation_model", lambda card, device="cpu": tiny)
    rc = main(["run", "--dataset", "digits", "--n", "48", "--out", str(tmp_path), "--quiet",
               "--batch-size", "32"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "skipping untrained" in captured.err and "the full one: bench run" in captured.err
    assert "\na " in captured.out and "worst case" in captured.out  # the summary, not the markdown (--print)
    df = load(tmp_path)
    assert set(df["model"]) == {"a", "b"}
    assert set(df["attack"]) >= {"clean", "FGSM", "PGD", "noise", "worst-case"}
    assert (tmp_path / "leaderboard.md").is_file() and (tmp_path / "figures" / "confidence.png").is_file()
    assert get_suite("ci").default_n == 128 and df["n"].iloc[0] == 48


def test_run_command_passes_sets_r(tiny, tmp_path, monkeypatch, capsys):
    """`bench run --passes R`: a stochastic model's records carry R (mean over R passes); a deterministic
    model's none; R < 1 is a one-line usage error. The help's default is honestbench.engine.stochastic.R_DEFAULT."""
    import honestbench.zoo.cards as cards_mod
    import honestbench.zoo.user as user_mod
    from honestbench.cli import main as cli
    from honestbench.engine.stochastic import R_DEFAULT

    assert cli.PASSES_DEFAULT == R_DEFAULT
    cards = [FakeCard("noisy", stochastic=True), FakeCard("plain")]
    monkeypatch.setattr(cards_mod, "list_cards", lambda pattern="*", **dirs: cards)
    monkeypatch.setattr(user_mod, "evaluation_model",
                        lambda card, device="cpu": NoisyNet(tiny) if card.stochastic else tiny)
    rc = cli.main(["run", "--data", "digits", "--suite", "ci", "--n", "32", "--passes", "3", "--out", str(tmp_path),
                   "--quiet", "--no-report"])
    assert rc == 0
    records = json.loads((tmp_path / "records.json").read_text())
    assert records["run"]["R"] == 3
    noisy = [r for r in records["records"] if r["model"] == "noisy"]
    assert noisy and all(r["R"] == 3 for r in noisy)
    assert next(r for r in noisy if r["attack"] == "clean")["accuracy_mean_R"] is not None
    assert all(r["R"] in (None, "", 0) for r in records["records"] if r["model"] == "plain")
    capsys.readouterr()
    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as exc:
            cli.main(["run", "--data", "digits", "--passes", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("bench run: error: argument --passes: ") and "whole number" in err[-1]


def test_eval_options_refuse_bad_batch_size_and_normalise_device():
    with pytest.raises(BenchError, match="batch size must be >= 1"):
        EvalOptions(batch_size=0)
    assert EvalOptions(device="cpu").device == torch.device("cpu")
