"""The certified bounds (honestbench.certify): IBP equal to ART's interval bound propagation, CROWN never
looser than IBP, and no point of the ball (random, corners, PGD) ever leaving the bounds; models with a
step that cannot be bounded refused with one line naming it. Small random-weight networks: seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from honestbench.attacks import create_attack
from honestbench.certify import UnsupportedLayer, bound_methods, build_graph, certify
from honestbench.certify.ibp import interval_bounds
from honestbench.core.errors import BenchError
from honestbench.nets.layers.common import Normalize

PROPERTY = settings(max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


class ArtNet(nn.Module):
    """Children in the order ART's converter hooks them (conv, relu, ..., linear); the flatten is functional."""

    def __init__(self, c: int = 3):
        super().__init__()
        self.c1, self.r1 = nn.Conv2d(c, 8, 4, 2, 1), nn.ReLU()
        self.c2, self.r2 = nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU()
        self.l1, self.r3, self.l2 = nn.Linear(8 * 4 * 4, 20), nn.ReLU(), nn.Linear(20, 10)

    def forward(self, x):
        h = self.r2(self.c2(self.r1(self.c1(x))))
        return self.l2(self.r3(self.l1(torch.flatten(h, 1))))


class ResNetLike(nn.Module):
    """Every supported step: normalisation, conv, eval BatchNorm, residual addition, average pooling,
    flatten, linear, a constant scale."""

    def __init__(self):
        super().__init__()
        self.norm = Normalize((0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
        self.c1, self.bn = nn.Conv2d(3, 6, 3, 2, 1), nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 6, 3, 1, 1)
        self.pool, self.gap = nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(2)
        self.fc1, self.fc2 = nn.Linear(24, 16), nn.Linear(16, 10)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        h = torch.relu(self.bn(self.c1(self.norm(x))))
        h = self.gap(self.pool(h + torch.relu(self.c2(h))))
        return self.fc2(torch.relu(self.fc1(torch.flatten(h, 1)))) * 0.5


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 10))


def maxpool_cnn() -> nn.Module:
    """Max pooling, overlapping and padded, then a global one (the zoo's small-cnn has both kinds)."""
    return nn.Sequential(nn.Conv2d(3, 6, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(6, 6, 3, 1, 1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(6, 10))


MODELS = {"art-cnn": lambda: ArtNet(), "resnet-like": ResNetLike, "mlp": mlp, "maxpool-cnn": maxpool_cnn}


def make(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MODELS[name]().eval().requires_grad_(False)


def batch(seed: int, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    out = model(x).double()
    m = (out.gather(1, y[:, None]) - out).numpy()
    m[np.arange(len(y)), y.numpy()] = np.inf
    return m


def test_ibp_equals_art():
    from art.estimators.certification.interval import PyTorchIBPClassifier

    model = make("art-cnn")
    x, _ = batch(1, 8)
    art = PyTorchIBPClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(3, 8, 8), nb_classes=10,
                               clip_values=(0.0, 1.0))
    for eps in (0.0, 1 / 255, 8 / 255, 0.3):
        theirs = art.predict_intervals(x.numpy(), bounds=eps, limits=[0.0, 1.0])
        lo, up = interval_bounds(build_graph(model), x, eps)[-1]
        np.testing.assert_allclose(lo.numpy(), theirs[:, 0], atol=1e-5, rtol=0)
        np.testing.assert_allclose(up.numpy(), theirs[:, 1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_graph_matches_model(name):
    model = make(name)
    x, _ = batch(2)
    torch.testing.assert_close(build_graph(model).forward(x)[-1], model(x), atol=1e-5, rtol=1e-5)


@PROPERTY
@given(name=st.sampled_from(sorted(MODELS)), seed=st.integers(0, 10 ** 6),
       eps=st.sampled_from([0.0, 1 / 255, 2 / 255, 8 / 255, 0.1]))
def test_points_in_the_ball_never_leave_the_bounds(name, seed, eps):
    model = make(name, seed % 7)
    x, y = batch(seed)
    graph = build_graph(model)
    ibp, crown = (certify(graph, x, y, eps, m) for m in ("ibp", "crown"))
    assert (crown.margin_lower >= ibp.margin_lower - 1e-6).all()  # CROWN never looser than IBP
    lo, up = interval_bounds(graph, x, eps)[-1]
    g = torch.Generator().manual_seed(seed)
    points = [(x + eps * (2 * torch.rand(x.shape, generator=g) - 1)).clamp(0, 1) for _ in range(8)]
    points += [(x + eps * torch.sign(torch.rand(x.shape, generator=g) - 0.5)).clamp(0, 1) for _ in range(4)]
    if eps > 0:
        pgd = create_attack("pgd-linf", eps=eps, steps=10, alpha=eps / 4)
        points.append(pgd(model, x, y, generator=g))
    for p in points:
        assert (p - x).abs().max() <= eps + 1e-6
        out = model(p)
        assert (out >= lo - 1e-5).all() and (out <= up + 1e-5).all()
        assert (margins(model, p, y) >= crown.margin_lower - 1e-5).all()


def test_crown_tighter_than_ibp_somewhere():
    x, y = batch(3, 16)
    ibp, crown = (certify(make("resnet-like"), x, y, 2 / 255, m) for m in ("ibp", "crown"))
    finite = np.isfinite(ibp.margin_lower)
    assert (crown.margin_lower[finite] > ibp.margin_lower[finite] + 1e-4).mean() > 0.5
    assert set(bound_methods()) >= {"ibp", "crown", "crown-ibp"}


def test_eps_zero_is_the_margin():
    model = make("mlp")
    x, y = batch(4)
    lb = certify(model, x, y, 0.0, "crown").margin_lower
    np.testing.assert_allclose(lb, margins(model, x, y), atol=1e-5)


@pytest.mark.parametrize("model, named", [
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(36, 10)),
     "MaxPool2d"),
    (nn.Sequential(nn.Flatten(), nn.Linear(192, 10), nn.Sigmoid()), "Sigmoid"),
    (nn.Sequential(nn.Flatten(), nn.Linear(192, 10), nn.BatchNorm1d(10)).train(), "BatchNorm1d"),
])
def test_refuses_what_it_cannot_bound(model, named):
    with pytest.raises(UnsupportedLayer, match=named) as e:
        build_graph(model)
    assert "\n" not in str(e.value) and isinstance(e.value, BenchError)


def test_refuses_zoo_layers_that_change_the_forward_pass():
    from honestbench.nets.layers.ibp import IBPConv2d
    from honestbench.nets.registry import build_backbone

    build_graph(build_backbone("small-cnn").eval())  # max pooling: bounded
    noisy = nn.Sequential(IBPConv2d(3, 4, 3), nn.Flatten(), nn.Linear(144, 10)).eval()
    with pytest.raises(UnsupportedLayer):
        build_graph(noisy)  # a Conv2d subclass: matched by exact type, never bounded as a plain conv


def test_unknown_method():
    x, y = batch(5)
    with pytest.raises(BenchError, match="bound method"):
        certify(make("mlp"), x, y, 0.01, "crwn")
