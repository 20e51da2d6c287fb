"""Own attack kernels. ``create_attack(name, **params)`` builds one; ``attack_names()`` lists them."""

from bench.attacks.base import Attack, frozen_eval, input_grad, margin, perturbation_norm
from bench.attacks.registry import attack_defaults, attack_names, create_attack, register_attack

__all__ = [
    "Attack",
    "attack_defaults",
    "attack_names",
    "create_attack",
    "frozen_eval",
    "input_grad",
    "margin",
    "perturbation_norm",
    "register_attack",
]
