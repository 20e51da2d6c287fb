"""Records, the per-sample matrix, Wilson intervals, merges of shards and atomic writes (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from honestbench import results
from honestbench.core.errors import BenchError
from honestbench.results import Matrix, RunInfo, combine, merge_matrices, record_rows, wilson_interval


def make_matrix(robust: np.ndarray, clean_correct: np.ndarray | None = None, labels=None, aggregates=None,
                index=None) -> Matrix:
    """A constructed matrix: ``robust`` (N, A) tri-state flags; clean-incorrect rows are forced to 0."""
    robust = np.asarray(robust, dtype=np.int8)
    n, a = robust.shape
    labels = labels or [f"A{j}" for j in range(a)]
    cc = np.ones(n, bool) if clean_correct is None else np.asarray(clean_correct, bool)
    robust = robust.copy()
    robust[~cc] = 0
    y = np.zeros(n, np.int64)
    specs = {label: {"kernel": "k", "params": {}, "norm": "linf", "eps": 0.1, "eps_effective": 0.1}
             for label in labels}
    return Matrix(index=np.arange(n) if index is None else np.asarray(index), y=y, labels=labels,
                  clean_pred=np.where(cc, 0, 1), clean_conf=np.full(n, 0.9, np.float32),
                  clean_probs=np.zeros((n, 10), np.float16), robust=robust,
                  norm=np.where(robust == 0, 0.05, np.nan).astype(np.float32),
                  pred=np.zeros((n, a), np.int16),
                  conf=np.zeros((n, a), np.float32), seconds=np.ones(a),
                  meta={"model": "m", "mode": "full-matrix", "seed": 0, "specs": specs,
                        "aggregates": aggregates or {}})


# ----------------------------------------------------------------------------------------------- Wilson
def test_wilson_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@given(st.integers(1, 5000), st.data())
@settings(max_examples=200, deadline=None)
def test_wilson_contains_estimate_and_is_symmetric(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    lo2, hi2 = wilson_interval(n - k, n)
    assert lo2 == pytest.approx(1 - hi, abs=1e-12) and hi2 == pytest.approx(1 - lo, abs=1e-12)


# ----------------------------------------------------------------------------------------------- aggregates
def test_table2_aggregate_is_per_sample_intersection():
    # 8 samples; L2 robust on 0-3 and 6, L-inf robust on 2-6: both only on 2, 3, 6 (never the sum 5 + 5)
    l2 = [1, 1, 1, 1, 0, 0, 1, 0]
    linf = [0, 0, 1, 1, 1, 1, 1, 0]
    m = make_matrix(np.array([l2, linf]).T, labels=["PGD-L2", "PGD"],
                    aggregates={"PGD-L2+Linf": ["PGD-L2", "PGD"]})
    both = m.column("PGD-L2+Linf")
    assert both.tolist() == [0, 0, 1, 1, 0, 0, 1, 0]
    rows = {r["attack"]: r for r in record_rows(m, RunInfo(), "m")}
    assert rows["PGD-L2"]["accuracy"] == 5 / 8 and rows["PGD"]["accuracy"] == 5 / 8
    assert rows["PGD-L2+Linf"]["count"] == 3 and rows["PGD-L2+Linf"]["accuracy"] == 3 / 8
    assert rows["PGD-L2+Linf"]["accuracy"] <= min(rows["PGD-L2"]["accuracy"], rows["PGD"]["accuracy"])
    assert rows["worst-case"]["count"] == 3


def test_combine_tristate():
    flags = np.array([[1, 1], [1, 0], [-1, 0], [1, -1], [-1, -1]])
    assert combine(flags).tolist() == [1, 0, 0, -1, -1]


@given(st.integers(1, 40), st.integers(1, 5), st.data())
@settings(max_examples=100, deadline=None)
def test_worst_case_never_above_any_column(n, a, data):
    flags = np.array(data.draw(st.lists(st.lists(st.sampled_from([-1, 0, 1]), min_size=a, max_size=a),
                                        min_size=n, max_size=n)), dtype=np.int8)
    cc = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    m = make_matrix(flags, cc)
    rows = {r["attack"]: r for r in record_rows(m, RunInfo(), "m")}
    wc = rows["worst-case"]
    for label in m.labels:
        assert wc["count"] <= rows[label]["count"] <= rows[label]["count_hi"]
        assert wc["accuracy"] <= rows[label]["accuracy"]
    assert wc["accuracy"] <= rows["clean"]["accuracy"]


def test_record_bounds_under_early_exit():
    # attack A1 ran second and skipped samples 0, 1 (fooled by A0): its column is only bounded
    m = make_matrix(np.array([[0, -1], [0, -1], [1, 1], [1, 0]]))
    rows = {r["attack"]: r for r in record_rows(m, RunInfo(), "m")}
    r = rows["A1"]
    assert (r["count"], r["count_hi"], r["exact"], r["accuracy"]) == (1, 3, False, 0.75)
    assert r["evaluated"] == 2 and r["fooled"] == 1
    assert rows["A0"]["exact"] and rows["worst-case"]["exact"] and rows["worst-case"]["count"] == 1
    lo, _ = wilson_interval(1, 4)
    _, hi = wilson_interval(3, 4)
    assert (r["ci_lo"], r["ci_hi"]) == (lo, hi)


# ----------------------------------------------------------------------------------------------- matrix files
def test_matrix_roundtrip_and_merge(tmp_path):
    rng = np.random.default_rng(0)
    m = make_matrix(rng.integers(0, 2, (20, 3)), rng.random(20) > 0.2, index=np.arange(100, 120))
    m.save(tmp_path / "m.npz")
    back = Matrix.load(tmp_path / "m.npz")
    for k in ("index", "robust", "norm", "clean_pred", "raw_norm"):
        np.testing.assert_array_equal(getattr(back, k), getattr(m, k))
    assert back.labels == m.labels and back.meta == json.loads(json.dumps(m.meta))
    # shards by sample index, given in any order -> the same matrix
    a, b = m.subset(m.index % 2 == 0), m.subset(m.index % 2 == 1)
    merged = merge_matrices([b, a])
    np.testing.assert_array_equal(merged.index, m.index)
    np.testing.assert_array_equal(merged.robust, m.robust)
    np.testing.assert_array_equal(merged.worst_case(), m.worst_case())
    with pytest.raises(BenchError, match="more than one shard"):
        merge_matrices([a, a])
    other = make_matrix(np.ones((2, 2)), labels=["X", "Y"])
    with pytest.raises(BenchError, match="different attacks"):
        merge_matrices([a, other])


# ----------------------------------------------------------------------------------------------- records
def test_records_json_csv_load(tmp_path):
    m = make_matrix(np.array([[1, 0], [1, 1], [0, 0]]))
    run = RunInfo(suite="s", seed=0)
    rows = record_rows(m, run, "m", "abc")
    results.write_records(tmp_path, rows, run)
    df = results.load(tmp_path)
    assert list(df["attack"]) == ["clean", "A0", "A1", "worst-case"]
    for col in ("model", "attack", "accuracy", "count", "n", "ci_lo", "ci_hi", "params", "eps",
                "eps_effective", "norm_mean", "norm_median", "seconds", "mode", "warnings", "git_commit",
                "checkpoint_sha256", "data_sha256", "torch_version", "torchattacks_version", "art_version",
                "seed", "device", "date"):
        assert col in df.columns
    assert (tmp_path / "records.csv").read_text().splitlines()[0].startswith("model,attack,")
    assert df.set_index("attack").loc["worst-case", "accuracy"] == pytest.approx(1 / 3)


def test_rows_in_registry_order_whatever_order_models_finished(tmp_path):
    """Parallel `bench run` processes append models in the order they finish; readers (the leaderboard, its
    figures) see the zoo's registry order (`bench list models`), then other names alphabetically."""
    from honestbench import report
    from honestbench.zoo import list_cards

    registry = [c.name for c in list_cards()]
    zoo_names = ["slwta", "regular", "slwta-wrn34-1", "pni"]
    assert set(zoo_names) <= set(registry)
    expected = [n for n in registry if n in zoo_names] + ["aaa-local", "zzz-local"]
    assert expected != sorted(expected)  # registry order is not alphabetical: the check can fail
    run = RunInfo(suite="s", seed=0)
    m = make_matrix(np.array([[1, 0], [1, 1], [0, 0]]))
    texts = []
    for finished in (["zzz-local", "slwta", "aaa-local", "regular", "slwta-wrn34-1", "pni"],
                     ["pni", "slwta-wrn34-1", "regular", "aaa-local", "slwta", "zzz-local"]):
        rows = [r for name in finished for r in record_rows(m, run, name)]
        results.write_records(tmp_path, rows, run)
        assert [r["model"] for r in json.loads((tmp_path / "records.json").read_text())["records"]][::4] == finished
        df = results.load(tmp_path)
        assert list(dict.fromkeys(df["model"])) == expected
        assert list(df["attack"][:4]) == ["clean", "A0", "A1", "worst-case"]  # a model's rows keep their order
        texts.append(report.leaderboard_markdown(tmp_path, figures=False))
    assert texts[0] == texts[1]
    assert results.model_order(["b", "a", "regular", "b"]) == ["regular", "a", "b"]


