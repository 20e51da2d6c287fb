"""Larger checkpoints that do not ship in the package (a card's ``checkpoint = "data:FILE"``): looked up in
``$BENCH_DATA_DIR``, then the cache (``$BENCH_CACHE_DIR``, default ``~/.cache/bench``), else fetched from the
card's ``url`` into the cache.

The published SLWTA weights are the state dict inside the authors' full training checkpoint (``url_key =
"model_state_dict"``; optimizer state and epoch beside it). A fetch downloads that file into a temporary folder,
reads it with ``torch.load(weights_only=True)`` (the weights-only unpickler: it never runs pickled code), keeps
only the ``url_key`` entry, saves it with ``torch.save`` under the card's file name and keeps it only if its
sha256 is the card's: the pinned sha256 is that of the extracted state dict (``torch.save`` of the same tensors
under the same file name writes the same bytes), not of the upstream file, which is not pinned. Nothing is
loaded into a model before that check (:func:`honestbench.zoo.loading.checked_checkpoint`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from honestbench.core.errors import DataError, ModelCardError
from honestbench.core.io import sha256_file
from honestbench.data.files import DATA_ENV, cache_path, download, find_file, where_searched
from honestbench.zoo.cards import Card


def fetch_checkpoint(card: Card) -> Path:
    """The card's ``data:FILE`` checkpoint: found (:func:`honestbench.data.files.find_file`) or fetched from
    ``card.url`` into the cache and sha256-checked; one-line :class:`ModelCardError` naming the file, the URL
    and ``$BENCH_DATA_DIR`` when neither works."""
    name = card.checkpoint.removeprefix("data:")
    found = find_file(name)
    if found is not None:
        return found
    fix = f"put {name} in a folder and set {DATA_ENV} to it"
    if not card.url:
        raise ModelCardError(f"model {card.name!r}: checkpoint {name} not found in {where_searched()}: {fix}")
    dest = cache_path(name)
    try:
        with tempfile.TemporaryDirectory(dir=_parent(dest), prefix=".fetch-") as tmp:
            print(f"bench: fetching {name} for {card.name} from {card.url}", file=sys.stderr, flush=True)
            upstream = download(card.url, Path(tmp) / "upstream")
            kept = _extract(upstream, Path(tmp) / name, card.url_key, card)
            digest = sha256_file(kept)
            if digest != card.sha256:
                raise ModelCardError(f"model {card.name!r}: {name} fetched from {card.url} does not match the card's "
                                     f"sha256 ({digest[:12]}... != {card.sha256[:12]}...); not kept: {fix}")
            kept.replace(dest)
    except DataError as e:
        raise ModelCardError(f"model {card.name!r}: checkpoint {name} not found in {where_searched()} and not "
                             f"fetched from {card.url} ({e}): {fix}") from None
    return dest


def _parent(dest: Path) -> Path:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot write into {dest.parent}: {e.strerror}") from None
    return dest.parent


def _extract(upstream: Path, out: Path, key: str, card: Card) -> Path:
    """``upstream`` itself when the card names no ``url_key``; else its ``key`` entry (a state dict of
    tensors) saved as ``out``. The upstream file is read weights-only: pickled code is refused, never run."""
    if not key:
        return upstream.replace(out)
    try:
        full = torch.load(upstream, map_location="cpu", weights_only=True)
    except Exception as e:  # refused globals, truncated download: one line
        raise ModelCardError(f"model {card.name!r}: the file fetched from {card.url} is not a weights-only torch "
                             f"checkpoint ({type(e).__name__}); not kept") from None
    state = full.get(key) if isinstance(full, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelCardError(f"model {card.name!r}: the file fetched from {card.url} has no state dict under "
                             f"{key!r}; not kept")
    torch.save(state, out)
    return out
