"""Adaptive attacks for stochastic and near-discrete models (Athalye et al. 2018; Tramer et al. 2020).

Registered attacks (L-inf, pixels in [0, 1], ``eps`` default 8/255; see methods.md, "Adaptive attacks"):
  * ``surrogate-pgd``: PGD (our kernel, :class:`bench.attacks.pgd.PGDLinf`) or APGD (torchattacks) run on
    the model inside :func:`bench.nets.surrogate` (every stochastic layer replaced by its smooth deterministic
    stand-in: LWTA ``h * softmax(h_block / T)``, PNI and smoothing without noise). The harness then evaluates
    the adversarial images on the real, stochastic model.
  * ``bpda-pgd``: BPDA (forward through the real layer, backward through the surrogate) with EOT: in every
    stochastic layer the output is ``s(x) + (r(x) - s(x)).detach()`` where ``r`` is the real (random, possibly
    hard) layer and ``s`` its surrogate at temperature ``T``: the forward value is the real one, the gradient
    the surrogate's, evaluated at the real activations. For LWTA this is the straight-through estimator of
    the hard or T = 0.01 winner mask with the ``softmax(h / T)`` gradient. For PNI and Gaussian smoothing the
    real layer is already differentiable (its noisy gradient is what EOT averages), so BPDA only swaps the
    noisy gradient for the noiseless one; it matters for LWTA and for the majority-vote smoothing prediction.
  * ``transfer-pgd``: PGD on another zoo model (``source``, a card name), evaluated on the target.

Each attack only touches the target model through forward/backward passes inside the base class's
``frozen_eval``; the surrogate / BPDA switches are context managers that restore every layer on exit.

The ``adaptive`` suite (``adaptive_suite``) puts these together with AutoAttack and (EOT-)PGD; see its
docstring for the columns and :mod:`bench.diagnostics` for the checks that read them.

CPU cost (measured on the shared 2-core box, one torch thread, other jobs running; ``bench run --models
regular,slwta,slwta-wrn34-1-panousis2021 --suite adaptive:aa_steps=50,aa_eot=5,eot=10,bpda_eot=3 --diagnose
--n 128``): 32 min in all. The published WRN-34-1 took 1,232 s (AutoAttack-rand 552 s, EOT-PGD 200 s,
surrogate-PGD 87 s, BPDA-PGD 185 s, diagnostics 189 s), the small-CNN ``slwta`` 625 s (of which diagnostics
429 s), ``regular`` 65 s. At the reference strengths (AutoAttack-rand 2 x 100 steps x EOT 20, EOT-PGD EOT 20,
BPDA EOT 10) AutoAttack-rand alone would be 8x that, about 75 min for the WRN: hence those suite
parameters on a CPU. With torch's default 2 threads on the busy box, OpenMP spin-waiting made the same
cells 5-10x slower (AutoAttack-rand at n = 16: 632 s): run with one thread there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import nn

from bench.attacks.base import Attack, frozen_eval
from bench.attacks.pgd import PGDLinf
from bench.attacks.registry import register_attack
from bench.core.errors import AttackConfigError

KERNELS = ("pgd", "apgd")


# ----------------------------------------------------------------------------------------------- BPDA
def _bpda_forward(layer: nn.Module, temperature: float):
    cls_forward = type(layer).forward

    def forward(*args, **kw):
        saved = layer.surrogate_temperature
        try:
            layer.surrogate_temperature = None
            real = cls_forward(layer, *args, **kw)
            layer.surrogate_temperature = float(temperature)
            smooth = cls_forward(layer, *args, **kw)
        finally:
            layer.surrogate_temperature = saved
        return smooth + (real - smooth).detach()

    return forward


@contextmanager
def bpda(model: nn.Module, temperature: float = 1.0) -> Iterator[nn.Module]:
    """Within the block, every stochastic layer of ``model`` (``bench.nets.StochasticLayer``) computes its
    real (random) output in the forward pass and the gradient of its surrogate at ``temperature`` in the
    backward pass (BPDA / straight-through). Restored on exit. A model without such layers is unchanged."""
    from bench.nets import stochastic_layers

    if temperature <= 0:
        raise ValueError("BPDA surrogate temperature must be > 0")
    layers = stochastic_layers(model)
    for m in layers:
        if "forward" in m.__dict__:
            raise RuntimeError(f"{type(m).__name__} already has an instance-level forward (nested bpda?)")
    try:
        for m in layers:
            m.forward = _bpda_forward(m, temperature)
        yield model
    finally:
        for m in layers:
            m.__dict__.pop("forward", None)


# ----------------------------------------------------------------------------------------------- attacks
@dataclasses.dataclass
class _AdaptivePGD(Attack):
    """Shared fields: the PGD L-inf budget and schedule (``alpha`` None: 2.5 * eps / steps)."""

    norm: ClassVar[str] = "linf"
    randomized: ClassVar[bool] = True

    eps: float = 8 / 255
    alpha: float | None = None
    steps: int = 100
    random_start: bool = True
    restarts: int = 1
    #: False: every sample does every step (push the loss beyond the first fooling iterate, which the real,
    #: stochastic model may not agree with).
    early_stop: bool = False
    loss: str = "ce"

    def pgd(self, eot: int = 1) -> PGDLinf:
        return PGDLinf(eps=self.eps, alpha=self.alpha, steps=self.steps, random_start=self.random_start,
                       restarts=self.restarts, early_stop=self.early_stop, eot=eot, loss=self.loss)

    def effective_eps(self) -> float:
        return self.pgd().effective_eps()


@register_attack("surrogate-pgd")
@dataclasses.dataclass
class SurrogatePGD(_AdaptivePGD):
    """PGD (``kernel='pgd'``, our kernel) or APGD (``kernel='apgd'``, torchattacks; ``loss`` ce -> APGD-CE,
    margin -> APGD-DLR) on the smooth deterministic surrogate of the model at ``temperature``; the images are
    meant to be evaluated on the real model. Equal to plain PGD on a model without stochastic layers."""

    name: ClassVar[str] = "surrogate-pgd"
    description: ClassVar[str] = "PGD/APGD on the smooth deterministic surrogate, evaluated on the real model"

    temperature: float = 1.0
    kernel: str = "pgd"

    def validate(self) -> None:
        super().validate()
        if not self.temperature > 0:
            raise AttackConfigError(f"{self.name}: temperature must be > 0, got {self.temperature}")
        if self.kernel not in KERNELS:
            raise AttackConfigError(f"{self.name}: kernel must be one of {KERNELS}, got {self.kernel!r}")

    @property
    def cost_hint(self) -> float:
        return float(self.steps * self.restarts)

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        from bench.nets import surrogate

        with surrogate(model, temperature=self.temperature):
            if self.kernel == "pgd":
                return self.pgd().perturb(model, x, y, generator)
            from bench.attacks.autoattack import AutoAttack

            comp = "apgd-ce" if self.loss == "ce" else "apgd-dlr"
            aa = AutoAttack(norm="linf", eps=self.eps, components=comp, steps=self.steps)
            out = aa.perturb(model, x, y, generator)
            for _ in range(self.restarts - 1):  # restart the samples the surrogate still classifies right
                out = _keep_fooled(model, x, y, out, aa, generator)
            return out


def _keep_fooled(model, x, y, prev, attack, generator) -> torch.Tensor:
    with torch.no_grad():
        alive = (model(prev).argmax(1) == y).nonzero().squeeze(1)
    if alive.numel():
        prev = prev.clone()
        prev[alive] = attack.perturb(model, x[alive], y[alive], generator)
    return prev


@register_attack("bpda-pgd")
@dataclasses.dataclass
class BPDAPGD(_AdaptivePGD):
    """PGD with BPDA gradients (real forward, surrogate backward at ``temperature``) averaged over ``eot``
    stochastic passes. Equal to PGD with EOT on a model without stochastic layers."""

    name: ClassVar[str] = "bpda-pgd"
    description: ClassVar[str] = "PGD with BPDA (real forward, surrogate backward) and EOT"

    steps: int = 50
    eot: int = 10
    temperature: float = 1.0

    def validate(self) -> None:
        super().validate()
        if not self.temperature > 0:
            raise AttackConfigError(f"{self.name}: temperature must be > 0, got {self.temperature}")

    @property
    def cost_hint(self) -> float:
        return float(2 * self.steps * self.restarts * self.eot)

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        with bpda(model, self.temperature):
            return self.pgd(self.eot).perturb(model, x, y, generator)


# ----------------------------------------------------------------------------------------------- transfer
_SOURCES: dict[str, nn.Module] = {}
_LOADED: dict[tuple[str, str], nn.Module] = {}


def register_transfer_source(name: str, model: nn.Module | None) -> None:
    """Make ``name`` resolve to ``model`` for ``transfer-pgd`` (an in-memory model, e.g. in tests); ``None``
    removes it. Names not registered here are loaded from the model zoo (:func:`bench.zoo.load_model`)."""
    if model is None:
        _SOURCES.pop(name, None)
    else:
        _SOURCES[name] = model


def load_source(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """The transfer source model called ``name`` on ``device`` (registered in memory, else the zoo card),
    loaded once per process."""
    if name in _SOURCES:
        return _SOURCES[name].to(device)
    key = (name, str(torch.device(device)))
    if key not in _LOADED:
        from bench.zoo import load_model

        _LOADED[key] = load_model(name, device)
    return _LOADED[key]


@register_attack("transfer-pgd")
@dataclasses.dataclass
class TransferPGD(_AdaptivePGD):
    """PGD L-inf on the zoo model ``source`` (``eot`` passes per step if it is stochastic); the adversarial
    images are then evaluated on the target. The target model is only used for its device."""

    name: ClassVar[str] = "transfer-pgd"
    description: ClassVar[str] = "PGD on another zoo model (source), evaluated on the target"

    source: str = "pgd-at"
    steps: int = 20
    eot: int = 1

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.source, str) or not self.source:
            raise AttackConfigError(f"{self.name}: source must name a zoo model, got {self.source!r}")

    @property
    def cost_hint(self) -> float:
        return float(self.steps * self.restarts * self.eot)

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        src = load_source(self.source, x.device)
        if src is model:
            raise AttackConfigError(f"{self.name}: the source {self.source!r} is the target model itself")
        with frozen_eval(src):
            try:
                return self.pgd(self.eot).perturb(src, x, y, generator)
            except RuntimeError as e:  # shape mismatch: a model of another dataset
                msg = " ".join(str(e).split())[:160]
                raise AttackConfigError(f"{self.name}: source {self.source!r} cannot take these images "
                                        f"{tuple(x.shape[1:])} ({msg})") from None


# ----------------------------------------------------------------------------------------------- the suite
#: Default transfer source per target (a deterministic model of the same data; never the target itself).
TRANSFER_SOURCE = "pgd-at"
TRANSFER_FALLBACK = "regular"
EPS8, EPS2 = 8 / 255, 2 / 255


#: The ``adaptive`` suite's strength parameters and their defaults (the reference settings). ``bench run
#: --suite adaptive:aa_eot=5,bpda_eot=5`` overrides them (:func:`bench.suites.get_suite`): for a slow model on
#: a CPU, where AutoAttack-rand's 2 x 100 steps x EOT 20 cost hours. ``eot``, ``bpda_eot`` and ``aa_eot``
#: apply to stochastic models only (deterministic models get no EOT), ``aa_queries`` (Square's queries) to
#: deterministic ones (the rand flavour has no Square).
ADAPTIVE_PARAMS: dict[str, int] = {"aa_steps": 100, "aa_eot": 20, "steps": 20, "eot": 20,
                                   "surrogate_steps": 100, "bpda_steps": 50, "bpda_eot": 10,
                                   "transfer_steps": 20, "aa_queries": 5000}


def adaptive_params(**params: object) -> dict[str, int]:
    """The defaults of :data:`ADAPTIVE_PARAMS` with ``params`` applied (integers >= 1; one-line error for an
    unknown name or a bad value)."""
    unknown = sorted(set(params) - set(ADAPTIVE_PARAMS))
    if unknown:
        raise AttackConfigError(f"adaptive suite: unknown parameter {unknown[0]!r}; parameters: "
                                f"{', '.join(ADAPTIVE_PARAMS)}")
    out = dict(ADAPTIVE_PARAMS)
    for k, v in params.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise AttackConfigError(f"adaptive suite: {k} must be an integer >= 1, got {v!r}")
        out[k] = v
    return out


def adaptive_entries(stochastic: bool, target: str | None = None,
                     source: str | None = None, **params: int) -> list[tuple[str, str, dict]]:
    """The ``adaptive`` suite's columns as data, ``(label, attack name, params)``; the SAME labels for both
    flavours, so leaderboards line up:

    ======================  ==========================================  =====================================
    label                   stochastic model                            deterministic model
    ======================  ==========================================  =====================================
    ``AutoAttack``          ``autoattack-rand`` (APGD-CE/DLR, EOT 20)   ``autoattack`` (standard)
    ``PGD``                 PGD-20 2/255, EOT 20, no early stop         PGD-20 2/255 (no EOT)
    ``surrogate-PGD``       PGD-100 on the surrogate (T = 1)            PGD-100 (no stochastic layers), early
                                                                        stop
    ``BPDA-PGD``            PGD-50, BPDA, EOT 10                        PGD-50, no EOT, early stop
    ``transfer-PGD``        PGD-20 on ``source``                        same
    ======================  ==========================================  =====================================

    ``source`` defaults to ``pgd-at`` (``regular`` when the target is ``pgd-at``); ``source=""`` drops the
    transfer column (:func:`pick_source` finds a trained one). All L-inf 8/255. ``params``: the strengths of
    :data:`ADAPTIVE_PARAMS` (the table shows the defaults).
    The suite is evaluated as a full matrix: :mod:`bench.diagnostics` compares its columns (an adaptive attack
    beating the white-box one is the masking signature), which early exit would leave as upper bounds; in
    the cascade the adaptive attacks would also run before EOT-PGD and AutoAttack (cheaper by
    ``attack_cost``), so the records could not show it. The worst case is exact either way."""
    if source is None:
        source = TRANSFER_FALLBACK if target == TRANSFER_SOURCE else TRANSFER_SOURCE
    p = adaptive_params(**params)
    eot = p["eot"] if stochastic else 1
    # PGD's alpha stays 2/255 at its default 20 steps; with other step counts 2.5 eps / steps (Madry's rule)
    alpha = EPS2 if p["steps"] == 20 else 2.5 * EPS8 / p["steps"]
    t_alpha = EPS2 if p["transfer_steps"] == 20 else 2.5 * EPS8 / p["transfer_steps"]
    aa = {"eps": EPS8, "steps": p["aa_steps"],
          **({"eot": p["aa_eot"]} if stochastic else {"n_queries": p["aa_queries"]})}
    transfer = [] if source == "" else [
        ("transfer-PGD", "transfer-pgd", {"eps": EPS8, "alpha": t_alpha, "steps": p["transfer_steps"],
                                          "source": source})]
    return [
        ("AutoAttack", "autoattack-rand" if stochastic else "autoattack", aa),
        # stochastic model: every step is run; early stop would keep the first iterate that fooled ONE
        # noisy pass, which the evaluation pass often classifies right (the report's "PGD > FGSM" symptom)
        ("PGD", "pgd-linf", {"eps": EPS8, "alpha": alpha, "steps": p["steps"], "random_start": True,
                             "eot": eot, "early_stop": not stochastic}),
        # the surrogate / BPDA gradients of a deterministic model are its own: stop at the first fooling
        # iterate there (exact, and cheap); a stochastic model needs every step (see PGD above)
        ("surrogate-PGD", "surrogate-pgd", {"eps": EPS8, "steps": p["surrogate_steps"], "temperature": 1.0,
                                            "early_stop": not stochastic}),
        ("BPDA-PGD", "bpda-pgd", {"eps": EPS8, "steps": p["bpda_steps"],
                                  "eot": p["bpda_eot"] if stochastic else 1, "early_stop": not stochastic}),
        *transfer,
    ]


def pick_source(target: str | None = None, preferred: str | None = None, data: str | None = None) -> str:
    """The transfer source for ``target``: the first of ``preferred``, ``pgd-at``, ``regular`` that is not the
    target and is registered in memory or has a trained zoo card (of dataset ``data`` when given: a source
    of other data cannot take the images); ``""`` (no transfer column) if none."""
    from bench.core.errors import BenchError

    for name in dict.fromkeys(n for n in (preferred, TRANSFER_SOURCE, TRANSFER_FALLBACK) if n):
        if name == target:
            continue
        if name in _SOURCES:
            return name
        try:
            from bench.zoo import get_card

            card = get_card(name)
            if card.trained and (data is None or card.data == data):
                return name
        except BenchError:
            continue
    return ""


def stochastic_additions(target: str | None = None, source: str | None = None,
                         data: str | None = None, **params: int) -> list[tuple[str, str, dict]]:
    """Columns to append to another suite (``standard``) for a stochastic model: the stochastic flavour of
    :func:`adaptive_entries` (strengths ``params``) with its ``PGD`` column relabelled ``EOT-PGD``
    (``standard`` has its own single-pass ``PGD`` column, which the diagnostics then compare with these).
    Transfer source as in :func:`adaptive_suite`."""
    return [("EOT-PGD" if label == "PGD" else label, attack, kw) for label, attack, kw in
            adaptive_entries(True, target, pick_source(target, source, data), **params)]


ADAPTIVE_DESCRIPTION = (
    "Adaptive evaluation, L-inf 8/255: AutoAttack (rand flavour with EOT 20 for stochastic models, standard "
    "otherwise), PGD-20 (EOT 20 when stochastic), PGD-100 on the smooth surrogate, BPDA-PGD-50, transfer "
    "PGD-20 from another zoo model; per-sample worst case")

#: The two flavours as data (target-independent: transfer from ``pgd-at``).
ADAPTIVE_SUITE = {"stochastic": adaptive_entries(True), "deterministic": adaptive_entries(False)}


def adaptive_suite(stochastic: bool, target: str | None = None, source: str | None = None,
                   data: str | None = None, **params: int):
    """The ``adaptive`` suite for one model as a :class:`bench.suites.Suite` (named ``adaptive``); the
    transfer source is :func:`pick_source` (``target`` excluded, untrained cards and cards of another
    dataset ``data`` skipped); ``params``: strengths (:data:`ADAPTIVE_PARAMS`), kept in the suite's
    ``params``."""
    from bench.suites import Entry, Suite

    entries = tuple(Entry(label, attack, kw) for label, attack, kw in
                    adaptive_entries(stochastic, target, pick_source(target, source, data), **params))
    flavour = "stochastic" if stochastic else "deterministic"
    changed = {k: v for k, v in adaptive_params(**params).items() if v != ADAPTIVE_PARAMS[k]}
    return Suite("adaptive", f"{ADAPTIVE_DESCRIPTION} ({flavour} flavour{params_text(changed)})", entries,
                 default_n=128, full_matrix=True, params=changed)


def params_text(params: dict) -> str:
    """``'; parameters aa_eot=5, eot=10'`` for a description, or ``''`` when all are defaults."""
    return "; parameters " + ", ".join(f"{k}={v}" for k, v in params.items()) if params else ""
