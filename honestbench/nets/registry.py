"""The two name -> factory registries of :mod:`honestbench.nets`: backbones and defence layers.

A backbone registers itself with :func:`register_backbone` in its own file of :mod:`honestbench.nets.backbones`; a
defence layer (an activation such as ``lwta``, or a conv / linear pair such as ``pni``) with
:func:`register_layer` in its own file of :mod:`honestbench.nets.layers`. Each subpackage imports all its modules
(:func:`import_submodules`), so a new backbone or layer is one new file. Model cards name them: ``backbone``,
``[defence] activation`` and ``[defence] layers``.

Factories: ``act(channels) -> nn.Module``; ``conv(in, out, kernel_size, stride=1, padding=0, bias=True)``
with ``nn.Conv2d``'s signature; ``linear(in, out, bias=True)`` with ``nn.Linear``'s signature.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Callable
from functools import partial

from torch import nn

from honestbench.core.errors import ModelCardError
from honestbench.core.registry import Registry

ActFactory = Callable[[int], nn.Module]
ConvFactory = Callable[..., nn.Module]
LinearFactory = Callable[..., nn.Module]


@dataclasses.dataclass(frozen=True)
class LayerFactories:
    """What one defence layer provides: an activation factory, or conv and linear factories."""

    act: ActFactory | None = None
    conv: ConvFactory | None = None
    linear: LinearFactory | None = None


def import_submodules(package: str) -> None:
    """Import every module of ``package`` (a subpackage's ``__init__`` calls it: discovery of the modules
    whose decorators fill the registries)."""
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{info.name}")


BACKBONES: Registry[Callable[..., nn.Module]] = Registry(
    "backbone", ModelCardError, hint="each backbone is a file in honestbench/nets/backbones/",
    discover=lambda: import_submodules("honestbench.nets.backbones"))
DEFENCE_LAYERS: Registry[Callable[..., LayerFactories]] = Registry(
    "defence layer", ModelCardError, hint="each defence layer is a file in honestbench/nets/layers/",
    discover=lambda: import_submodules("honestbench.nets.layers"))
#: backbone families named by a pattern (``wrn-D-W``): registered name -> regex whose named groups are
#: integer constructor arguments
_FAMILIES: dict[str, re.Pattern[str]] = {}


def register_backbone(name: str, pattern: str | None = None) -> Callable:
    """Decorator registering a backbone class (or builder) under ``name``. ``pattern``: ``name`` is a family
    (e.g. ``wrn-D-W``) and a name matching the regex ``pattern`` (fully) builds a member, its named groups
    passed as integer keyword arguments (``wrn-34-10`` -> ``depth=34, width=10``)."""

    def deco(obj: Callable) -> Callable:
        BACKBONES.add(name, obj)
        if pattern is not None:
            _FAMILIES[name] = re.compile(pattern)
        return obj

    return deco


def register_layer(name: str) -> Callable:
    """Decorator registering a defence layer: a function of the card's layer arguments (``act_args`` or
    ``layer_args``) returning the :class:`LayerFactories` it provides."""
    return DEFENCE_LAYERS.register(name)


def backbone_names(pattern: str = "*") -> list[str]:
    """Registered backbone names (families by their pattern name, e.g. ``wrn-D-W``), sorted."""
    return BACKBONES.names(pattern)


def build_backbone(name: str, **kw: object) -> nn.Module:
    """Backbone by name; ``kw`` go to its constructor (in_channels, num_classes, act, conv, linear, ...).
    An unknown name raises :class:`~honestbench.core.errors.ModelCardError` naming the closest one."""
    BACKBONES.names()  # discovery: fills the families too
    for family, rx in _FAMILIES.items():
        m = rx.fullmatch(name)
        if m:
            return BACKBONES.get(family)(**{k: int(v) for k, v in m.groupdict().items()}, **kw)
    if name in _FAMILIES:
        raise ModelCardError(f"backbone {name!r} is a family: name a member, its capital letters replaced by numbers")
    return BACKBONES.get(name)(**kw)


def bind(factory: Callable, kw: dict) -> Callable:
    """``factory`` with keyword arguments ``kw`` bound (``factory`` itself when there are none)."""
    return partial(factory, **kw) if kw else factory


def act_factory(name: str = "relu", **kw: object) -> ActFactory:
    """Activation factory of defence layer ``name`` (``relu``, ``lwta``, ...); ``kw`` go to the layer."""
    act = DEFENCE_LAYERS.get(name)(**kw).act
    if act is None:
        raise ModelCardError(f"defence layer {name!r} is not an activation: it goes in [defence] layers")
    return act


def layer_factories(kind: str = "plain", **kw: object) -> tuple[ConvFactory, LinearFactory]:
    """(conv, linear) factories of defence layer ``kind`` (``plain``, ``pni``, ``ibp``, ...)."""
    made = DEFENCE_LAYERS.get(kind)(**kw)
    if made.conv is None or made.linear is None:
        raise ModelCardError(f"defence layer {kind!r} has no conv / linear layers: it goes in [defence] activation")
    return made.conv, made.linear
