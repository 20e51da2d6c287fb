"""The ``bench crosscheck`` program below its flags: the model to check (``tiny-digits``, or any model spec that
``bench run`` takes, resolved by :mod:`honestbench.pipeline.models`), its evaluation images (pixels in [0, 1]),
the run, and the result's provenance."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence

import torch
import torchattacks
from torch import nn

from honestbench.core.errors import BenchError
from honestbench.data import load_eval
from honestbench.devtools.crosscheck.compare import REFERENCES
from honestbench.devtools.crosscheck.driver import AttackSpec, crosscheck
from honestbench.devtools.optional import import_art
from honestbench.pipeline.models import resolve_model_specs, split_models
from honestbench.train.tiny import train_tiny_digits
from honestbench.zoo import select_cards
from honestbench.zoo.user import resolve

#: the older ``PATH.pt:package.module.builder`` spelling, read as ``package.module:builder@PATH.pt``
_OLD_SPEC = re.compile(r"^(?P<weights>[^:@=]+\.pth?):(?P<module>[\w.]+)\.(?P<fn>\w+)$")


def _spec_text(spec: str) -> str:
    m = _OLD_SPEC.match(spec.strip())
    return f"{m['module']}:{m['fn']}@{m['weights']}" if m else spec


def implied_dataset(spec: str) -> str | None:
    """The dataset a zoo name or card file implies (None for a model spec: then ``--data`` decides); a spec that
    names no model or more than one is a one-line :class:`BenchError`."""
    zoo_part, user_parts = split_models(spec)
    if zoo_part and user_parts or len(user_parts) > 1:
        raise BenchError(f"crosscheck compares one model, got --model {spec!r}")
    if zoo_part:
        cards = select_cards(zoo_part)
        if len(cards) != 1:
            names = ", ".join(c.name for c in cards[:5])
            raise BenchError(f"crosscheck compares one model: --model {spec!r} names {len(cards)} ({names})")
        return cards[0].data
    if not user_parts:
        raise BenchError("crosscheck: --model is empty; name a zoo model, a card file or FILE.py:builder")
    card = resolve(user_parts[0]).card
    return card.data if card is not None else None


def load_reference_model(spec: str, device: torch.device, seed: int = 0, dataset: str | None = None,
                         source: str = "npz", normalize: Mapping | None = None,
                         log: Callable[[str], None] | None = None) -> tuple[nn.Module, str | None]:
    """``tiny-digits`` (trained on the fly) or any model spec of ``bench run`` (zoo name, card file,
    ``FILE.py:builder[@w.pt]``, ``pkg.module:builder[@w.pt]``, TorchScript / torch.export file) -> (model,
    dataset). A user's model is validated on the first images as in ``bench run``. The dataset is the one the
    model implies, else ``dataset``, else None (the caller's default)."""
    if spec == "tiny-digits":
        return train_tiny_digits(seed=seed).to(device), "digits"
    spec = _spec_text(spec)
    implied = implied_dataset(spec)
    data = implied or dataset or "cifar10"
    zoo_part, user_parts = split_models(spec)
    kw = {"log": log} if log else {}
    specs = resolve_model_specs(zoo_part or None, user_parts, data, data_source=source, normalize=normalize, **kw)
    if not specs:
        raise BenchError(f"crosscheck: model {spec!r} cannot be loaded (see the note above)")
    return specs[0].load(device), implied or dataset


def run_crosscheck(
    spec: str,
    *,
    device: torch.device,
    dataset: str | None = None,
    n: int | None = 128,
    source: str = "npz",
    seed: int = 0,
    attacks: Sequence[AttackSpec] | str | None = "all",
    random_seeds: int = 8,
    references: Sequence[str] = REFERENCES,
    normalize: Mapping | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict:
    """Load model ``spec`` and the first ``n`` evaluation images of its dataset (the model's own, else ``dataset``,
    else CIFAR-10), run :func:`~honestbench.devtools.crosscheck.driver.crosscheck`, and return its result with the
    model, dataset, device, library versions and wall seconds in front. ``log`` gets one line per step;
    ``progress``: a tqdm bar per (attack, library) on stderr."""
    say = log or (lambda line: None)
    references = tuple(references)
    art = import_art() if "art" in references else None  # missing ART: one line, before the model loads
    model, dataset = load_reference_model(spec, device, seed=seed, dataset=dataset, source=source,
                                          normalize=normalize, log=log)
    dataset = dataset or "cifar10"
    data = load_eval(dataset, n=n, source=source)
    x, y = data.x.to(device), data.y.to(device)
    say(f"crosscheck: model {spec}, dataset {dataset}, n={len(y)}, device {device}, seed {seed}, "
        f"references {', '.join(references)}, {random_seeds} seed(s) per randomised row")
    t = time.perf_counter()
    result = crosscheck(model, x, y, attacks=attacks, seed=seed, random_seeds=random_seeds, references=references,
                        bars=progress)
    versions = {"torch": torch.__version__, "torchattacks": torchattacks.__version__}
    if art is not None:
        versions["art"] = art.__version__
    return {"model": spec, "dataset": dataset, "device": str(device), "versions": versions,
            "seconds": round(time.perf_counter() - t, 2), **result}
