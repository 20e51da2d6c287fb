"""Building and loading the zoo's models: a card -> its architecture (:func:`build_model`) -> its sha256-checked,
weights-only-loaded checkpoint (:func:`load_card_model`): ``eval()`` mode, normalisation inside (inputs with pixels
in [0, 1]), parameters frozen (``requires_grad=False``), stochastic layers still stochastic.
"""

from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path

import torch
from torch import nn

from honestbench.core.errors import ModelCardError
from honestbench.core.io import file_sha256
from honestbench.data import input_shape
from honestbench.nets import GaussianSmoothing, act_factory, build_backbone, layer_factories
from honestbench.nets.fast import optimize_for_inference
from honestbench.zoo.builders import call_builder, with_normalize
from honestbench.zoo.cards import Card, get_card
from honestbench.zoo.fetch import fetch_checkpoint

_warned_unchecked: set[str] = set()


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



def load_state(path: Path, card_name: str = "") -> dict[str, torch.Tensor]:
    """``torch.load(path, weights_only=True)``: the file's state dict of tensors. Whatever else it holds is
    refused with one line (:class:`ModelCardError`) before any of it runs: pickled code or a whole pickled model
    (torch's weights-only unpickler never imports it), a truncated or unreadable file."""
    who = f"model {card_name!r}: checkpoint {path}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for code / objects; zip and EOF errors for junk
        raise ModelCardError(f"{who} refused: {_load_failure(e)}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if isinstance(state, nn.Module) or not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelCardError(f"{who} is not a state dict of tensors ({type(state).__name__}): save "
                             "model.state_dict() with torch.save")
    return state


_SAVE_STATE = "save model.state_dict() with torch.save, not the model object"


