"""Building and loading the zoo's models: a card -> its architecture (:func:`build_model`) -> its sha256-checked,
weights-only-loaded checkpoint (:func:`load_model`): ``eval()`` mode, normalisation inside (inputs with pixels
in [0, 1]), parameters frozen (``requires_grad=False``), stochastic layers still stochastic.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bench.core.errors import ModelCardError
from bench.core.io import sha256_file
from bench.data import input_shape
from bench.nets import GaussianSmoothing, act_factory, build_backbone, layer_factories
from bench.nets.fast import optimize_for_inference
from bench.zoo.cards import Card, get_card

_sha_cache: dict[tuple[str, float, int], str] = {}


def build_model(card: Card) -> nn.Module:
    """The card's architecture, freshly initialised (train mode): normalisation inside, defence layers in.
    A card naming an unknown backbone or defence layer, or arguments they do not take, raises
    :class:`ModelCardError`."""
    try:
        model = build_backbone(card.backbone, **_backbone_kwargs(card))
    except (TypeError, ValueError, ModelCardError) as e:
        raise ModelCardError(f"model card {card.name!r}: cannot build {card.backbone!r} ({e})") from None
    d = card.defence
    if "gaussian_sigma" in d:
        model = GaussianSmoothing(model, sigma=float(d["gaussian_sigma"]), predict=d.get("predict", "base"),
                                  n=int(d.get("n", 8)))
    return model


def _backbone_kwargs(card: Card) -> dict[str, object]:
    """The backbone's constructor arguments: the card's ``backbone_args``, the data's shape, and the defence's
    activation and conv / linear factories (the published SLWTA port fixes its own layers)."""
    c, h, _ = input_shape(card.data)
    d = card.defence
    kw: dict[str, object] = dict(card.backbone_args)
    kw.setdefault("in_channels", c)
    kw.setdefault("num_classes", 10)
    if card.backbone != "slwta-wrn34-1-published":
        kw.setdefault("dataset", card.data)
        kw["act"] = act_factory(d.get("activation", "relu"), **d.get("act_args", {}))
        kw["conv"], kw["linear"] = layer_factories(d.get("layers", "plain"), **d.get("layer_args", {}))
        if card.backbone == "small-cnn":
            kw.setdefault("input_size", h)
    return kw


def file_sha256(path: Path) -> str:
    """sha256 of a checkpoint file, cached per (path, mtime, size) for the process."""
    st = path.stat()
    key = (str(path), st.st_mtime, st.st_size)
    if key not in _sha_cache:
        _sha_cache[key] = sha256_file(path)
    return _sha_cache[key]


def load_state(path: Path, card_name: str = "") -> dict[str, torch.Tensor]:
    """``torch.load(path, weights_only=True)``; a file holding pickled code is refused with one line."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for code; zip errors for junk
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelCardError(
            f"model {card_name!r}: checkpoint {path} refused: not a weights-only state dict ({first[:160]})"
        ) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelCardError(f"model {card_name!r}: checkpoint {path} is not a state dict of tensors")
    return state


def checked_checkpoint(card: Card) -> Path:
    """The card's checkpoint path, after checking that the card is trained, the file exists and its sha256 is
    the card's; :class:`ModelCardError` saying how to fix it otherwise."""
    fix = f"run `bench train {card.name}`"
    if card.external:
        fix = "put the file there or set BENCH_DATA_DIR to the folder that holds it"
    if not card.trained:
        raise ModelCardError(f"model {card.name!r} is untrained (its card has no checkpoint sha256 yet): "
                             f"run `bench train {card.name} --update-card`")
    path = card.checkpoint_path()
    if not path.is_file():
        raise ModelCardError(f"model {card.name!r}: checkpoint {path} is missing: {fix}")
    digest = file_sha256(path)
    if digest != card.sha256:
        raise ModelCardError(f"model {card.name!r}: checkpoint {path} does not match the card's sha256 "
                             f"({digest[:12]}... != {card.sha256[:12]}...): {fix}")
    return path


def load_model(name_or_card: str | Card, device: str | torch.device = "cpu", fast: bool = False) -> nn.Module:
    """The card's trained model on ``device``: eval mode, parameters frozen, stochastic layers stochastic.
    ``fast``: :func:`bench.nets.fast.optimize_for_inference` (BatchNorm folded into the convs, channels-last
    weights on a CPU; the same function up to float rounding, not trainable)."""
    card = get_card(name_or_card) if isinstance(name_or_card, str) else name_or_card
    state = load_state(checked_checkpoint(card), card.name)
    if card.ignore_keys:
        state = {k: v for k, v in state.items() if not k.startswith(tuple(card.ignore_keys))}
    model = build_model(card)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        msg = " ".join(str(e).split())[:200]
        raise ModelCardError(
            f"model {card.name!r}: checkpoint does not fit the card's architecture ({msg})") from None
    model = freeze(model).to(device)
    if fast:
        model = optimize_for_inference(model)
    return model


def freeze(model: nn.Module) -> nn.Module:
    """``eval()`` mode and ``requires_grad=False`` on every parameter (in place); returns ``model``."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int = 1,
                   batch_size: int = 512, device: str | torch.device | None = None) -> tuple[float, float]:
    """Mean and std over ``passes`` forward passes of the clean accuracy (fraction) of ``model`` in eval
    mode on ``(x, y)``; the model's mode is restored afterwards."""
    device = device or next(model.parameters()).device
    was = model.training
    model.eval()
    accs = []
    for _ in range(passes):
        correct = 0
        for i in range(0, len(y), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            correct += (model(xb).argmax(1) == yb).sum().item()
        accs.append(correct / max(len(y), 1))
    model.train(was)
    t = torch.tensor(accs, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if passes > 1 else 0.0
