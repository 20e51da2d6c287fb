"""Exact verification by MILP (honestbench.certify.milp, HiGHS): on a tiny 2-input network its verdicts agree
with a brute-force grid over every ball, every counterexample is a point of the ball that the model
misclassifies, and the order ``certified (CROWN) => exact robust`` holds. A spent time limit says
``timeout``. Seconds in all."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from honestbench.certify import certify
from honestbench.certify.milp import STATUSES, verify

pytest.importorskip("highspy")


@pytest.fixture(scope="module")
def tiny():
    """A 2 -> 12 -> 12 -> 3 ReLU network fitted to three angular sectors of the unit square, 60 points."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 2, generator=g)
    y = ((torch.atan2(x[:, 1] - 0.5, x[:, 0] - 0.5) + torch.pi) / (2 * torch.pi) * 3).long().clamp(max=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Flatten(), nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3))
    opt = torch.optim.Adam(m.parameters(), 0.03)
    for _ in range(300):
        loss = nn.functional.cross_entropy(m(x.view(-1, 2, 1, 1)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval().requires_grad_(False)
    return m, x[:60].view(-1, 2, 1, 1), y[:60]


def grid_breaks(model: nn.Module, x: torch.Tensor, y: int, eps: float, n: int = 301) -> bool:
    lo, hi = (x.flatten() - eps).clamp(0, 1), (x.flatten() + eps).clamp(0, 1)
    t = torch.linspace(0, 1, n)
    pts = torch.stack(torch.meshgrid(lo[0] + (hi[0] - lo[0]) * t, lo[1] + (hi[1] - lo[1]) * t, indexing="ij"), -1)
    return bool((model(pts.reshape(-1, 2, 1, 1)).argmax(1) != y).any())


@pytest.mark.parametrize("eps", [0.03, 0.1])
def test_milp_agrees_with_brute_force(tiny, eps):
    model, x, y = tiny
    verdicts = verify(model, x, y, eps, time_limit=20.0)
    certified = certify(model, x, y, eps, "crown").certified
    statuses = [v.status for v in verdicts]
    assert set(statuses) <= set(STATUSES) and "robust" in statuses and "counterexample" in statuses
    for i, v in enumerate(verdicts):
        broken = grid_breaks(model, x[i], int(y[i]), eps)
        assert v.status in ("robust", "counterexample"), (i, v)
        if v.status == "robust":
            assert not broken, f"image {i}: MILP robust but the grid finds a counterexample"
        if certified[i]:
            assert v.status == "robust", f"image {i}: certified by CROWN but not exactly robust"
        if v.status == "counterexample":
            p = torch.from_numpy(v.point)[None]
            assert (p - x[i]).abs().max() <= eps + 1e-7 and p.min() >= 0 and p.max() <= 1
            assert int(model(p).argmax(1)) != int(y[i])
        if broken:
            assert v.status == "counterexample"


def test_counterexamples_on_an_image_sized_mlp():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 10)).eval().requires_grad_(False)
    x = torch.rand(8, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(1)
    verdicts = verify(model, x, y, 0.2, time_limit=20.0)
    found = [v for v in verdicts if v.status == "counterexample"]
    assert found, [v.status for v in verdicts]
    for i, v in enumerate(verdicts):
        if v.status == "counterexample":
            p = torch.from_numpy(v.point)[None]
            assert (p - x[i]).abs().max() <= 0.2 + 1e-7 and int(model(p).argmax(1)) != int(y[i])


def test_a_spent_time_limit_says_timeout(tiny):
    model, x, y = tiny
    verdicts = verify(model, x[:5], y[:5], 0.3, time_limit=0.0)
    assert {v.status for v in verdicts} <= {"timeout", "robust", "counterexample"}
    assert any(v.status == "timeout" for v in verdicts)
    assert all(np.isfinite(v.seconds) for v in verdicts)
