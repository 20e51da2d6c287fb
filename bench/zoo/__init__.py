"""The model zoo: one TOML card per model in ``models/`` -> a built, checkpoint-loaded ``nn.Module``.

A card says what the model is (backbone, defence), how it is trained (recipe, data, epochs, seed), where its
weights are (``checkpoint``, relative to the repository root, or ``data:FILE`` for a file in
:func:`bench.data.data_dir`) and, in its last table ``[result]`` (written by ``bench train NAME
--update-card``), the checkpoint's sha256, clean accuracy, training time and machine. A card with an empty
``sha256`` is *untrained*.

:func:`load_model` returns the model in ``eval()`` mode, normalisation inside, parameters frozen
(``requires_grad=False``), stochastic layers still stochastic; it checks the sha256 and loads with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import tomllib
from pathlib import Path

import torch
from torch import nn

from bench.core.errors import ModelCardError
from bench.core.io import REPO_ROOT, sha256_file

MODELS_DIR = REPO_ROOT / "models"
_sha_cache: dict[tuple[str, float, int], str] = {}


@dataclasses.dataclass
class Card:
    """A parsed model card (``models/NAME.toml``); fractions in [0, 1], times in seconds."""

    name: str
    description: str = ""
    backbone: str = "small-cnn"
    backbone_args: dict = dataclasses.field(default_factory=dict)
    defence: dict = dataclasses.field(default_factory=dict)
    recipe: dict = dataclasses.field(default_factory=dict)
    data: str = "cifar10"
    epochs: int = 1
    seed: int = 0
    checkpoint: str = ""
    sha256: str = ""
    stochastic: bool = False
    external: bool = False
    ignore_keys: list = dataclasses.field(default_factory=list)
    clean_accuracy: float | None = None
    clean_accuracy_std: float | None = None
    train_time_s: float | None = None
    machine: str = ""
    epochs_done: int | None = None
    notes: str = ""
    result: dict = dataclasses.field(default_factory=dict)
    path: Path | None = None

    @property
    def trained(self) -> bool:
        """True when the card names a checkpoint and its sha256 (the weights exist somewhere)."""
        return bool(self.checkpoint and self.sha256)

    @property
    def defence_kind(self) -> str:
        return str(self.defence.get("kind", "none"))

    def checkpoint_path(self) -> Path:
        """Absolute checkpoint path (``data:FILE`` -> ``data_dir() / FILE``)."""
        return resolve_checkpoint(self.checkpoint)

    def summary(self) -> dict[str, object]:
        """One listing row: name, backbone, defence, recipe, clean accuracy, trained, stochastic."""
        return {
            "name": self.name, "backbone": self.backbone, "defence": self.defence_kind,
            "recipe": self.recipe.get("kind", ""), "clean_accuracy": self.clean_accuracy,
            "trained": self.trained, "stochastic": self.stochastic, "epochs": self.epochs_done,
            "description": self.description,
        }


def resolve_checkpoint(spec: str) -> Path:
    if spec.startswith("data:"):
        from bench.data import data_dir

        return data_dir() / spec[len("data:"):]
    p = Path(os.path.expandvars(spec)).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


_TOP_KEYS = {f.name for f in dataclasses.fields(Card)} - {"result", "path", "sha256", "clean_accuracy",
                                                           "clean_accuracy_std", "train_time_s", "machine",
                                                           "epochs_done"}
_RESULT_KEYS = {"sha256", "clean_accuracy", "clean_accuracy_std", "train_time_s", "machine", "epochs_done"}


def parse_card(path: str | os.PathLike) -> Card:
    """Read and validate one card file; one-line :class:`ModelCardError` when it is invalid."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ModelCardError(f"model card {path}: cannot be read ({e})") from None
    name = raw.get("name", path.stem)
    if name != path.stem:
        raise ModelCardError(f"model card {path}: name {name!r} differs from the file name {path.stem!r}")
    unknown = sorted(set(raw) - _TOP_KEYS - {"result"})
    if unknown:
        raise ModelCardError(f"model card {path}: unknown key {unknown[0]!r}")
    result = dict(raw.get("result", {}))
    kw = {k: v for k, v in raw.items() if k in _TOP_KEYS}
    kw.update({k: v for k, v in result.items() if k in _RESULT_KEYS})
    card = Card(**kw, result=result, path=path)
    for key, typ in (("epochs", int), ("seed", int), ("defence", dict), ("recipe", dict)):
        if not isinstance(getattr(card, key), typ):
            raise ModelCardError(f"model card {path}: {key} must be {typ.__name__}")
    return card


