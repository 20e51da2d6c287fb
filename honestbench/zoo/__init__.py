"""The model zoo: one TOML card per model in ``honestbench/zoo/models/`` (package data, with the small checkpoints
in ``models/ckpt/``) -> a built, checkpoint-loaded ``nn.Module``; larger checkpoints are fetched by URL into the
cache (:mod:`honestbench.zoo.fetch`).

* :mod:`honestbench.zoo.cards` (torch-free): :class:`Card`, :func:`parse_card`, :func:`get_card`, :func:`list_cards`,
  :func:`card_names`, :data:`ZOO_ORDER` (the listing and leaderboard row order), :data:`MODELS_DIR`;
* :mod:`honestbench.zoo.loading`: :func:`build_model`, :func:`load_card_model` (``eval()`` mode, normalisation inside,
  inputs with pixels in [0, 1], parameters frozen, stochastic layers still stochastic; sha256-checked,
  ``torch.load(..., weights_only=True)``), :func:`freeze`, :func:`clean_accuracy` (a fraction in [0, 1]).

* :mod:`honestbench.zoo.builders`: a user's architecture named by text (``FILE.py:fn``, ``pkg.mod:fn``, TorchScript,
  ``torch.export``) and a card's ``normalize``; :mod:`honestbench.zoo.user`: zoo names, card files and model specs
  (``FILE.py:fn@weights.pt``) resolved to loaders plus the ``source`` a run records for ``bench check``.
  A card may live outside the zoo (a file path, or ``--models-dir`` / ``BENCH_MODELS_DIR``) and name its
  own ``builder`` with ``kwargs``, ``normalize``, ``num_classes``, ``paper``, ``venue``, ``reported``.

``import honestbench.zoo`` does not import torch: the loading names are imported on first use (PEP 562), so
``bench report`` and ``bench list`` read cards without it.
"""

from __future__ import annotations

from honestbench.zoo.cards import (
    MODELS_DIR,
    ZOO_ORDER,
    Card,
    card_names,
    get_card,
    list_cards,
    parse_card,
    resolve_checkpoint,
    select_cards,
    user_models_dir,
)

#: names of :mod:`honestbench.zoo.loading` (torch) served by :func:`__getattr__` on first use
_LOADING = ("build_model", "checked_checkpoint", "clean_accuracy", "evaluation_model", "file_sha256", "freeze",
            "load_card_model", "load_state")

__all__ = ["MODELS_DIR", "ZOO_ORDER", "Card", "card_names", "get_card", "list_cards", "parse_card",
           "resolve_checkpoint", "select_cards", "user_models_dir", *_LOADING]


def __getattr__(name: str) -> object:
    if name in _LOADING:
        # function-level: honestbench.zoo.loading imports torch, which `bench report` / `bench list` never need
        from honestbench.zoo import loading

        value = getattr(loading, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'honestbench.zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LOADING))
