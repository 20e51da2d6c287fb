"""The bound columns in the harness (honestbench.engine.certified): certified and exact beside the attacks,
resumable, the invariant `proved robust => robust to every attack` checked on every run (a contradiction is a
one-line error naming the image, the attack, the method and the bound), a model the bounds cannot handle
refused in its row, and the records / leaderboard rows. Tiny random networks on 8x8 inputs: seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from honestbench.core.errors import BenchError
from honestbench.engine.cascade import evaluate
from honestbench.engine.cells import CellCache
from honestbench.engine.certified import BoundCell, check_invariant
from honestbench.report.certified import certified_section
from honestbench.results import RunInfo, record_rows
from honestbench.suites import CertifySpec, Entry, Suite, get_suite

EPS = 0.02


def suite(exact: float | None = 5.0) -> Suite:
    return Suite("t", "test", (Entry("FGSM", "fgsm", {"eps": EPS}),
                               Entry("PGD", "pgd-linf", {"eps": EPS, "alpha": EPS / 4, "steps": 10})),
                 certify=CertifySpec("crown", exact_limit=exact))


def data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor, nn.Module]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.rand(n, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)  # clean-correct by construction: the bounds decide
    y[:2] = (y[:2] + 1) % 3  # two misclassified images
    return x, y, model


def test_bound_columns_beside_the_attacks(tmp_path):
    x, y, model = data()
    cache = CellCache(tmp_path, "m", {})
    m = evaluate(model, x, y, suite(), cache=cache, name="m")
    cert, exact, worst = m.column("certified"), m.column("exact"), m.worst_case()
    assert list(m.meta["bounds"]) == ["certified", "exact"] and m.meta["bounds"]["exact"]["limit"] == 5.0
    assert (cert[:2] == 0).all() and (exact[:2] == 0).all()
    assert ((cert == 1) <= (exact == 1)).all() and ((exact == 1) <= (worst == 1)).all()  # certified <= exact <= worst
    assert (exact != -1).all()  # a 16-ReLU network: every image settled
    rows = {r["attack"]: r for r in record_rows(m, RunInfo(suite="t"))}
    assert rows["certified"]["kernel"] == "crown" and rows["exact"]["kernel"].startswith("milp")
    assert rows["worst-case"]["count"] >= rows["exact"]["count"] >= rows["certified"]["count"]
    again = evaluate(model, x, y, suite(), cache=cache, name="m")  # resumed from the cells
    np.testing.assert_array_equal(again.bounds, m.bounds)
    import pandas as pd

    text = "\n".join(certified_section(pd.DataFrame(list(rows.values()))))
    assert "attack gap" in text and "attack miss" in text


def test_contradiction_is_a_hard_error_naming_everything():
    n = 4
    cell = BoundCell(np.array([1, 0, 1, 0], np.int8), np.array([0.5, -1, 0.01, -2], np.float32), 0.0, "crown")
    fooled = np.array([1, 1, 0, 0], np.int8)
    with pytest.raises(BenchError, match=r"m: image 12 is certified robust by crown .*0\.01.*attack PGD") as e:
        check_invariant("m", {"certified": cell}, 8 / 255, {"PGD": fooled}, {"PGD": 8 / 255},
                        np.ones(n, bool), np.array([10, 11, 12, 13]))
    assert "\n" not in str(e.value)
    # an attack of a larger budget, or another norm, may break a certified image: not compared
    check_invariant("m", {"certified": cell}, 2 / 255, {"PGD": fooled, "L2": fooled}, {"PGD": 8 / 255, "L2": None},
                    np.ones(n, bool), np.arange(n))


def test_a_model_the_bounds_cannot_handle_is_refused_in_its_row():
    x, y, _ = data(8)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.Sigmoid()).eval()
    m = evaluate(model, x, y, suite(), name="s")
    rows = {r["attack"]: r for r in record_rows(m, RunInfo(suite="t"))}
    for label in ("certified", "exact"):
        assert rows[label]["accuracy"] is None and "Sigmoid" in json.loads(rows[label]["params"])["note"]
    assert rows["worst-case"]["accuracy"] is not None


def test_certify_flag_and_suite():
    assert CertifySpec.parse("ibp") == CertifySpec("ibp") and CertifySpec.parse("crown,exact=10").exact_limit == 10
    for bad in ("alpha", "crown,exact=0", "crown,exact=x", "crown,limit=3"):
        with pytest.raises(BenchError):
            CertifySpec.parse(bad)
    s = get_suite("certified")
    assert s.certify == CertifySpec("crown", exact_limit=10.0)