def _load_failure(e: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line with the fix."""
    text = " ".join(str(e).split())
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        name = found.group(1)
        module, _, attr = name.rpartition(".")
        if module.startswith("torch.nn") or attr[:1].isupper():  # a class: most likely a pickled nn.Module
            return (f"not a weights-only state dict: it is a pickled Python object ({name}), a whole model saved "
                    f"with torch.save(model)?; its code was not run: {_SAVE_STATE}")
        return (f"not a weights-only state dict: it holds pickled code ({name}) that would run on loading; it "
                f"was not run: use only checkpoints that are state dicts of tensors ({_SAVE_STATE})")
    if isinstance(e, pickle.UnpicklingError | EOFError | KeyError | ValueError) or "zip archive" in text:
        return "not a readable torch.save file (truncated or corrupt?): copy or save it again"
    return f"not a weights-only state dict ({type(e).__name__}: {text[:160]}): {_SAVE_STATE}"


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> nn.Module:
    """``model.load_state_dict(state, strict=True)``; when the keys or shapes differ, one-line
    :class:`ModelCardError` naming the missing, unexpected and mis-shaped keys (``what`` says whose)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    parts = [f"{label} ({len(keys)}): {_first(keys)}" for label, keys in
             (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes, file vs model", shapes))
             if keys]
    if parts:
        raise ModelCardError(f"{what}: checkpoint does not fit the architecture: {'; '.join(parts)}: check the "
                             "architecture and its arguments, or save the state dict of this architecture")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelCardError(f"{what}: checkpoint does not fit the architecture ({' '.join(str(e).split())[:200]})"
                             ) from None
    return model


def _first(keys: list[str], k: int = 4) -> str:
    return ", ".join(keys[:k]) + (f", ... (+{len(keys) - k} more)" if len(keys) > k else "")


def checked_checkpoint(card: Card) -> Path:
    """The card's checkpoint path, after checking that the card is trained, the file exists and its sha256 is
    the card's; :class:`ModelCardError` saying how to fix it otherwise."""
    fix = f"run `bench train {card.name}`"
    if card.user and not card.sha256 and card.checkpoint:  # a user's own card: the sha256 is optional
        path = card.checkpoint_path()
        if not path.is_file():
            raise ModelCardError(f"model {card.name!r}: checkpoint {path} is missing: fix `checkpoint` in {card.path}")
        if str(path) not in _warned_unchecked:
            _warned_unchecked.add(str(path))
            print(f"warning: model {card.name!r}: checkpoint {path} is unchecked (its card has no sha256): add "
                  f"sha256 = \"{file_sha256(path)}\" to {card.path} to pin it", file=sys.stderr)
        return path
    if card.user:
        fix = f"fix `checkpoint` or `sha256` in {card.path}"
    if card.external:
        fix = "put the file there or set BENCH_DATA_DIR to the folder that holds it"
    if not card.trained:
        raise ModelCardError(f"model {card.name!r} is untrained (its card has no checkpoint sha256 yet): "
                             f"run `bench train {card.name} --update-card`")
    # a larger file (data:FILE): found in BENCH_DATA_DIR or the cache, else fetched by URL (sha256-checked)
    path = fetch_checkpoint(card) if card.checkpoint.startswith("data:") else card.checkpoint_path()
    if not path.is_file():
        raise ModelCardError(f"model {card.name!r}: checkpoint {path} is missing: {fix}")
    digest = file_sha256(path)
    if digest != card.sha256:
        raise ModelCardError(f"model {card.name!r}: checkpoint {path} does not match the card's sha256 "
                             f"({digest[:12]}... != {card.sha256[:12]}...): {fix}")
    return path


def load_card_model(name_or_card: str | Card, device: str | torch.device = "cpu", fast: bool = False) -> nn.Module:
    """The card's trained model on ``device``: eval mode, parameters frozen, stochastic layers stochastic.
    ``fast``: :func:`honestbench.nets.fast.optimize_for_inference` (BatchNorm folded into the convs, channels-last
    weights on a CPU; the same function up to float rounding, not trainable)."""
    card = get_card(name_or_card) if isinstance(name_or_card, str) else name_or_card
    if card.builder:
        model = _load_builder_card(card)
        return freeze(optimize_for_inference(model) if fast else model).to(device)
    state = load_state(checked_checkpoint(card), card.name)
    if card.ignore_keys:
        state = {k: v for k, v in state.items() if not k.startswith(tuple(card.ignore_keys))}
    model = load_weights(build_model(card), state, f"model {card.name!r} ({card.backbone})")
    model = freeze(model).to(device)
    if fast:
        model = optimize_for_inference(model)
    return model


def evaluation_model(card: Card, device: str | torch.device = "cpu") -> nn.Module:
    """The model ``bench run``, ``bench check`` and ``bench verify`` evaluate for ``card``: a deterministic zoo
    model with BatchNorm to fold is evaluated as its inference copy (:func:`load_card_model` with ``fast``:
    BN folded into the convs, channels-last weights on a CPU; the same function up to float32 rounding, with
    faster forward+backward passes, which ``bench speed`` times); every other card (stochastic, certifiable or
    a user's) as it is."""
    model = load_card_model(card, device)
    if card.user or card.stochastic or card.builder:
        return model
    fast = optimize_for_inference(model)
    return fast if _batchnorms(fast) < _batchnorms(model) else model


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _load_builder_card(card: Card) -> nn.Module:
    """A user's card naming its own ``builder`` (with ``kwargs``): built, its checkpoint (if any) loaded into
    it (weights only, strict), preceded by the card's ``normalize`` (if any)."""
    base = card.path.parent if card.path else None
    with torch.random.fork_rng(devices=[]):  # a model without checkpoint: the same random model every time
        torch.manual_seed(card.seed)
        model = call_builder(card.builder, card.kwargs, base)
    if card.checkpoint:
        state = load_state(checked_checkpoint(card), card.name)
        load_weights(model, state, f"model {card.name!r} ({card.builder})")
    return with_normalize(model, card.normalize, f"model card {card.path}")


def freeze(model: nn.Module) -> nn.Module:
    """``eval()`` mode and ``requires_grad=False`` on every parameter (in place); returns ``model``. Lazy
    (uninitialised) parameters are left alone: the run's preflight materialises and freezes them
    (:mod:`honestbench.engine.probe`)."""
    model.eval()
    for p in model.parameters():
        if not isinstance(p, nn.parameter.UninitializedParameter):
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
