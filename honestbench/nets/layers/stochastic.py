"""Stochastic layers: the base class of every layer whose output is random, and the model-wide switches
over them (:func:`surrogate`, :func:`is_stochastic`). Randomness comes from torch's global RNG."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


class StochasticLayer(nn.Module):
    """Base class of every layer whose output is random (at train and/or test time).

    Each such layer has a smooth deterministic *surrogate* mode (``self.surrogate_temperature`` not None),
    switched model-wide by :func:`surrogate`. ``stochastic_at_eval()`` says whether the layer is still
    random in ``eval()`` mode (what :func:`is_stochastic` checks).
    """

    surrogate_temperature: float | None = None

    @property
    def in_surrogate(self) -> bool:
        return self.surrogate_temperature is not None

    def stochastic_at_eval(self) -> bool:
        return True


def stochastic_layers(model: nn.Module) -> list[StochasticLayer]:
    """Every stochastic layer of ``model`` (LWTA, PNI, IBP, smoothing)."""
    return [m for m in model.modules() if isinstance(m, StochasticLayer)]


def is_stochastic(model: nn.Module) -> bool:
    """True when some layer of ``model`` is random in ``eval()`` mode (and not in surrogate mode)."""
    return any(m.stochastic_at_eval() and not m.in_surrogate for m in stochastic_layers(model))


@contextmanager
def surrogate(model: nn.Module, temperature: float = 1.0) -> Iterator[nn.Module]:
    """Within the block every stochastic layer of ``model`` runs its smooth deterministic surrogate:
    LWTA ``h * softmax(h_block / temperature)`` (no Gumbel noise; T = 1 is the expected output of the
    hard-sampling layer), PNI and IBP without noise, smoothing without noise. Restored on exit."""
    if temperature <= 0:
        raise ValueError("surrogate temperature must be > 0")
    layers = stochastic_layers(model)
    saved = [m.surrogate_temperature for m in layers]
    for m in layers:
        m.surrogate_temperature = float(temperature)
    try:
        yield model
    finally:
        for m, t in zip(layers, saved, strict=True):
            m.surrogate_temperature = t
