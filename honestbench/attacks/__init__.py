"""Own attack kernels, one per module. ``create_attack(name, **params)`` builds one; ``attack_names()`` lists
them; ``roles_of(name)`` / ``names_with_role(role)`` say what each is for the diagnostics.

Discovery: importing this package imports every module in it, so a new file registers its attacks with
``@register_attack`` and needs no entry anywhere else. Images are float32 NCHW with pixels in [0, 1]; budgets
are in the same units.
"""

import importlib
import pkgutil

from honestbench.attacks.base import ROLES, Attack, frozen_eval, input_grad, margin, perturbation_norm
from honestbench.attacks.registry import (
    attack_class,
    attack_defaults,
    attack_names,
    create_attack,
    names_with_role,
    register_attack,
    roles_of,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
del _module

__all__ = [
    "ROLES",
    "Attack",
    "attack_class",
    "attack_defaults",
    "attack_names",
    "create_attack",
    "frozen_eval",
    "input_grad",
    "margin",
    "names_with_role",
    "perturbation_norm",
    "register_attack",
    "roles_of",
]
