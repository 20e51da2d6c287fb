"""Model cards: one TOML file per model saying what the model is (backbone, defence), how it is trained
(recipe, data, epochs, seed), where its weights are (``checkpoint``, relative to the card's folder, or
``data:FILE`` for a larger file looked up in ``$BENCH_DATA_DIR`` and the cache, and fetched from the card's
``url`` when absent: :mod:`honestbench.zoo.fetch`) and, in its last table ``[result]`` (written by ``bench train
NAME --update-card``), the checkpoint's sha256, clean accuracy (a fraction in [0, 1]), epochs done, training
time (seconds) and machine. A card with an empty ``sha256`` is *untrained*; one with fewer epochs done than its
recipe's is *incomplete* (:attr:`Card.training`, shown beside its name in every table).

The zoo's cards and small checkpoints ship inside the package (``honestbench/zoo/models/NAME.toml`` and
``models/ckpt/NAME.pt``, package data read through :mod:`importlib.resources`): :data:`MODELS_DIR`.

Torch-free: listing and ordering the zoo (``bench list models``, ``bench report``) reads cards only;
:mod:`honestbench.zoo.loading` builds and loads the models.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import tomllib
from importlib import resources
from pathlib import Path

from honestbench.core.errors import ModelCardError
from honestbench.core.registry import suggest


def _zoo_dir() -> Path:
    """The package-data folder of the zoo's cards (a real folder: the wheel installs unzipped)."""
    folder = resources.files("honestbench.zoo").joinpath("models")
    if not isinstance(folder, Path):  # a zipped install: the zoo must be a folder on disk to glob and torch.load
        raise ModelCardError("honestbench is installed as a zip archive: install it unzipped (pip install does)")
    return folder


#: the zoo's cards (``NAME.toml``) and small checkpoints (``ckpt/NAME.pt``), inside the installed package
MODELS_DIR = _zoo_dir()


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
    url: str = ""
    url_key: str = ""
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
    builder: str = ""
    kwargs: dict = dataclasses.field(default_factory=dict)
    normalize: dict = dataclasses.field(default_factory=dict)
    num_classes: int | None = None
    paper: str = ""
    venue: str = ""
    reported: dict = dataclasses.field(default_factory=dict)
    result: dict = dataclasses.field(default_factory=dict)
    path: Path | None = None

    @property
    def trained(self) -> bool:
        """True when the card names a checkpoint and its sha256 (the weights exist somewhere), or names its
        own ``builder`` (a user's card: the checkpoint, and its sha256, are optional)."""
        return bool(self.checkpoint and self.sha256) or bool(self.builder)

    @property
    def user(self) -> bool:
        """A user's card: it names its own ``builder`` (checkpoint relative to the card, sha256 optional)."""
        return bool(self.builder)

    @property
    def architecture(self) -> str:
        """What builds the model: the zoo backbone's name, or a user's ``builder`` (its file name and function)."""
        return Path(self.builder).name if self.builder else self.backbone

    @property
    def source(self) -> dict[str, str]:
        """What a run records to rebuild the model (``bench check``): the zoo name, or the card file when it
        lies outside the repository's ``models/``."""
        if self.path is None or self.path.parent.resolve() == MODELS_DIR.resolve():
            return {"zoo": self.name}
        return {"card": str(self.path.resolve())}

    @property
    def defence_kind(self) -> str:
        return str(self.defence.get("kind", "none"))

    @property
    def training(self) -> str:
        """``'2/30 epochs'`` when the checkpoint was trained for fewer epochs than the card's recipe states
        (``[result] epochs_done`` < ``epochs``), else ``''``. Runs record it; tables show :func:`display_name`."""
        if self.epochs_done is None or not self.sha256 or self.epochs_done >= self.epochs:
            return ""
        return f"{self.epochs_done}/{self.epochs} epochs"

    @property
    def display_name(self) -> str:
        """The name as tables show it: ``'slwta-wrn34-1 (2/30 epochs)'`` for an incomplete card."""
        return display_name(self.name, self.training)

    def checkpoint_path(self) -> Path:
        """Absolute checkpoint path: relative paths from the card's folder; ``data:FILE`` -> the first of
        ``$BENCH_DATA_DIR/FILE`` and ``cache/FILE`` that exists, else where the cache would hold it."""
        if self.checkpoint.startswith("data:"):
            return resolve_checkpoint(self.checkpoint)
        p = Path(os.path.expandvars(self.checkpoint)).expanduser()
        if p.is_absolute() or self.path is None:
            return p.resolve()
        return (self.path.parent / p).resolve()

    def summary(self) -> dict[str, object]:
        """One listing row: name, backbone, defence, recipe, clean accuracy, trained, stochastic."""
        return {
            "name": self.name, "backbone": self.architecture, "defence": self.defence_kind,
            "recipe": self.recipe.get("kind", ""), "clean_accuracy": self.clean_accuracy,
            "trained": self.trained, "stochastic": self.stochastic, "epochs": self.epochs_done,
            "description": self.description,
        }


