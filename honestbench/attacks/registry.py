"""Attack registry: a name is the whole interface (``create_attack('pgd-linf', eps=EPS_LINF)``).

Built on :class:`honestbench.core.registry.Registry`. Every module of :mod:`honestbench.attacks` is imported by the
package's ``__init__`` (discovery), so an attack registers itself with :func:`register_attack` in its own file;
this module names no attack. Each registered name carries its roles (:data:`ROLES`), which the diagnostics
read through :func:`names_with_role` instead of keeping name lists of their own.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from honestbench.attacks.base import ROLES, Attack
from honestbench.core.errors import AttackConfigError
from honestbench.core.registry import Registry
from honestbench.core.registry import suggest as _suggest


class Registered(NamedTuple):
    """One registered name: its class, the defaults it overrides and its roles."""

    cls: type[Attack]
    defaults: dict[str, object]
    roles: frozenset[str]


ATTACKS: Registry[Registered] = Registry("attack", AttackConfigError, hint="see `bench list attacks`")


def register_attack(name: str, roles: frozenset[str] | set[str] | tuple[str, ...] | None = None,
                    **defaults: object):
    """Class decorator registering ``cls`` under ``name`` with overridden ``defaults``. ``roles``, when given,
    are this name's roles (for two names sharing one class); otherwise the class's ``roles``."""

    def deco(cls: type[Attack]) -> type[Attack]:
        own = frozenset(cls.roles if roles is None else roles)
        unknown = sorted(own - set(ROLES))
        if unknown:
            raise ValueError(f"attack {name!r}: unknown role {unknown[0]!r}; roles: {', '.join(ROLES)}")
        ATTACKS.add(name, Registered(cls, dict(defaults), own))
        return cls

    return deco


def suggest(name: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string (a looser match than the
    registry's own: cutoff 0.4)."""
    return _suggest(name, choices, cutoff=0.4)


def attack_names(pattern: str = "*") -> list[str]:
    """Registered attack names matching a shell-style pattern, sorted."""
    return ATTACKS.names(pattern)


def attack_class(name: str) -> type[Attack]:
    """The class registered as ``name`` (its ``norm`` and ``description`` describe the attack)."""
    return ATTACKS.get(name).cls


def attack_defaults(name: str) -> dict[str, object]:
    """Default parameters of registered attack ``name``."""
    cls, defaults, _ = ATTACKS.get(name)
    out = {f.name: f.default for f in dataclasses.fields(cls)}
    out.update(defaults)
    return out


def roles_of(name: str) -> frozenset[str]:
    """The roles of registered attack ``name`` (a subset of :data:`ROLES`)."""
    return ATTACKS.get(name).roles


def names_with_role(role: str) -> set[str]:
    """The registered attack names that have ``role`` (one of :data:`ROLES`)."""
    if role not in ROLES:
        raise ValueError(f"unknown attack role {role!r}; roles: {', '.join(ROLES)}")
    return {name for name, entry in ATTACKS.items() if role in entry.roles}


def create_attack(name: str, **params: object) -> Attack:
    """Build the attack registered as ``name``; ``params`` override its defaults."""
    cls, defaults, _ = ATTACKS.get(name)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise AttackConfigError(
            f"{name}: unknown parameter {unknown[0]!r}{suggest(unknown[0], sorted(known))}; "
            f"parameters: {', '.join(sorted(known))}"
        )
    attack = cls(**{**defaults, **params})
    attack.name = name  # instance attribute: the registered name, e.g. 'eot-pgd-linf'
    return attack


def _lookup(name: str) -> tuple[type[Attack], dict[str, object]]:
    """``(class, overridden defaults)`` of ``name`` (for ``bench list attacks``)."""
    cls, defaults, _ = ATTACKS.get(name)
    return cls, defaults
