"""What a suite is: :class:`Entry` (one column: label, registered attack name, parameters) and :class:`Suite`
(an ordered tuple of entries plus per-sample aggregates). Budgets in the parameters are in pixel units of
[0, 1] images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from honestbench.attacks import Attack, create_attack


@dataclass(frozen=True)
class Entry:
    """One column of a suite: its label (e.g. 'PGD'), the registered attack name and its parameters."""

    label: str
    attack: str
    params: dict = field(default_factory=dict)

    def build(self) -> Attack:
        """The configured attack instance (parameters validated by the attack)."""
        return create_attack(self.attack, **self.params)


@dataclass(frozen=True)
class Suite:
    """An ordered list of entries, named per-sample aggregates (label -> member labels), the default number of
    images (None: every image), whether its columns must be measured independently (full matrix) and the
    suite parameters it was built with (``adaptive:aa_eot=5``: only those that differ from the defaults)."""

    name: str
    description: str
    entries: tuple[Entry, ...]
    aggregates: dict = field(default_factory=dict)
    default_n: int | None = None
    full_matrix: bool = False
    params: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entries]

    def attacks(self) -> dict[str, Attack]:
        """``{label: Attack}`` in suite order."""
        return {e.label: e.build() for e in self.entries}


def attack_cost(attack: Attack) -> float:
    """Rough cost in forward+backward passes per image, used to order the early-exit cascade (cheapest
    first): the attack's own :meth:`~honestbench.attacks.Attack.cost`."""
    return attack.cost()
