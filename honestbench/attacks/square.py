"""``square``: the Square attack (Andriushchenko et al. 2020), gradient-free random search, through
torchattacks' implementation as in :mod:`honestbench.attacks.autoattack` (seeded from our generator, the caller's
RNG untouched). It needs only the model's predictions, so masked, zero or missing gradients do not stop it: the
harness runs it on models whose gradients the preflight found useless. ``norm`` 'linf' (``eps`` default
8/255) or 'l2' (0.5); pixels in [0, 1], ``eps`` in the same units; ``n_queries`` forward passes per image.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from honestbench.attacks.autoattack import AutoAttack
from honestbench.attacks.registry import register_attack
from honestbench.core.errors import AttackConfigError


@register_attack("square")
@dataclasses.dataclass
class Square(AutoAttack):
    """Square attack alone (AutoAttack's black-box component), ``n_queries`` queries, one restart."""

    name: ClassVar[str] = "square"
    description: ClassVar[str] = "Square attack (gradient-free random search, torchattacks)"
    roles: ClassVar[frozenset[str]] = frozenset({"adaptive"})

    components: str = "square"
    precision: str = "fp32"

    def validate(self) -> None:
        super().validate()
        if self.component_list() != ["square"]:
            raise AttackConfigError(f"{self.name}: components must be 'square', got {self.components!r}")

    def cost(self) -> float:
        """A query is one forward pass, about a third of a forward+backward pass."""
        return self.n_queries / 3
