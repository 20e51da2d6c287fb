"""A user's own model, named on the command line or in Python, next to the zoo's:

* a zoo name (``pgd-at``) or a card file (``./cards/mine.toml``: :mod:`honestbench.zoo.cards`, ``builder = ...``);
* ``[NAME=]FILE.py:builder[@weights.pt]`` or ``[NAME=]pkg.module:builder[@weights.pt]``: the builder called
  with no arguments (under a fixed seed, so a randomly initialised model is the same every time), the state
  dict ``weights.pt`` loaded into it weights-only and strictly;
* ``[NAME=]FILE.pt`` (TorchScript) or ``[NAME=]FILE.pt2`` (``torch.export``).

:func:`resolve` turns any of these into a :class:`~honestbench.zoo.source.ModelSource` (the one type of a model
to evaluate; :func:`card_source` for a card): its name (``NAME``, else the weights' or the file's stem), a
loader, and the ``source`` recorded with its results, from which :func:`load_source` rebuilds
it for ``bench check``. The recorded ``checkpoint_sha256`` is the weights file's (or the saved program's), so a
retrained or tampered file fails the check. Models take float32 NCHW images with pixels in [0, 1].
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from honestbench.core.errors import ModelCardError
from honestbench.core.io import file_sha256
from honestbench.zoo.builders import EXPORT_SUFFIXES, SCRIPT_SUFFIXES, call_builder, load_saved_program, with_normalize
from honestbench.zoo.cards import Card, get_card
from honestbench.zoo.loading import evaluation_model, freeze, load_card_model, load_state
from honestbench.zoo.source import ModelFacts, ModelSource

#: seed under which a builder runs, so that a model without weights is the same random model every time
BUILD_SEED = 0
_SPEC = re.compile(r"^(?:(?P<name>[\w.-]+)=)?(?P<target>[^@]+?)(?:@(?P<weights>.+))?$")


def is_model_spec(text: str) -> bool:
    """True for a card file or a model spec (``FILE.py:fn``, ``pkg.mod:fn``, ``@weights``, saved program)."""
    text = text.strip()
    target = _SPEC.match(text)["target"] if _SPEC.match(text) else text
    return (text.endswith(".toml") or ":" in target or "@" in text
            or target.endswith(SCRIPT_SUFFIXES + EXPORT_SUFFIXES))


def _name(m: re.Match) -> str:
    if m["name"]:
        return m["name"]
    if m["weights"]:
        return Path(m["weights"]).stem
    target = m["target"]
    if ":" in target:
        module, _, fn = target.rpartition(":")
        return Path(module).stem if module.endswith(".py") else module.rsplit(".", 1)[-1]
    return Path(target).stem


def _absolute(target: str) -> str:
    """``FILE.py:fn`` with the file made absolute (records stay valid from another folder)."""
    module, sep, fn = target.rpartition(":")
    if sep and module.endswith(".py"):
        return f"{Path(module).expanduser().resolve()}:{fn}"
    if not sep:
        return str(Path(target).expanduser().resolve())
    return target


def card_source(card: Card) -> ModelSource:
    """A zoo or user card as a :class:`ModelSource` (loaded with :func:`honestbench.zoo.loading.evaluation_model`): its
    checkpoint's sha256 (a user's card without one: the file's), stochastic flag, description, data and
    source; a user's card also its ``paper``, ``venue``, ``reported`` and ``num_classes``."""
    sha = card.sha256
    if card.user and card.checkpoint and not sha and card.checkpoint_path().is_file():
        sha = file_sha256(card.checkpoint_path())
    extra = {k: getattr(card, k) for k in ("paper", "venue", "reported", "num_classes")
             if card.user and getattr(card, k)}
    facts = ModelFacts(sha, bool(card.stochastic), card.description, card.data, card.source, **extra,
                       training=card.training or None)
    return ModelSource(card.name, lambda device: evaluation_model(card, device), facts, card)


def resolve(text: str, normalize: Mapping | None = None, models_dir: str | os.PathLike | None = None) -> ModelSource:
    """A zoo name, card file or model spec (module docstring) as a :class:`ModelSource`. ``normalize``
    (``{mean, std}``, pixel units) goes in front of a spec's model (a card states its own); ``models_dir``:
    a folder of the user's cards searched after the zoo's (``bench run --models-dir``)."""
    text = text.strip()
    if text.endswith(".toml") or not is_model_spec(text):
        return card_source(get_card(text, user_dir=models_dir))
    m = _SPEC.match(text)
    if m is None:
        raise ModelCardError(f"model {text!r}: expected FILE.py:builder[@weights.pt], pkg.module:builder, "
                             "a TorchScript .pt or a torch.export .pt2 file, a card .toml or a zoo name")
    source = {"spec": _absolute(m["target"])}
    if m["weights"]:
        source["weights"] = str(Path(m["weights"]).expanduser().resolve())
    if normalize:
        source["normalize"] = {k: list(v) for k, v in normalize.items()}
    facts = ModelFacts(source_sha256(source), description=f"user model {text}", source=source)
    return ModelSource(_name(m), lambda device: load_source(source, device), facts)


def source_sha256(source: Mapping) -> str:
    """The sha256 that pins a spec's model: its weights file, else its saved program or builder file."""
    if source.get("weights"):
        path = Path(source["weights"])
    else:
        module = str(source["spec"]).rpartition(":")[0] or str(source["spec"])
        if not (module.endswith(".py") or Path(module).suffix in SCRIPT_SUFFIXES + EXPORT_SUFFIXES):
            return ""  # pkg.module:builder without weights: nothing on disk to pin
        path = Path(module)
    if not path.is_file():
        raise ModelCardError(f"model file {path} does not exist: check the path given to --model")
    return file_sha256(path)


def load_source(source: Mapping, device: torch.device | str = "cpu") -> nn.Module:
    """The model a record's ``source`` names (``zoo``, ``card`` or ``spec`` [+ ``weights``, ``normalize``]),
    eval mode, parameters frozen, on ``device``."""
    if "zoo" in source or "card" in source:
        return evaluation_model(get_card(source.get("card") or source["zoo"]), device)
    spec = str(source["spec"])
    if ":" in spec and not Path(spec).is_file():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(BUILD_SEED)
            model = call_builder(spec)
        if source.get("weights"):
            path = Path(source["weights"])
            if not path.is_file():
                raise ModelCardError(f"model {spec!r}: weights file {path} does not exist")
            try:
                model.load_state_dict(load_state(path, spec), strict=True)
            except RuntimeError as e:
                msg = " ".join(str(e).split())[:200]
                raise ModelCardError(f"model {spec!r}: {path.name} does not fit the builder's model ({msg})") from None
    else:
        model = load_saved_program(Path(spec))
    return freeze(with_normalize(model, source.get("normalize"), spec)).to(device)


def load_any(name: str | Card | nn.Module, device: torch.device | str = "cpu") -> nn.Module:
    """``honestbench.load_model``: a zoo name, a card (file or :class:`Card`) or a model spec (module docstring)
    as an evaluation-ready model (eval mode, frozen, pixels in [0, 1]); a module is returned as it is."""
    if isinstance(name, nn.Module):
        return name
    if isinstance(name, Card):
        return load_card_model(name, device)
    return resolve(name).load(device)
