"""A model to evaluate, as one type wherever it comes from (a zoo card, a user's card or model spec, a module
in hand): :class:`ModelSource` (its name, a loader, the facts its records carry) and :class:`ModelFacts`
(those facts, written into ``cells/<model>/model.json``). Torch-free: the loader is only called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from honestbench.zoo.cards import Card


@dataclass(frozen=True)
class ModelFacts:
    """What a run records about a model: ``checkpoint_sha256`` (the weights' sha256, which ``bench check``
    compares), ``stochastic`` (the card says so; None: detected by two forward passes), ``description``,
    ``data`` (its dataset), ``source`` (how ``bench check`` rebuilds it: ``{"zoo": name}``, ``{"card": path}``
    or ``{"spec": ..., "weights": ..., "normalize": ...}``) and a user card's ``paper``, ``venue``,
    ``reported`` (accuracies its authors report) and ``num_classes``; ``training`` marks an incompletely
    trained card (:attr:`~honestbench.zoo.cards.Card.training`); ``evaluated_as`` says what was attacked when it
    was not the model as built (:func:`honestbench.zoo.loading.evaluation_model`'s inference copy). Unset
    (None) facts are not written."""

    checkpoint_sha256: str = ""
    stochastic: bool | None = None
    description: str | None = None
    data: str | None = None
    source: dict | None = None
    paper: str | None = None
    venue: str | None = None
    reported: dict | None = None
    num_classes: int | None = None
    training: str | None = None  # '2/30 epochs' for a card trained for fewer epochs than its recipe
    evaluated_as: str | None = None  # what was attacked when it was not the model as built (its inference copy)

    def to_json(self) -> dict[str, Any]:
        """The facts as JSON-able data, in field order, unset ones left out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelFacts:
        """The facts of a ``model.json`` (other keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ModelSource:
    """A model to evaluate: its ``name`` (the records' ``model``), ``load`` (``device -> nn.Module`` in eval
    mode, called once, lazily), its :class:`ModelFacts`, and the :class:`~honestbench.zoo.cards.Card` it comes
    from, if any."""

    name: str
    load: Callable[[torch.device], nn.Module]
    facts: ModelFacts = field(default_factory=ModelFacts)
    card: Card | None = None

    @classmethod
    def of(cls, name: str, model: nn.Module, **facts: Any) -> ModelSource:
        """A module already in hand (moved to the run's device when loaded), with ``facts``."""
        return cls(name, lambda device: model.to(device), ModelFacts(**facts))


__all__ = ["ModelFacts", "ModelSource"]
