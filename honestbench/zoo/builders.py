"""A user's own architecture, named by text: ``FILE.py:builder`` or ``pkg.module:builder`` (a callable that
returns an ``nn.Module``), a TorchScript file (``torch.jit.save``) or a ``torch.export`` program (``.pt2``).

What is built takes float32 NCHW images with pixels in [0, 1] (normalisation inside the model, or added by a
card's ``normalize = {mean, std}``: :func:`with_normalize`) and returns logits. Every failure is one line
(:class:`honestbench.core.errors.ModelCardError`) naming the spec and the fix.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from honestbench.core.errors import ModelCardError
from honestbench.nets import Normalize

#: file suffixes read as a whole saved model (no builder): TorchScript and torch.export programs
SCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript")
EXPORT_SUFFIXES = (".pt2",)


def split_builder(spec: str) -> tuple[str, str]:
    """``"path/to/file.py:fn"`` or ``"pkg.mod:fn"`` -> (module part, function name); one-line error otherwise."""
    module, sep, fn = spec.rpartition(":")
    if not sep or not module or not fn.isidentifier():
        raise ModelCardError(f"builder {spec!r}: expected FILE.py:function or package.module:function")
    return module, fn


def import_builder(spec: str, base: Path | None = None) -> Callable[..., nn.Module]:
    """The callable named by ``spec`` (``FILE.py:fn``, relative paths from ``base`` or the working folder; or
    ``pkg.mod:fn`` importable from ``sys.path``)."""
    module_part, fn = split_builder(spec)
    if module_part.endswith(".py"):
        path = Path(module_part).expanduser()
        if not path.is_absolute() and base is not None and (base / path).is_file():
            path = base / path
        path = path.resolve()
        if not path.is_file():
            raise ModelCardError(f"builder {spec!r}: file {path} does not exist: check the path "
                                 "(relative paths are from the card's folder)")
        mod_name = "bench_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(mod_name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.path.insert(0, str(path.parent))  # the file may import its neighbours
            try:
                loader_spec.loader.exec_module(module)
            except Exception as e:
                raise ModelCardError(f"builder {spec!r}: importing {path} failed ({type(e).__name__}: {e})") from None
            finally:
                sys.path.remove(str(path.parent))
            sys.modules[mod_name] = module
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as e:
            raise ModelCardError(f"builder {spec!r}: cannot import {module_part!r} ({e}); install the package "
                                 "or add its folder to PYTHONPATH, or name the file: path/to/file.py:function"
                                 ) from None
    builder = getattr(module, fn, None)
    if not callable(builder):
        raise ModelCardError(f"builder {spec!r}: {module_part} has no function {fn!r}")
    return builder


def call_builder(spec: str, kwargs: Mapping | None = None, base: Path | None = None) -> nn.Module:
    """``builder(**kwargs)``, checked to be an ``nn.Module``."""
    builder = import_builder(spec, base)
    try:
        model = builder(**dict(kwargs or {}))
    except Exception as e:
        raise ModelCardError(f"builder {spec!r} failed with kwargs {dict(kwargs or {})} "
                             f"({type(e).__name__}: {e})") from None
    if not isinstance(model, nn.Module):
        raise ModelCardError(f"builder {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_saved_program(path: Path) -> nn.Module:
    """A TorchScript file (``torch.jit.load``) or a ``torch.export`` program (``.pt2``, ``torch.export.load``)
    as a module on the CPU; a plain state dict is refused with the fix (name its builder)."""
    if not path.is_file():
        raise ModelCardError(f"model file {path} does not exist: check the path given to --model")
    if path.suffix in EXPORT_SUFFIXES:
        try:
            return ExportedModel(torch.export.load(str(path)).module())
        except Exception as e:
            raise ModelCardError(f"model file {path}: not a torch.export program ({type(e).__name__})") from None
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception:
        raise ModelCardError(f"model file {path} is not a TorchScript model; for a state dict name its "
                             f"architecture: FILE.py:builder@{path.name}") from None


class ExportedModel(nn.Module):
    """A ``torch.export`` program as a module: its graph has no train / eval mode (calling ``eval()`` on it
    raises), so the mode is kept on this wrapper only."""

    def __init__(self, program: nn.Module):
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> ExportedModel:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def check_normalize(normalize: Mapping, where: str) -> tuple[list[float], list[float]]:
    """A card's ``normalize = {mean = [...], std = [...]}`` as two equal-length lists, std > 0."""
    try:
        mean = [float(v) for v in normalize["mean"]]
        std = [float(v) for v in normalize["std"]]
    except (KeyError, TypeError, ValueError):
        raise ModelCardError(f"{where}: normalize must be {{mean = [m1, ...], std = [s1, ...]}} (numbers per "
                             "channel, in pixel units of [0, 1])") from None
    if len(mean) != len(std) or not mean or min(std) <= 0:
        raise ModelCardError(f"{where}: normalize needs as many means as stds, each std > 0 (got {mean}, {std})")
    return mean, std


def with_normalize(model: nn.Module, normalize: Mapping | None, where: str = "model") -> nn.Module:
    """``model`` preceded by ``(x - mean) / std`` per channel when ``normalize`` is given, so that it takes
    pixels in [0, 1]."""
    if not normalize:
        return model
    mean, std = check_normalize(normalize, where)
    return nn.Sequential(Normalize(mean, std), model)
