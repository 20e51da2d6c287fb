"""The contract every registered attack keeps (adaptive and AutoAttack included, and any attack a new file in
honestbench/attacks registers): output of the input's shape, dtype and device, pixels in [0, 1], within the budget;
the model's parameters, ``requires_grad`` flags and train/eval mode untouched; the caller's global RNG untouched.
Also: each attack's cost and roles, and discovery.

Model: the tiny digits CNN of conftest, with cheap attack settings (a few steps, EOT 2), so every attack runs
in well under a second.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import pkgutil
import sys
from pathlib import Path

import pytest
import torch

import honestbench.attacks
from honestbench.attacks import attack_defaults, attack_names, create_attack, names_with_role, register_attack, roles_of
from honestbench.attacks.base import BUDGET_TOL, ROLES, Attack, perturbation_norm
from honestbench.attacks.registry import ATTACKS
from honestbench.attacks.transfer import register_transfer_source

#: the source model name transfer attacks use here (registered in memory by the ``source`` fixture)
SOURCE = "contract-src"
#: cheap values for whichever of these fields an attack has
CHEAP = {"steps": 2, "eot": 2, "search_steps": 2, "n_queries": 10, "samples": 2, "source": SOURCE}


def cheap(name: str, **kw: object) -> Attack:
    """``name`` with :data:`CHEAP` settings for the fields it has, then ``kw``."""
    fields = attack_defaults(name)
    return create_attack(name, **{**{k: v for k, v in CHEAP.items() if k in fields}, **kw})


@pytest.fixture(scope="module", autouse=True)
def source(tiny_digits_model):
    register_transfer_source(SOURCE, copy.deepcopy(tiny_digits_model))
    yield SOURCE
    register_transfer_source(SOURCE, None)


def within_budget(attack: Attack, x_adv: torch.Tensor, x: torch.Tensor) -> bool:
    if attack.budget is None or attack.norm not in ("linf", "l2") or x.numel() == 0:
        return True
    slack = BUDGET_TOL * (1 if attack.norm == "linf" else 10)
    return perturbation_norm(x_adv, x, attack.norm).max().item() <= attack.budget + slack


def model_state(model: torch.nn.Module) -> tuple:
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            [m.training for m in model.modules()])


def assert_untouched(model: torch.nn.Module, before: tuple) -> None:
    state, flags, modes = before
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed"
    for n, p in model.named_parameters():
        assert p.requires_grad is flags[n], f"{n}: requires_grad changed"
        assert p.grad is None, f"{n} got a parameter gradient"
    assert [m.training for m in model.modules()] == modes, "train/eval mode changed"


def mixed_model(tiny: torch.nn.Module, training: bool) -> torch.nn.Module:
    """A copy of ``tiny`` in ``training`` mode with every other parameter requiring grad."""
    model = copy.deepcopy(tiny).train(training)
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(i % 2 == 0)
    return model


# ----------------------------------------------------------------------------------------------- contract
@pytest.mark.parametrize("name", attack_names())
@pytest.mark.parametrize("training", [True, False])
def test_output_contract_and_model_untouched(name, training, tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:16], digits_eval[1][:16]
    model = mixed_model(tiny_digits_model, training)
    before = model_state(model)
    attack = cheap(name)
    rng = torch.get_rng_state()
    x_adv = attack(model, x, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), rng), "the global RNG moved"
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert within_budget(attack, x_adv, x)
    assert not x_adv.requires_grad
    assert_untouched(model, before)


@pytest.mark.parametrize("name", attack_names())
def test_deterministic_with_a_seeded_generator(name, tiny_digits_model, digits_eval):
    x, y = digits_eval[0][:8], digits_eval[1][:8]
    attack = cheap(name)
    runs = [attack(tiny_digits_model, x, y, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


# ----------------------------------------------------------------------------------------------- cost
def test_each_attack_states_its_cost():
    """Forward+backward passes per image: 0.5 without gradients, 1 for a single step, steps x restarts x EOT x
    search rounds otherwise (the defaults, and a few overrides)."""
    expected = {"fgsm": 1, "eot-fgsm": 1, "noise": 0.5, "pgd-linf": 10, "pgd-l2": 20, "eot-pgd-linf": 200,
                "cw-l2": 900, "autoattack": 100, "autoattack-rand": 2000, "surrogate-pgd": 100,
                "bpda-pgd": 500, "transfer-pgd": 20}
    assert {n: create_attack(n).cost() for n in expected} == expected
    assert set(expected) <= set(attack_names())
    assert create_attack("cw-l2", mode="fixed", steps=50).cost() == 50
    assert create_attack("pgd-linf", steps=7, restarts=3, eot=2).cost() == 42
    assert create_attack("surrogate-pgd", steps=5, restarts=2).cost() == 10
    assert create_attack("bpda-pgd", steps=5, restarts=2, eot=3).cost() == 30
    assert create_attack("autoattack-rand", steps=5, eot=4).cost() == 20
    assert create_attack("eot-fgsm", eot=7).cost() == 1
    assert all(isinstance(create_attack(n).cost(), float) for n in attack_names())


# ----------------------------------------------------------------------------------------------- roles
def test_roles_give_the_diagnostics_kernel_sets():
    """``names_with_role`` reproduces the diagnostics' former kernel lists exactly."""
    assert names_with_role("single-step") == {"fgsm", "eot-fgsm"}
    assert names_with_role("iterative") == {"pgd-linf", "eot-pgd-linf"}
    assert names_with_role("white-box") == {"fgsm", "eot-fgsm", "pgd-linf", "eot-pgd-linf", "pgd-l2",
                                            "autoattack", "autoattack-rand"}
    assert names_with_role("adaptive") == {"surrogate-pgd", "bpda-pgd", "transfer-pgd", "bpda-st", "square"}
    assert names_with_role("autoattack") == {"autoattack", "autoattack-rand"}
    assert names_with_role("own") == {"fgsm", "eot-fgsm", "pgd-linf", "eot-pgd-linf", "pgd-l2",
                                      "surrogate-pgd", "bpda-pgd", "bpda-st"}
    assert names_with_role("eot") == {"fgsm", "eot-fgsm", "pgd-linf", "eot-pgd-linf", "pgd-l2", "autoattack",
                                      "autoattack-rand", "bpda-pgd", "cw-l2"}
    assert roles_of("noise") == frozenset()
    assert roles_of("pgd-linf") == frozenset({"iterative", "white-box", "own", "eot"})
    with pytest.raises(ValueError, match="unknown attack role"):
        names_with_role("black-box")


