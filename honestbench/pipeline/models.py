"""The models of a ``bench run``: zoo names, globs, card files and a user's model specs
(:mod:`honestbench.zoo.user`), mixed freely (``--models regular,pgd-at,./cards/mine.toml``, ``--model
my_net.py:build@w.pt``), as :class:`honestbench.engine.runner.ModelSpec`. A user's model is checked before any attack
(:func:`honestbench.engine.validate.validate_model`): a fatal problem is a one-line error, the rest warnings on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from functools import partial

import torch
from torch import nn

from honestbench.core.errors import BenchError
from honestbench.data import load_eval
from honestbench.engine.runner import ModelSpec
from honestbench.engine.validate import PROBE_IMAGES, validate_model
from honestbench.nets.layers.common import DATASET_STATS
from honestbench.zoo import Card, load_model, select_cards
from honestbench.zoo.builders import check_normalize
from honestbench.zoo.user import UserModel, is_model_spec, resolve


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_normalize(text: str | None, dataset: str) -> dict | None:
    """``--normalize``: a dataset name (its mean/std), ``255`` (a model that takes pixels in [0, 255]) or
    ``M1,M2,M3/S1,S2,S3`` (pixel units of [0, 1]) -> ``{mean, std}``; None for None."""
    if not text:
        return None
    channels = 1 if dataset == "digits" else 3
    if text in DATASET_STATS:
        mean, std = DATASET_STATS[text]
    elif text.strip() == "255":
        mean, std = (0.0,) * channels, (1 / 255,) * channels
    else:
        m, sep, s = text.partition("/")
        try:
            mean, std = [float(v) for v in m.split(",")], [float(v) for v in s.split(",")]
        except ValueError:
            mean, std = [], []
        if not sep or not mean:
            raise BenchError(f"--normalize {text!r}: expected cifar10, digits, 255 or MEAN,MEAN,MEAN/STD,STD,STD")
    norm = {"mean": list(mean), "std": list(std)}
    check_normalize(norm, f"--normalize {text}")
    return norm


def split_models(models: str | None, extra: Iterable[str] = ()) -> tuple[str, list[str]]:
    """``--models`` (+ each ``--model``) -> (the zoo part for :func:`select_cards`, the user's entries)."""
    parts = [p.strip() for p in (models or "").split(",") if p.strip()] + [m.strip() for m in extra if m.strip()]
    user = [p for p in parts if is_model_spec(p)]
    zoo = [p for p in parts if not is_model_spec(p)]
    return ",".join(zoo), user


def checked_loader(um: UserModel, device: torch.device, data_fn: Callable[[], object],
                   log: Callable[[str], None] = _log) -> Callable[[], nn.Module]:
    """A loader that loads the user's model and validates it on the run's first images."""

    def load() -> nn.Module:
        model = um.load(device)
        for warning in validate_model(model, data_fn(), um.name, um.info.get("num_classes"), device):
            log(f"warning: {warning}")
        return model

    return load


def zoo_specs(cards: Iterable[Card], dataset: str, device: torch.device,
              log: Callable[[str], None] = _log) -> list[ModelSpec]:
    """The trained zoo cards of ``dataset`` as lazily loaded :class:`ModelSpec`; a note for each one skipped
    (with the ``source`` that ``bench check`` reads)."""
    specs = []
    for card in cards:
        if not card.trained:
            log(f"note: skipping {card.name}: untrained (train it with `bench train {card.name}`)")
        elif card.data != dataset:
            log(f"note: skipping {card.name}: a {card.data} model (this run: --data {dataset})")
        else:
            specs.append(ModelSpec(card.name, partial(load_model, card, device),
                                   {"checkpoint_sha256": card.sha256, "stochastic": bool(card.stochastic),
                                    "description": card.description, "data": card.data,
                                    "source": card.source, "training": card.training}))
    return specs


def resolve_model_specs(models: str | None, extra: Iterable[str], dataset: str, device: torch.device,
                        n: int | None = None, data_source: str = "npz", normalize: Mapping | None = None,
                        log: Callable[[str], None] = _log) -> list[ModelSpec]:
    """Every model the run names, in order, no repeats: the zoo's as :func:`zoo_specs`,
    the user's (cards outside the zoo, specs) validated when loaded."""
    zoo_part, user_parts = split_models(models, extra)
    specs: list[ModelSpec] = []
    if zoo_part or not user_parts:
        cards: list[Card] = select_cards(zoo_part or "all")
        specs = zoo_specs([c for c in cards if not c.user], dataset, device, log)
        user_parts = [str(c.path) for c in cards if c.user] + user_parts
    k = PROBE_IMAGES if n is None else min(n, PROBE_IMAGES)
    data_fn = partial(load_eval, dataset, k, data_source)
    for text in user_parts:
        um = resolve(text, normalize)
        if um.card is not None and um.card.data != dataset:
            log(f"note: skipping {um.name}: a {um.card.data} model (this run: --data {dataset})")
            continue
        specs.append(ModelSpec(um.name, checked_loader(um, device, data_fn, log), {"data": dataset, **um.info}))
    names = [s.name for s in specs]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise BenchError(f"two models are called {dup[0]!r}: name one of them, e.g. --model NAME=FILE.py:builder")
    return specs
