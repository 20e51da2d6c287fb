"""Attack registry: a name is the whole interface (``create_attack('pgd-linf', eps=8/255)``)."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch

from bench.attacks.base import Attack
from bench.core.errors import AttackConfigError

_REGISTRY: dict[str, tuple[type[Attack], dict[str, object]]] = {}


def register_attack(name: str, **defaults: object):
    """Class decorator (or plain call) registering ``cls`` under ``name`` with overridden defaults."""

    def deco(cls: type[Attack]) -> type[Attack]:
        if name in _REGISTRY:
            raise ValueError(f"attack {name!r} registered twice")
        _REGISTRY[name] = (cls, dict(defaults))
        return cls

    return deco


def suggest(name: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.4)
    return f" (did you mean {close[0]!r}?)" if close else ""


def attack_names(pattern: str = "*") -> list[str]:
    """Registered attack names matching a shell-style pattern, sorted."""
    _import_all()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def attack_defaults(name: str) -> dict[str, object]:
    """Default parameters of registered attack ``name``."""
    cls, defaults = _lookup(name)
    out = {f.name: f.default for f in dataclasses.fields(cls)}
    out.update(defaults)
    return out


def create_attack(name: str, **params: object) -> Attack:
    """Build the attack registered as ``name``; ``params`` override its defaults."""
    cls, defaults = _lookup(name)
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
    _import_all()
    if name not in _REGISTRY:
        hint = suggest(name, list(_REGISTRY))
        raise AttackConfigError(f"unknown attack {name!r}{hint}; see `bench list attacks`")
    return _REGISTRY[name]


def _import_all() -> None:
    # importing the modules runs their @register_attack decorators
    from bench.attacks import adaptive, autoattack, cw, eot, fgsm, noise, pgd  # noqa: F401
