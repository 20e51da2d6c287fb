"""Model cards: one TOML file per model in ``models/`` saying what the model is (backbone, defence), how it is
trained (recipe, data, epochs, seed), where its weights are (``checkpoint``, relative to the repository root,
or ``data:FILE`` for a file in :func:`bench.data.data_dir`) and, in its last table ``[result]`` (written by
``bench train NAME --update-card``), the checkpoint's sha256, clean accuracy (a fraction in [0, 1]), training
time (seconds) and machine. A card with an empty ``sha256`` is *untrained*.

Torch-free: listing and ordering the zoo (``bench list models``, ``bench report``) reads cards only;
:mod:`bench.zoo.loading` builds and loads the models.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import tomllib
from pathlib import Path

from bench.core.errors import ModelCardError
from bench.core.io import REPO_ROOT
from bench.core.registry import suggest

MODELS_DIR = REPO_ROOT / "models"


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
    """Absolute path of a card's ``checkpoint`` (``data:FILE`` -> ``data_dir() / FILE``; ``$VARS`` and ``~``
    expanded; relative paths from the repository root)."""
    if spec.startswith("data:"):
        # function-level: bench.data imports torch, and cards stay torch-free for `bench report` / `bench list`
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
    """The names of every card in ``models_dir`` (default :data:`MODELS_DIR`), sorted."""
    root = Path(models_dir) if models_dir else MODELS_DIR
    return sorted(p.stem for p in root.glob("*.toml"))


def get_card(name: str, models_dir: str | os.PathLike | None = None) -> Card:
    """The card called ``name``; :class:`ModelCardError` with the closest name when there is none."""
    root = Path(models_dir) if models_dir else MODELS_DIR
    path = root / f"{name}.toml"
    if not path.is_file():
        names = card_names(root)
        raise ModelCardError(f"unknown model {name!r}{suggest(name, names, cutoff=0.4)}; see `bench list models`")
    return parse_card(path)
