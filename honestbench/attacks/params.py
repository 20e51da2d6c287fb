"""An attack's parameters declare their rules: :func:`param` (dataclass field metadata) or, without it, the
field's annotation (:func:`field_rule`); :meth:`honestbench.attacks.base.Attack.validate` checks every field by
its rule (:func:`check_field`), so a new attack's own parameters are validated without naming them anywhere.
Numbers are in the attack's units (budgets in pixel units of [0, 1])."""

from __future__ import annotations

import dataclasses
from typing import Any

from honestbench.core.errors import AttackConfigError

#: the largest count (steps, restarts, EOT passes, queries) an attack accepts: beyond it a typo, not a setting
MAX_COUNT = 10**9
#: what a parameter rule checks: a number >= 0 (NaN rejected), a number > 0, an integer >= 1, one of a few words
RULES = ("non-negative", "positive", "count", "choice")


def param(default: object, *, rule: str | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field for an attack parameter that declares its rule (:data:`RULES`; ``choices`` makes it
    ``choice``): ``eps: float = param(8 / 255, rule="positive")``. Without one, :func:`field_rule` reads the
    annotation."""
    if rule is not None and rule not in RULES:
        raise ValueError(f"unknown parameter rule {rule!r}; rules: {', '.join(RULES)}")
    meta = {"rule": "choice" if choices is not None else rule, "choices": tuple(choices or ())}
    return dataclasses.field(default=default, metadata=meta)


def field_rule(f: dataclasses.Field, choices: dict[str, tuple[str, ...]] | None = None
               ) -> tuple[str | None, tuple[str, ...]]:
    """``(rule, choices)`` of an attack field: its :func:`param` metadata; else a number (``float``) must be
    non-negative, a whole number (``int``) a count >= 1, and a text field listed in the class's ``choices``
    one of them; anything else is not checked here (the attack's own ``validate`` may)."""
    if f.metadata.get("rule"):
        return f.metadata["rule"], tuple(f.metadata.get("choices", ()))
    kinds = {t.strip() for t in str(getattr(f.type, "__name__", f.type)).split("|")} - {"None"}
    if kinds == {"float"}:
        return "non-negative", ()
    if kinds == {"int"}:
        return "count", ()
    if kinds == {"str"} and choices and f.name in choices:
        return "choice", tuple(choices[f.name])
    return None, ()


def check_field(attack: str, key: str, v: object, rule: str | None, choices: tuple[str, ...]) -> None:
    """One-line :class:`AttackConfigError` (naming ``attack`` and ``key``) when ``v`` breaks ``rule`` (None
    values are never checked)."""
    if v is None or rule is None:
        return
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    if rule == "non-negative" and not (number and v >= 0):  # also rejects NaN
        raise AttackConfigError(f"{attack}: {key} must be >= 0, got {v}: give a non-negative number")
    if rule == "positive" and not (number and v > 0):
        raise AttackConfigError(f"{attack}: {key} must be > 0, got {v}: give a positive number")
    if rule == "count" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise AttackConfigError(f"{attack}: {key} must be an integer >= 1, got {v!r}: give a whole "
                                "number >= 1")
    if rule == "count" and v > MAX_COUNT:
        raise AttackConfigError(f"{attack}: {key} must be at most {MAX_COUNT}, got {v}: give a smaller count")
    if number and rule in ("non-negative", "positive") and v == float("inf"):
        raise AttackConfigError(f"{attack}: {key} must be finite, got {v}: give a finite number")
    if rule == "choice" and v not in choices:
        raise AttackConfigError(f"{attack}: unknown {key} {v!r}, choose one of {choices}")
