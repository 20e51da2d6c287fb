"""A model card's ``[recipe]`` as data: the :class:`Recipe` table with its defaults, the mixed adversarial
schedule (:class:`MixedSchedule`) and the training attacks. Budgets are in [0, 1] pixel units (8/255 ~= 0.0314)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from honestbench.attacks.registry import attack_defaults, create_attack
from honestbench.core.budgets import EPS_LINF
from honestbench.core.errors import ModelCardError
from honestbench.core.numbers import parse_number
from honestbench.zoo import Card

RECIPES = ("natural", "adversarial", "certified")


@dataclass
class Recipe:
    """A card's ``[recipe]`` table with defaults; budgets in [0, 1] pixel units. ``lr`` is the learning rate at
    ``batch_size``; a larger batch may scale it linearly (:func:`scaled_lr`)."""

    kind: str = "natural"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    batch_size: int = 256
    schedule: str = "onecycle"  # onecycle | cosine
    pct_start: float = 0.25
    label_smoothing: float = 0.0
    augment: bool = True
    elbo: bool = False
    eps: float = EPS_LINF
    pool: list = field(default_factory=list)
    slots: int = 8
    clean_slots: int = 4
    attacks: dict = field(default_factory=dict)  # per-attack parameters for create_attack
    amp: bool = True  # bf16 autocast on CUDA (unless the trainer's flag says otherwise)
    grad_clip: float = 0.0
    optimizer: str = "sgd"  # sgd | adam
    # the certified recipe (honestbench.train.certified): bound, budget ramp and loss mix, in epochs
    bound: str = "ibp"  # ibp | crown-ibp
    warmup_epochs: float = 1.0
    ramp_epochs: float = 10.0
    kappa_end: float = 0.5
    eps_train_scale: float = 1.0

    @classmethod
    def from_card(cls, card: Card) -> Recipe:
        raw = dict(card.recipe)
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ModelCardError(f"model card {card.name!r}: unknown recipe key {unknown[0]!r}")
        if "eps" in raw:
            raw["eps"] = parse_number(raw["eps"])
        r = cls(**raw)
        if r.kind not in RECIPES:
            raise ModelCardError(f"model card {card.name!r}: recipe kind must be one of {RECIPES}")
        if r.kind == "adversarial" and (not r.pool or r.clean_slots >= r.slots):
            raise ModelCardError(
                f"model card {card.name!r}: adversarial recipe needs a pool and clean_slots < slots")
        if r.kind == "certified" and r.bound not in ("ibp", "crown-ibp"):
            raise ModelCardError(f"model card {card.name!r}: certified recipe bound must be ibp or crown-ibp")
        if r.optimizer not in ("sgd", "adam"):
            raise ModelCardError(f"model card {card.name!r}: optimizer must be sgd or adam")
        if r.schedule not in ("onecycle", "cosine"):
            raise ModelCardError(f"model card {card.name!r}: schedule must be onecycle or cosine")
        return r


def scaled_lr(recipe: Recipe, batch_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): the recipe's ``lr`` is stated at its ``batch_size``; a batch
    ``k`` times larger takes ``k`` times the learning rate (the one-cycle warm-up covers the start)."""
    return recipe.lr * int(batch_size) / int(recipe.batch_size)


class MixedSchedule:
    """The report's per-iteration draw: ``r ~ U{0..slots-1}``; clean when ``r < clean_slots``, else an attack.

    :meth:`draw` returns None (clean batch) or the attack name. Its own CPU generator (state saved in the
    resumable checkpoint) makes the sequence reproducible and independent of everything else; drawing never
    touches the training device.
    """

    def __init__(self, pool: list[str], slots: int = 8, clean_slots: int = 4, seed: int = 0):
        if not pool and clean_slots < slots:
            raise ValueError("an empty pool needs clean_slots == slots")
        self.pool, self.slots, self.clean_slots = list(pool), slots, clean_slots
        self.gen = torch.Generator().manual_seed(int(seed) + 7919)

    def shares(self) -> dict[str, float]:
        """The expected share of batches of each kind ``'clean'`` or an attack name (sums to 1): what
        :meth:`draw` returns in the long run."""
        if not self.pool:
            return {"clean": 1.0}
        p_clean = self.clean_slots / self.slots
        out = {"clean": p_clean} if p_clean > 0 else {}
        for name in self.pool:
            out[name] = out.get(name, 0.0) + (1.0 - p_clean) / len(self.pool)
        return out

    def draw(self) -> str | None:
        if not self.pool:
            return None
        r = int(torch.randint(self.slots, (1,), generator=self.gen))
        if r < self.clean_slots:
            return None
        if len(self.pool) == self.slots - self.clean_slots:
            return self.pool[r - self.clean_slots]
        return self.pool[int(torch.randint(len(self.pool), (1,), generator=self.gen))]


def training_attacks(recipe: Recipe) -> dict[str, object]:
    """Attack objects of the recipe's pool, each with the training budget unless its params say otherwise."""
    out = {}
    for name in recipe.pool:
        params = {k: (None if v == "none" else parse_number(v) if k in ("eps", "alpha") else v)
                  for k, v in recipe.attacks.get(name, {}).items()}
        if "eps" in attack_defaults(name) and name != "cw-l2":
            params.setdefault("eps", recipe.eps)
        out[name] = create_attack(name, **params)
    return out
