"""Our attack kernels: budgets, clipping, input errors, determinism, model untouched, parameter validation,
effective budget, CW margin with negative logits, strength (PGD beats noise; early stop never weaker).

Model: the tiny digits CNN of conftest (about 98 % clean accuracy on the first 128 digits images). Budgets
in these tests are larger than the CIFAR standard (8/255 barely moves 8x8 digits quantised in 1/16 steps),
so the strength checks have something to measure.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import ClassVar

import pytest
import torch
from torch import nn

from honestbench.attacks import attack_defaults, attack_names, create_attack, input_grad, margin, perturbation_norm
from honestbench.attacks.base import BUDGET_TOL
from honestbench.attacks.eot import is_stochastic
from honestbench.attacks.pgd import PGDLinf
from honestbench.core.errors import AttackConfigError

ALL = ["fgsm", "pgd-linf", "pgd-l2", "cw-l2", "noise", "eot-pgd-linf", "eot-fgsm"]
# cheap settings per attack (the defaults are exercised by the cross-check)
CHEAP = {"cw-l2": {"steps": 15, "search_steps": 2}, "eot-pgd-linf": {"eot": 2, "steps": 3},
         "eot-fgsm": {"eot": 2}, "pgd-l2": {"steps": 5}, "pgd-linf": {"steps": 5}}


def make(name: str, **kw) -> object:
    return create_attack(name, **{**CHEAP.get(name, {}), **kw})


def robust_acc(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return ((model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)).float().mean().item()


class CountingModel(nn.Module):
    """Wraps a model and records the batch size of every forward pass."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        return self.inner(x)


class NoisyModel(nn.Module):
    """A stochastic model: Gaussian noise on the input at every forward pass, also in eval mode."""

    def __init__(self, inner: nn.Module, sigma: float = 0.1):
        super().__init__()
        self.inner, self.sigma = inner, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x + self.sigma * torch.randn_like(x))


# ----------------------------------------------------------------------------------------------- registry
def test_registry_lists_every_attack_with_defaults():
    assert set(ALL) <= set(attack_names())
    assert attack_defaults("pgd-linf")["eps"] == pytest.approx(8 / 255)
    assert attack_defaults("pgd-l2")["eps"] == 0.5 and attack_defaults("pgd-l2")["alpha"] is None
    assert attack_defaults("eot-pgd-linf")["eot"] == 20 and attack_defaults("pgd-linf")["eot"] == 1
    cw = attack_defaults("cw-l2")
    keys = ("search_steps", "steps", "lr", "kappa", "lam", "mode", "threshold")
    assert tuple(cw[k] for k in keys) == (9, 100, 0.01, 0.0, 0.0, "search", 0.5)
    assert create_attack("eot-pgd-linf").name == "eot-pgd-linf"


def test_eot_pgd_runs_every_step_by_default():
    """EOT-PGD is for stochastic models, where stopping at the first step that fools one noisy pass is weak:
    its default is early_stop=False (pgd-linf keeps True); ``bench list attacks`` shows it."""
    from honestbench.cli.listing import attack_rows

    assert attack_defaults("eot-pgd-linf")["early_stop"] is False and create_attack("eot-pgd-linf").early_stop is False
    assert attack_defaults("pgd-linf")["early_stop"] is True
    assert create_attack("eot-pgd-linf", early_stop=True).early_stop is True  # still a parameter
    row = next(r for r in attack_rows("eot-pgd-linf"))
    assert "early_stop=False" in row[2] and "eot=20" in row[2]


def test_unknown_names_suggest_the_closest():
    with pytest.raises(AttackConfigError, match="did you mean 'pgd-linf'"):
        create_attack("pgd-lnf")
    with pytest.raises(AttackConfigError, match="did you mean 'steps'"):
        create_attack("pgd-linf", stepz=3)


# ----------------------------------------------------------------------------------------------- contract
@pytest.mark.parametrize("name", ALL)
def test_budget_clipping_dtype(name, tiny_digits_model, digits_eval):
    x, y = digits_eval
    atk = make(name)
    x_adv = atk(tiny_digits_model, x, y)
    assert x_adv.dtype == torch.float32 and x_adv.shape == x.shape
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    slack = BUDGET_TOL * (1 if atk.norm == "linf" else 10)
    assert perturbation_norm(x_adv, x, atk.norm).max() <= atk.budget + slack
    assert not torch.equal(x_adv, x)  # it did something


