"""What a suite is: :class:`Entry` (one column: label, registered attack name, parameters) and :class:`Suite`
(an ordered tuple of entries plus per-sample aggregates). Budgets in the parameters are in pixel units of
[0, 1] images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from honestbench.attacks import Attack, create_attack
from honestbench.core.errors import BenchError


@dataclass(frozen=True)
class Entry:
    """One column of a suite: its label (e.g. 'PGD'), the registered attack name and its parameters."""

    label: str
    attack: str
    params: dict = field(default_factory=dict)

    def build(self) -> Attack:
        """The configured attack instance (parameters validated by the attack)."""
        return create_attack(self.attack, **self.params)


#: what a stochastic model gets under a suite (:func:`honestbench.suites.model_suite`): ``flavour``: the
#: suite is rebuilt per model in its stochastic or deterministic flavour (``adaptive``); ``adaptive-columns``:
#: the adaptive suite's stochastic columns are added (``standard``); ``surrogate-twin``: the surrogate twin of
#: its PGD L-inf column is added, unless the suite already has an adaptive attack (every other suite)
STOCHASTIC_POLICIES = ("flavour", "adaptive-columns", "surrogate-twin")


@dataclass(frozen=True)
class ModelPolicy:
    """A suite's per-model policy as data: what a stochastic model gets (:data:`STOCHASTIC_POLICIES`),
    whether ``--threat-model`` / ``--eps`` may rescale it (``scalable``; a suite whose budgets are built per
    model may not) and whether it takes the adaptive strengths as parameters (``NAME:aa_eot=5``,
    ``parametrised``)."""

    stochastic: str = "surrogate-twin"
    scalable: bool = True
    parametrised: bool = False

    def __post_init__(self) -> None:
        if self.stochastic not in STOCHASTIC_POLICIES:
            raise ValueError(f"unknown stochastic policy {self.stochastic!r}; choose one of {STOCHASTIC_POLICIES}")


@dataclass(frozen=True)
class CertifySpec:
    """The bound columns a suite adds beside its attacks (:mod:`honestbench.engine.certified`): ``certified``,
    a sound lower bound by ``method`` (``crown``, ``ibp``, ``crown-ibp``; ``crown`` falls back to
    ``crown-ibp`` on a model with more than ``crown_max_relus`` ReLU neurons, and says so), and with
    ``exact_limit`` (seconds per image) ``exact``, the MILP's answer, on models of at most ``exact_max_relus``
    ReLU neurons. ``eps``: the L-inf budget in [0, 1] pixel units; None: the suite's L-inf attack budget."""

    method: str = "crown"
    exact_limit: float | None = None
    eps: float | None = None
    crown_max_relus: int = 20_000
    exact_max_relus: int = 1_000

    @classmethod
    def parse(cls, text: str) -> CertifySpec:
        """``--certify``'s value: ``crown``, ``ibp`` or ``crown-ibp``, optionally ``,exact=SECONDS``."""
        method, *rest = (p.strip() for p in text.split(","))
        if method not in ("crown", "ibp", "crown-ibp"):
            raise BenchError(f"--certify {text!r}: the method is crown, ibp or crown-ibp (e.g. crown,exact=10)")
        limit = None
        for part in rest:
            key, _, value = part.partition("=")
            try:
                limit = float(value) if key == "exact" else None
            except ValueError:
                limit = None
            if limit is None or limit <= 0:
                raise BenchError(f"--certify {text!r}: expected exact=SECONDS (> 0) after the method")
        return cls(method, limit)


@dataclass(frozen=True)
class Suite:
    """An ordered list of entries, named per-sample aggregates (label -> member labels), the default number of
    images (None: every image), whether its columns must be measured independently (full matrix) and the
    suite parameters it was built with (``adaptive:aa_eot=5``: only those that differ from the defaults), and
    its per-model :class:`ModelPolicy`, and the bound columns it adds (:class:`CertifySpec`, None: none)."""

    name: str
    description: str
    entries: tuple[Entry, ...]
    aggregates: dict = field(default_factory=dict)
    default_n: int | None = None
    full_matrix: bool = False
    params: dict = field(default_factory=dict)
    policy: ModelPolicy = field(default_factory=ModelPolicy)
    certify: CertifySpec | None = None

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entries]

    def attacks(self) -> dict[str, Attack]:
        """``{label: Attack}`` in suite order."""
        return {e.label: e.build() for e in self.entries}