#: The zoo's listing order (``bench list models``, leaderboard rows, ``--models all``): the report's Table 1
#: rows (baseline, then the defences as the report adds them), then the reference rows and the WRN-34-1 ones;
#: cards not named here follow by name.
ZOO_ORDER = ("regular", "pni", "smoothing", "gaussian-smoothing", "smoothing-pgd", "smoothing-pgd-fgsm",
             "smoothing-pgd-fgsm-cw", "smoothing-pgd-fgsm-cw-pni", "slwta", "pgd-at", "slwta-wrn34-1",
             "slwta-wrn34-1-panousis2021")


def list_cards(pattern: str = "*", models_dir: str | os.PathLike | None = None) -> list[Card]:
    """Every card whose name matches the shell-style ``pattern`` (or a comma-separated list), in
    :data:`ZOO_ORDER`."""
    root = Path(models_dir) if models_dir else MODELS_DIR
    pats = [p.strip() for p in pattern.split(",") if p.strip()] or ["*"]
    rank = {name: i for i, name in enumerate(ZOO_ORDER)}
    cards = sorted((parse_card(p) for p in root.glob("*.toml")),
                   key=lambda c: (rank.get(c.name, len(rank)), c.name))
    return [c for c in cards if any(fnmatch.fnmatch(c.name, p) for p in pats)]


def card_names(models_dir: str | os.PathLike | None = None) -> list[str]:
    root = Path(models_dir) if models_dir else MODELS_DIR
    return sorted(p.stem for p in root.glob("*.toml"))


def get_card(name: str, models_dir: str | os.PathLike | None = None) -> Card:
    """The card called ``name``; :class:`ModelCardError` with the closest name when there is none."""
    from bench.attacks.registry import suggest

    root = Path(models_dir) if models_dir else MODELS_DIR
    path = root / f"{name}.toml"
    if not path.is_file():
        names = card_names(root)
        raise ModelCardError(f"unknown model {name!r}{suggest(name, names)}; see `bench list models`")
    return parse_card(path)


# ----------------------------------------------------------------------------------------------- building
def build_model(card: Card) -> nn.Module:
    """The card's architecture, freshly initialised (train mode): normalisation inside, defence layers in."""
    from bench.data import input_shape
    from bench.nets import GaussianSmoothing, act_factory, build_backbone, layer_factories

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
    try:
        model = build_backbone(card.backbone, **kw)
    except (TypeError, ValueError) as e:
        raise ModelCardError(f"model card {card.name!r}: cannot build {card.backbone!r} ({e})") from None
    if "gaussian_sigma" in d:
        model = GaussianSmoothing(model, sigma=float(d["gaussian_sigma"]), predict=d.get("predict", "base"),
                                  n=int(d.get("n", 8)))
    return model


def file_sha256(path: Path) -> str:
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


def load_model(name_or_card: str | Card, device: str | torch.device = "cpu", fast: bool = False) -> nn.Module:
    """The card's trained model on ``device``: eval mode, parameters frozen, stochastic layers stochastic.
    ``fast``: :func:`bench.nets.fast.optimize_for_inference` (BatchNorm folded into the convs, channels-last
    weights on a CPU; the same function up to float rounding, not trainable)."""
    card = get_card(name_or_card) if isinstance(name_or_card, str) else name_or_card
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
    state = load_state(path, card.name)
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
        from bench.nets.fast import optimize_for_inference

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
