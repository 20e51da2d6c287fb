"""The bound-method registry: each method is a file of :mod:`honestbench.certify` registering a function
``(graph, x, y, eps) -> lower bounds of the margins f_y - f_j, shape (N, classes), +inf at column y``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

import torch

from honestbench.certify.graph import Graph
from honestbench.core.errors import BenchError
from honestbench.core.registry import Registry

BoundFn = Callable[[Graph, torch.Tensor, torch.Tensor, float], torch.Tensor]


def _discover() -> None:
    import honestbench.certify as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"honestbench.certify.{info.name}")


BOUND_METHODS: Registry[BoundFn] = Registry("bound method", BenchError,
                                            hint="each bound method is a file in honestbench/certify/",
                                            discover=_discover)


def register_bound(name: str) -> Callable[[BoundFn], BoundFn]:
    """Decorator registering a bound method under ``name``."""
    return BOUND_METHODS.register(name)