def display_name(name: str, training: str) -> str:
    """``name`` with its incomplete-training mark (:attr:`Card.training`, as a run records it): the one place
    that spells the mark, for the cards and for the report, which reads ``training`` from the records."""
    return f"{name} ({training})" if training else name


def finish_hint(name: str, training: str) -> str:
    """The line that says how to finish an incomplete card (``training`` as :attr:`Card.training`). Not
    ``--resume``: a run's ``last.pt`` is tied to the epochs it was started with (a shortened run resumes only to
    its own end), so the recipe's epochs mean a fresh run."""
    done, _, planned = training.partition(" ")[0].partition("/")
    return (f"{name}: trained for {done} of its recipe's {planned} epochs; train it fully with "
            f"`bench train {name} --update-card`")


def resolve_checkpoint(spec: str) -> Path:
    """Absolute path of a checkpoint spec: ``data:FILE`` -> :func:`honestbench.data.files.find_file` (or where the
    cache would hold it); else ``$VARS`` and ``~`` expanded, relative paths from the working folder."""
    if spec.startswith("data:"):
        # function-level: honestbench.data imports torch, and cards stay torch-free for `bench report` / `bench list`
        from honestbench.data.files import cache_path, find_file

        name = spec[len("data:"):]
        return find_file(name) or cache_path(name)
    return Path(os.path.expandvars(spec)).expanduser().resolve()


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
        raise ModelCardError(f"model card {path}: cannot be read ({e}): fix its TOML (docs/extending.md shows a "
                             "card)") from None
    name = raw.get("name", path.stem)
    if name != path.stem:
        raise ModelCardError(f"model card {path}: name {name!r} differs from the file name {path.stem!r}")
    unknown = sorted(set(raw) - _TOP_KEYS - {"result", "sha256"})  # a user's card may pin sha256 at the top
    if unknown:
        raise ModelCardError(f"model card {path}: unknown key {unknown[0]!r}"
                             f"{suggest(unknown[0], sorted(_TOP_KEYS))}: fix or remove it")
    result = dict(raw.get("result", {}))
    kw = {k: v for k, v in raw.items() if k in _TOP_KEYS}
    kw["name"] = name
    if isinstance(raw.get("sha256"), str):
        kw["sha256"] = raw["sha256"]
    kw.update({k: v for k, v in result.items() if k in _RESULT_KEYS})
    card = Card(**kw, result=result, path=path)
    for key, typ in (("epochs", int), ("seed", int), ("defence", dict), ("recipe", dict), ("kwargs", dict),
                     ("normalize", dict), ("reported", dict), ("builder", str)):
        if not isinstance(getattr(card, key), typ):
            raise ModelCardError(f"model card {path}: {key} must be {typ.__name__}, got "
                                 f"{type(getattr(card, key)).__name__} {getattr(card, key)!r}: fix it in the card")
    if card.num_classes is not None and (not isinstance(card.num_classes, int) or card.num_classes < 2):
        raise ModelCardError(f"model card {path}: num_classes must be a whole number >= 2")
    return card


