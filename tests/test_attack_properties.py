"""Property tests over every registered attack: for any images with pixels in [0, 1] (random, constant 0 or 1,
binary, any batch size including 0) and any valid budget, the output has the input's shape, dtype and device,
pixels in [0, 1] and lies within the budget; the model's parameters, ``requires_grad`` flags and mode and the
caller's global torch RNG are untouched.

Model: the tiny digits CNN of conftest (1x8x8 images, 10 classes); cheap attack settings. Few examples per
attack (hypothesis, no database) so the file runs in seconds.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from honestbench.attacks import attack_defaults, attack_names, create_attack
from honestbench.attacks.base import BUDGET_TOL, perturbation_norm
from honestbench.attacks.transfer import register_transfer_source

SOURCE = "property-src"
CHEAP = {"steps": 2, "eot": 2, "search_steps": 2, "n_queries": 10, "samples": 2, "source": SOURCE}
SHAPES = ("uniform", "zeros", "ones", "binary", "edges")
PROPERTY = settings(max_examples=15, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def source(tiny_digits_model):
    register_transfer_source(SOURCE, copy.deepcopy(tiny_digits_model))
    yield SOURCE
    register_transfer_source(SOURCE, None)


def images(kind: str, n: int, seed: int) -> torch.Tensor:
    """``n`` float32 1x8x8 images of ``kind`` (a private generator: the global RNG is not used)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand((n, 1, 8, 8), generator=g)
    if kind == "zeros":
        return torch.zeros_like(u)
    if kind == "ones":
        return torch.ones_like(u)
    if kind == "binary":
        return (u > 0.5).float()
    if kind == "edges":  # pixels at 0, 1 and just inside
        return torch.tensor([0.0, 1.0, 1e-7, 1 - 1e-7])[(u * 4).long().clamp(max=3)]
    return u


@st.composite
def cases(draw, name: str) -> tuple[dict, torch.Tensor, torch.Tensor, int]:
    """Parameters (a valid budget in the attack's norm), images, labels and a generator seed."""
    fields = attack_defaults(name)
    params = {k: v for k, v in CHEAP.items() if k in fields}
    if fields.get("norm") in ("linf", "l2"):  # an attack that runs in either norm
        params["norm"] = draw(st.sampled_from(("linf", "l2")))
    norm = params.get("norm") or create_attack(name, **params).norm
    top = 1.0 if norm == "linf" else 4.0
    if "eps" in fields:
        params["eps"] = draw(st.one_of(st.just(0.0), st.just(top), st.floats(0.0, top)))
    elif "threshold" in fields:
        params["threshold"] = draw(st.one_of(st.none(), st.just(0.0), st.floats(0.0, top)))
    n = draw(st.integers(0, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    x = images(draw(st.sampled_from(SHAPES)), n, seed)
    y = torch.tensor(draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)), dtype=torch.long)
    return params, x, y, seed


@pytest.mark.parametrize("name", attack_names())
def test_any_input_gives_a_valid_output_and_touches_nothing(name, tiny_digits_model):
    @PROPERTY
    @given(case=cases(name), training=st.booleans())
    def prop(case, training):
        params, x, y, seed = case
        attack = create_attack(name, **params)
        model = copy.deepcopy(tiny_digits_model).train(training)
        for i, p in enumerate(model.parameters()):
            p.requires_grad_(i % 2 == 0)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        flags = [p.requires_grad for p in model.parameters()]
        rng = torch.get_rng_state()
        x_adv = attack(model, x, y, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(torch.get_rng_state(), rng), "the global RNG moved"
        assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
        if x.numel():
            assert x_adv.min() >= 0 and x_adv.max() <= 1
            if attack.budget is not None:
                slack = BUDGET_TOL * (1 if attack.norm == "linf" else 10)
                assert perturbation_norm(x_adv, x, attack.norm).max().item() <= attack.budget + slack
        assert all(m.training is training for m in model.modules())
        assert [p.requires_grad for p in model.parameters()] == flags
        assert all(p.grad is None for p in model.parameters())
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())

    prop()