@pytest.mark.parametrize("name", ALL)
def test_input_errors_are_one_line_config_errors(name, tiny_digits_model, digits_eval):
    x, y = digits_eval
    atk = make(name)
    bad = [
        (x.double(), y, "float32"),
        (x[0], y, "NCHW"),
        (x, y.int(), "int64"),
        (x, y[:-1], "int64"),
        (x * 2, y, r"\[0, 1\]"),
        (x.numpy(), y, "torch tensors"),
    ]
    for xb, yb, msg in bad:
        with pytest.raises(AttackConfigError, match=msg) as e:
            atk(tiny_digits_model, xb, yb)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ALL)
def test_deterministic_with_a_seeded_generator(name, tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:32], digits_eval[1][:32]
    atk = make(name)
    runs = [atk(tiny_digits_model, x, y, generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0], runs[2]) != atk.randomized  # randomness only through the generator


@pytest.mark.parametrize("name", ALL)
def test_global_rng_untouched(name, tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:16], digits_eval[1][:16]
    state = torch.get_rng_state()
    make(name)(tiny_digits_model, x, y, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("training", [True, False])
def test_model_parameters_and_mode_untouched(name, training, tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:32], digits_eval[1][:32]
    model = copy.deepcopy(tiny_digits_model).train(training)
    flags = {n: (i % 2 == 0) for i, (n, _) in enumerate(model.named_parameters())}  # mixed flags
    for n, p in model.named_parameters():
        p.requires_grad_(flags[n])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    make(name)(model, x, y)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    for n, p in model.named_parameters():
        assert p.requires_grad is flags[n], n
        assert p.grad is None, f"{n} got a parameter gradient"
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


# ----------------------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("name", ALL)
def test_negative_eps_or_zero_steps_fail_at_construction(name):
    defaults = attack_defaults(name)
    key = "threshold" if name == "cw-l2" else "eps"
    with pytest.raises(AttackConfigError, match=f"{key} must be >= 0"):
        create_attack(name, **{key: -0.1})
    with pytest.raises(AttackConfigError, match=f"{key} must be >= 0"):
        create_attack(name, **{key: float("nan")})
    for key in ("steps", "eot", "restarts", "search_steps", "samples"):
        if key in defaults:
            with pytest.raises(AttackConfigError, match=f"{key} must be an integer >= 1"):
                create_attack(name, **{key: 0})
            with pytest.raises(AttackConfigError, match=f"{key} must be an integer >= 1"):
                create_attack(name, **{key: 2.5})


def test_unknown_choices_fail_at_construction():
    with pytest.raises(AttackConfigError, match="unknown loss"):
        create_attack("pgd-linf", loss="hinge")
    with pytest.raises(AttackConfigError, match="unknown dist"):
        create_attack("noise", dist="laplace")
    with pytest.raises(AttackConfigError, match="unknown mode"):
        create_attack("cw-l2", mode="adaptive")

    @dataclasses.dataclass
    class PGDL3(PGDLinf):
        norm: ClassVar[str] = "l3"

    with pytest.raises(AttackConfigError, match="unknown norm 'l3'"):
        PGDL3()


def test_effective_eps_of_the_reports_pgd(tiny_digits_model, digits_eval):
    x, y = digits_eval
    # Table 1: eps 0.3, alpha 0.01, 3 steps from x: the reachable box is 0.03, not 0.3
    atk = create_attack("pgd-linf", eps=0.3, alpha=0.01, steps=3, random_start=False)
    assert atk.effective_eps() == pytest.approx(0.03)
    assert create_attack("pgd-linf", eps=0.3, alpha=0.01, steps=3).effective_eps() == 0.3  # random start
    long = create_attack("pgd-linf", eps=0.03, alpha=0.01, steps=10, random_start=False)
    assert long.effective_eps() == 0.03
    l2 = create_attack("pgd-l2", eps=0.5, steps=20, random_start=False)
    assert l2.effective_eps() == pytest.approx(0.5)
    assert create_attack("pgd-l2", eps=0.5, steps=20).step_size == pytest.approx(2.5 * 0.5 / 20)
    assert create_attack("fgsm", eps=0.3).effective_eps() == 0.3
    x_adv = atk(tiny_digits_model, x, y)
    assert perturbation_norm(x_adv, x, "linf").max() <= 0.03 + 1e-6


# ----------------------------------------------------------------------------------------------- CW
def test_margin_masks_the_true_class_with_negative_logits(tiny_digits_model):
    import torchattacks

    z = torch.tensor([[-1.0, -2.0, -3.0], [-5.0, -0.5, -9.0]])
    y = torch.tensor([0, 1])
    assert margin(z, y).tolist() == [1.0, 4.5]  # both correctly classified, by 1 and 4.5
    # torchattacks' CW margin max(onehot * Z) - max((1 - onehot) * Z) sees a 0 in place of every masked
    # logit: with all logits negative it is 0 for both samples (no signal), not 1 and 4.5
    theirs = torchattacks.CW(tiny_digits_model, kappa=0).f(z, y)
    assert theirs.tolist() == [0.0, 0.0]


def test_cw_is_invariant_to_a_logit_shift(tiny_digits_model, digits_eval):
    """Adding -100 to every logit (all negative) changes nothing for a correct margin."""
    x, y = digits_eval[0][:32], digits_eval[1][:32]

    class Shifted(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, t):
            return self.inner(t) - 100.0

    atk = create_attack("cw-l2", steps=20, search_steps=2, lr=0.05)
    a = atk.minimize(tiny_digits_model, x, y)
    b = atk.minimize(Shifted(tiny_digits_model), x, y)
    assert a.success.sum() > 10
    assert torch.equal(a.success, b.success)
    assert torch.allclose(a.norms[a.success], b.norms[b.success], atol=1e-3)


def test_cw_thresholds_and_exposes_norms(tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:48], digits_eval[1][:48]
    model = tiny_digits_model
    atk = create_attack("cw-l2", steps=30, search_steps=3, lr=0.05, threshold=0.6)
    res = atk.minimize(model, x, y)
    x_adv = atk(model, x, y)
    out = atk.run(model, x, y)
    norms, success = out.raw_norms, torch.isfinite(out.raw_norms)
    assert torch.equal(out.x_adv, x_adv)
    assert torch.equal(norms, res.norms) and torch.equal(success, res.success)
    assert torch.isinf(norms[~success]).all() and torch.isfinite(norms[success]).all()
    with torch.no_grad():
        fooled_best = model(res.x_adv).argmax(1) != y
        fooled_out = model(x_adv).argmax(1) != y
    assert fooled_best[success].all()  # every successful image fools the model
    within = success & (norms <= 0.6)
    assert 0 < within.sum() < success.sum()  # the threshold matters at this budget
    assert torch.equal(x_adv[~within], x[~within])  # beyond the threshold: the clean image
    assert fooled_out[within].all()
    assert torch.allclose(perturbation_norm(x_adv, x, "l2")[within], norms[within], atol=1e-5)
    unbounded = create_attack("cw-l2", steps=30, search_steps=3, lr=0.05, threshold=None)
    assert torch.equal(unbounded(model, x, y), res.x_adv)


def test_cw_fixed_mode_and_lambda(tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:32], digits_eval[1][:32]
    report = create_attack("cw-l2", mode="fixed", c=1e-4, kappa=0.01, steps=20)  # the report's variant
    success = torch.isfinite(report.run(tiny_digits_model, x, y).raw_norms)
    assert success.float().mean() < 0.5  # c = 1e-4 barely weighs the margin
    strong = create_attack("cw-l2", mode="fixed", c=10.0, steps=50, lr=0.05, lam=1e-4, threshold=None)
    assert torch.isfinite(strong.run(tiny_digits_model, x, y).raw_norms).float().mean() > 0.8


# ----------------------------------------------------------------------------------------------- strength
def test_pgd_beats_noise_and_fgsm(tiny_digits_model, digits_eval):
    x, y = digits_eval
    m = tiny_digits_model
    kw = {"noise": {}, "fgsm": {}, "pgd-linf": {"alpha": 0.025}}  # 10 steps of alpha must reach eps
    acc = {n: robust_acc(m, create_attack(n, eps=0.1, **kw[n])(m, x, y), x, y) for n in kw}
    assert acc["pgd-linf"] <= acc["fgsm"] <= acc["noise"]
    assert acc["noise"] - acc["pgd-linf"] >= 0.1, acc  # 10 pp at least: measured ~20 pp
    l2 = robust_acc(m, create_attack("pgd-l2", eps=1.0)(m, x, y), x, y)
    assert l2 < acc["noise"] - 0.3


@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("name,eps", [("pgd-linf", 0.1), ("pgd-l2", 0.75)])
def test_first_success_early_stop_never_weaker(name, eps, random_start, tiny_digits_model, digits_eval):
    x, y = digits_eval
    m = tiny_digits_model
    out = {}
    for es in (False, True):
        atk = create_attack(name, eps=eps, random_start=random_start, early_stop=es)
        x_adv = atk(m, x, y, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            out[es] = m(x_adv).argmax(1) != y
    # per sample: whatever the last iterate fools, the first-success iterate fools too (same trajectories)
    assert (out[True] | ~out[False]).all()
    assert out[True].sum() >= out[False].sum()


def test_early_stop_shrinks_the_batch_and_spends_no_extra_forward(tiny_digits_model, digits_eval):
    x, y = digits_eval
    model = CountingModel(tiny_digits_model)
    create_attack("pgd-linf", eps=0.1, alpha=0.025, steps=10, early_stop=True)(model, x, y)
    sizes = model.sizes
    assert len(sizes) == 10  # one forward per step, the one that gives the gradient; no extra check
    assert sizes[0] == len(x) and all(a >= b for a, b in zip(sizes, sizes[1:], strict=False))
    assert sizes[-1] < len(x) * 0.9  # fooled samples left the batch
    model.sizes.clear()
    create_attack("pgd-linf", eps=0.1, steps=10, early_stop=False)(model, x, y)
    assert model.sizes == [len(x)] * 10  # the exact torchattacks iteration
    model.sizes.clear()
    create_attack("pgd-linf", eps=0.1, steps=10, restarts=2)(model, x, y)
    assert len(model.sizes) == 2 * 10 + 1  # with restarts: one forward on each final iterate but the last
    assert model.sizes[10] < len(x) and model.sizes[11] <= model.sizes[10]  # only the unfooled restart


def test_restarts_keep_the_first_success(tiny_digits_model, digits_eval):
    x, y = digits_eval
    m = tiny_digits_model
    one = create_attack("pgd-linf", eps=0.08, steps=5)(m, x, y)
    three = create_attack("pgd-linf", eps=0.08, steps=5, restarts=3)(m, x, y)
    with torch.no_grad():
        f1, f3 = m(one).argmax(1) != y, m(three).argmax(1) != y
    assert (f3 | ~f1).all()  # restart 1 is the same draw: its successes are kept
    assert perturbation_norm(three, x, "linf").max() <= 0.08 + 1e-6


def test_noise_samples_keep_the_first_fooling_draw(tiny_digits_model, digits_eval):
    x, y = digits_eval
    m = tiny_digits_model
    one = robust_acc(m, create_attack("noise", eps=0.25)(m, x, y), x, y)
    many = robust_acc(m, create_attack("noise", eps=0.25, samples=8)(m, x, y), x, y)
    gauss = create_attack("noise", eps=0.25, dist="gaussian")(m, x, y)
    assert many <= one
    assert perturbation_norm(gauss, x, "linf").max() <= 0.25 + 1e-6


def test_pgd_l2_random_start_inside_the_ball(digits_eval):
    x = digits_eval[0]
    atk = create_attack("pgd-l2", eps=0.5)
    start = atk._start(x, torch.Generator().manual_seed(0))
    assert perturbation_norm(start, x, "l2").max() <= 0.5 + 1e-5
    assert start.min() >= 0 and start.max() <= 1


# ----------------------------------------------------------------------------------------------- EOT
def test_eot_averages_over_passes(tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:16], digits_eval[1][:16]
    counting = CountingModel(tiny_digits_model)
    g1, _ = input_grad(counting, x, y, eot=1)
    g5, _ = input_grad(counting, x, y, eot=5)
    assert counting.sizes == [16] * 6
    assert torch.allclose(g1, g5, atol=1e-6)  # deterministic model: EOT changes nothing but the cost
    fgsm = create_attack("fgsm")(tiny_digits_model, x, y)
    assert torch.equal(create_attack("eot-fgsm", eot=4)(tiny_digits_model, x, y), fgsm)


def test_eot_reduces_gradient_noise_on_a_stochastic_model(tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:16], digits_eval[1][:16]
    noisy = NoisyModel(tiny_digits_model, sigma=0.2)
    assert is_stochastic(noisy, x) and not is_stochastic(tiny_digits_model, x)
    torch.manual_seed(0)
    ref, _ = input_grad(noisy, x, y, eot=400)

    def err(k: int) -> float:
        g, _ = input_grad(noisy, x, y, eot=k)
        return torch.nn.functional.cosine_similarity(g.flatten(1), ref.flatten(1)).mean().item()

    assert err(20) > err(1) + 0.1  # closer to the expected gradient