def user_models_dir() -> Path | None:
    """The user's folder of cards (``bench run --models-dir DIR`` or ``$BENCH_MODELS_DIR``), or None."""
    env = os.environ.get("BENCH_MODELS_DIR", "").strip()
    return Path(env).expanduser() if env else None


def _roots(models_dir: str | os.PathLike | None, user_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for cards: ``models_dir``, else the zoo's and then the user's (``user_dir``, else
    :func:`user_models_dir`, when set)."""
    if models_dir:
        return [Path(models_dir)]
    user = Path(user_dir).expanduser() if user_dir else user_models_dir()
    return [MODELS_DIR] + ([user] if user and user.resolve() != MODELS_DIR.resolve() else [])


#: The zoo's listing order (``bench list models``, leaderboard rows, ``--models all``): the report's Table 1
#: rows (baseline, then the defences as the report adds them), then the reference rows and the WRN-34-1 ones;
#: cards not named here follow by name.
ZOO_ORDER = ("regular", "pni", "smoothing", "gaussian-smoothing", "smoothing-pgd", "smoothing-pgd-fgsm",
             "smoothing-pgd-fgsm-cw", "smoothing-pgd-fgsm-cw-pni", "slwta", "pgd-at", "slwta-wrn34-1",
             "slwta-wrn34-1-panousis2021")


def list_cards(pattern: str = "*", models_dir: str | os.PathLike | None = None,
               user_dir: str | os.PathLike | None = None) -> list[Card]:
    """Every card whose name matches the shell-style ``pattern`` (or a comma-separated list), in
    :data:`ZOO_ORDER`."""
    pats = [p.strip() for p in pattern.split(",") if p.strip()] or ["*"]
    rank = {name: i for i, name in enumerate(ZOO_ORDER)}
    found = {p.stem: p for root in reversed(_roots(models_dir, user_dir)) for p in root.glob("*.toml")}  # the zoo's win
    cards = sorted((parse_card(p) for p in found.values()),
                   key=lambda c: (rank.get(c.name, len(rank)), c.name))
    return [c for c in cards if any(fnmatch.fnmatch(c.name, p) for p in pats)]


def card_names(models_dir: str | os.PathLike | None = None, user_dir: str | os.PathLike | None = None) -> list[str]:
    """The names of every card in ``models_dir`` (default :data:`MODELS_DIR`), sorted."""
    return sorted({p.stem for root in _roots(models_dir, user_dir) for p in root.glob("*.toml")})


def get_card(name: str, models_dir: str | os.PathLike | None = None,
             user_dir: str | os.PathLike | None = None) -> Card:
    """The card called ``name`` (in the zoo, then in :func:`user_models_dir`), or the card file ``name`` when it
    ends in ``.toml``; :class:`ModelCardError` with the closest name when there is none."""
    if name.endswith(".toml"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelCardError(f"model card {path} does not exist")
        return parse_card(path)
    path = next((r / f"{name}.toml" for r in _roots(models_dir, user_dir) if (r / f"{name}.toml").is_file()), None)
    if path is None:
        names = card_names(models_dir, user_dir)
        raise ModelCardError(f"unknown model {name!r}{suggest(name, names, cutoff=0.4)}; see `bench list models`")
    return parse_card(path)


def select_cards(spec: str, user_dir: str | os.PathLike | None = None) -> list[Card]:
    """Cards for ``all``, comma-separated names, card files (``.toml``) or shell globs ('smoothing*'); in
    order, no repeats; one-line :class:`ModelCardError` for a name or glob that matches nothing."""
    if spec.strip() in ("all", "*", ""):
        return list_cards("*", user_dir=user_dir)
    cards: dict[str, Card] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if any(ch in part for ch in "*?[") and not part.endswith(".toml"):
            found = list_cards(part, user_dir=user_dir)
            if not found:
                raise ModelCardError(f"no model matches {part!r}; see `bench list models`")
        else:
            found = [get_card(part, user_dir=user_dir)]
        cards.update((c.name, c) for c in found)
    return list(cards.values())