def test_atomic_writes_leave_old_file_on_error(tmp_path, monkeypatch):
    m = make_matrix(np.array([[1], [0]]))
    rows = record_rows(m, RunInfo(), "m")
    results.write_records(tmp_path, rows, RunInfo(suite="s"))
    before = (tmp_path / "records.json").read_text()

    def boom(*a, **k):
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(json, "dump", boom)
    with pytest.raises(KeyboardInterrupt):
        results.write_records(tmp_path, rows[:1], RunInfo(suite="other"))
    monkeypatch.undo()
    assert (tmp_path / "records.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        m.save(tmp_path / "matrix.npz")
    with pytest.raises(KeyboardInterrupt):
        results.save_cell(tmp_path / "cell.npz", {"a": np.zeros(3)}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.csv", "records.json"]


def test_read_records_errors(tmp_path):
    with pytest.raises(BenchError, match="no records"):
        results.load(tmp_path)
    (tmp_path / "records.json").write_text("{not json")
    with pytest.raises(BenchError, match="not valid JSON"):
        results.load(tmp_path)


def test_typed_run_and_model_records_round_trip_the_committed_json():
    """RunInfo / ModelRecord write records.json's ``run`` and model.json key for key as they were written."""
    from pathlib import Path

    from honestbench.results import ModelRecord, RunInfo

    root = Path(__file__).resolve().parents[1] / "results"
    runs = sorted(root.glob("*/records.json"))
    models = sorted(root.glob("*/cells/*/model.json"))
    assert runs and models
    for path in runs:
        raw = json.loads(path.read_text())["run"]
        assert json.dumps(RunInfo.from_json(raw).to_json()) == json.dumps(raw), path
    for path in models:
        raw = json.loads(path.read_text())
        assert json.dumps(ModelRecord.from_json(raw).to_json()) == json.dumps(raw), path