def test_roles_at_registration_override_the_class(monkeypatch):
    """Two names on one class can have different roles; an unknown role is a programming error."""
    monkeypatch.setattr(ATTACKS, "_entries", dict(ATTACKS._entries))  # registrations undone after the test
    cls = ATTACKS.get("pgd-linf").cls
    register_attack("pgd-linf-probe", roles={"white-box"}, steps=3)(cls)
    assert roles_of("pgd-linf-probe") == frozenset({"white-box"})
    assert "pgd-linf-probe" in names_with_role("white-box") and "pgd-linf-probe" not in names_with_role("own")
    assert create_attack("pgd-linf-probe").steps == 3 and roles_of("pgd-linf") == cls.roles
    with pytest.raises(ValueError, match="unknown role 'gray-box'"):
        register_attack("pgd-linf-probe2", roles={"gray-box"})(cls)
    assert set(ROLES) == {r for n in attack_names() for r in roles_of(n)}  # every role is used


def test_a_new_attacks_own_fields_are_validated_by_their_declared_rule():
    """No name list: a float field must be >= 0, an int field a count, a param(...) its own rule."""
    import dataclasses

    from honestbench.attacks.base import Attack
    from honestbench.attacks.params import param
    from honestbench.core.errors import AttackConfigError

    @dataclasses.dataclass
    class Probe(Attack):
        name = "probe"
        radius: float = 0.1
        rounds: int = 2
        temperature: float = param(1.0, rule="positive")
        schedule: str = param("cosine", choices=("cosine", "step"))

    Probe()
    for kw, text in (({"radius": -1.0}, "radius must be >= 0"), ({"rounds": 0}, "rounds must be an integer >= 1"),
                     ({"temperature": 0.0}, "temperature must be > 0"), ({"schedule": "x"}, "unknown schedule 'x'")):
        with pytest.raises(AttackConfigError, match=text):
            Probe(**kw)


# ----------------------------------------------------------------------------------------------- discovery
def test_every_module_of_the_package_is_imported_and_registry_is_a_leaf():
    """Discovery imports every module of honestbench/attacks; the registry imports only the base class and core."""
    for mod in pkgutil.iter_modules(honestbench.attacks.__path__):
        assert f"honestbench.attacks.{mod.name}" in sys.modules, mod.name
    tree = ast.parse(Path(sys.modules["honestbench.attacks.registry"].__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    bench_imports = {m for m in imported if m and m.startswith("honestbench")}
    assert all(m == "honestbench.attacks.base" or m.startswith("honestbench.core.")
               for m in bench_imports), bench_imports


def test_every_attack_is_a_dataclass_with_a_description():
    for name in attack_names():
        cls = ATTACKS.get(name).cls
        assert dataclasses.is_dataclass(cls) and issubclass(cls, Attack), name
        assert cls.description, name
