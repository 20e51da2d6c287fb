"""The preflight: what a model's forward and backward passes do on a few images, before any attack, so that a
model which fights the harness is named and evaluated anyway instead of crashing or passing as robust.

Checked on :data:`PROBE_IMAGES` images (pixels in [0, 1]), each a name recorded on the model's rows:
  * ``lazy-modules``: uninitialised (lazy) parameters, materialised here by one forward pass;
  * ``writes-input``: the forward pass changes the tensor it is given; the model is then evaluated through
    :class:`CopyInput` (each call gets a copy), so no image of the data is ever altered;
  * ``no-gradient-graph``: the output does not depend on the input through autograd (a forward under
    ``torch.no_grad()``, ``.detach()``, ``.data`` or a trip through numpy): gradient attacks cannot run, so
    only the gradient-free and BPDA columns evaluate it;
  * ``forward-calls-autograd``: the forward pass calls ``torch.autograd.grad`` / ``backward`` itself;
  * ``zero-gradients`` / ``vanishing-gradients`` / ``nonfinite-gradients``: the gradient of the logit
    margin (never saturated like cross-entropy) is exactly zero on more than :data:`ZERO_SHARE` of the
    images, below :data:`VANISHING` (max |g|, per pixel) on more than half of them, or not finite;
  * ``probabilities``: the outputs are probabilities (in [0, 1], rows summing to 1), not logits:
    cross-entropy on them saturates and weakens gradient attacks (the margin / DLR losses do not).
:data:`MASKING` lists the names after which the suite's masking columns run (:mod:`honestbench.suites.masking`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from honestbench.core.errors import BenchError
from honestbench.suites.masking import MASKING_FLAGS

PROBE_IMAGES = 16
ZERO_SHARE = 0.10
VANISHING = 1e-8
#: the preflight names that make a model's gradients useless: it then also gets the masking columns
MASKING = MASKING_FLAGS


class CopyInput(nn.Module):
    """``model`` called on a copy of its input (for a forward pass that writes into its input)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.clone())


@dataclass
class Preflight:
    """The preflight's findings: ``flags`` (names, module docstring) and one explanatory line per flag."""

    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, flag: str, note: str) -> None:
        self.flags.append(flag)
        self.notes.append(note)

    @property
    def masked(self) -> bool:
        """True when the gradients are useless (:data:`MASKING`): the masking columns must run."""
        return bool(MASKING & set(self.flags))

    @property
    def gradient_free(self) -> bool:
        """True when no gradient reaches the input at all: only gradient-free / BPDA columns can run."""
        return "no-gradient-graph" in self.flags

    def record(self) -> dict:
        return {"flags": list(self.flags), "notes": list(self.notes)}


@contextlib.contextmanager
def _count_autograd(calls: list[str]):
    """Count calls of ``torch.autograd.grad`` / ``torch.autograd.backward`` / ``Tensor.backward`` in the block."""
    saved = torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward

    def wrap(fn, label):
        def inner(*a, **k):
            calls.append(label)
            return fn(*a, **k)
        return inner

    torch.autograd.grad = wrap(saved[0], "torch.autograd.grad")
    torch.autograd.backward = wrap(saved[1], "torch.autograd.backward")
    torch.Tensor.backward = wrap(saved[2], "Tensor.backward")
    try:
        yield
    finally:
        torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward = saved


def _grad_disabled_inside(model: nn.Module, x: torch.Tensor) -> bool:
    """True when some submodule of ``model`` runs with gradients disabled (a forward under no_grad)."""
    seen: list[bool] = []
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.append(torch.is_grad_enabled()))
             for m in model.modules() if m is not model]
    try:
        with torch.enable_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return bool(seen) and not all(seen)


def preflight(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str = "model") -> tuple[nn.Module, Preflight]:
    """Probe ``model`` (in eval mode; its mode is restored) on images ``x`` / labels ``y`` (module docstring);
    returns the model to evaluate (``model``, or ``CopyInput(model)``) and the findings."""
    was_training = model.training
    model.eval()
    try:
        return _preflight(model, x, y, name)
    finally:
        model.train(was_training)


def _preflight(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str) -> tuple[nn.Module, Preflight]:
    found = Preflight()
    x, y = x[:PROBE_IMAGES], y[:PROBE_IMAGES]
    lazy = any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())
    if lazy:
        try:
            with torch.no_grad():
                model(x.clone())
        except Exception as e:
            raise BenchError(f"model {name!r} has lazy modules that one forward pass on a {tuple(x.shape)} batch "
                             f"could not materialise: {type(e).__name__}: {str(e)[:120]}") from None
        found.add("lazy-modules", f"model {name!r} had lazy (uninitialised) modules: materialised by one forward "
                                  "pass before the run")
    if lazy or any(isinstance(m, nn.modules.lazy.LazyModuleMixin) for m in model.modules()):
        for p in model.parameters():  # materialised lazy parameters start trainable: freeze them like the rest
            p.requires_grad_(False)
    probe = x.clone()
    version = probe._version  # bumped by every in-place op, even one that leaves the values as they were
    with torch.no_grad():
        model(probe)
    if probe._version != version or not torch.equal(probe, x):
        found.add("writes-input", f"model {name!r} writes into its input tensor: evaluated on a copy of every "
                                  "batch (the data's images are never altered)")
        model = CopyInput(model)
    calls: list[str] = []
    leaf = x.clone().requires_grad_(True)
    with torch.enable_grad(), _count_autograd(calls):
        out = model(leaf)
    if calls:
        found.add("forward-calls-autograd", f"model {name!r}: its forward pass calls {calls[0]}: a gradient "
                                            "computed inside the model usually hides the real one from attacks")
    if isinstance(out, torch.Tensor) and out.dim() == 2 and len(out) == len(x):
        p = out.detach().float()
        if (p >= 0).all() and (p <= 1).all() and torch.allclose(p.sum(1), torch.ones(len(p)).to(p), atol=1e-3):
            found.add("probabilities", f"model {name!r} returns probabilities, not logits: cross-entropy on "
                                       "them saturates and weakens gradient attacks; return the logits (the "
                                       "margin / DLR losses of PGD loss=margin and AutoAttack are not affected)")
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        how = ("runs (part of) its forward under torch.no_grad()" if _grad_disabled_inside(model, x)
               else "detaches the input or an intermediate (.detach(), .data, numpy)")
        found.add("no-gradient-graph", f"model {name!r} {how}: no gradient reaches the input, so gradient "
                                       "attacks cannot run; evaluated with BPDA, Square and transfer instead")
        return model, found
    _gradient_flags(out, leaf, y, name, found)
    return model, found


def _gradient_flags(out: torch.Tensor, leaf: torch.Tensor, y: torch.Tensor, name: str, found: Preflight) -> None:
    """Zero, vanishing or non-finite gradients of the logit margin (module docstring)."""
    z = out.float()
    true = z.gather(1, y[:, None].to(z.device)).squeeze(1)
    other = z.scatter(1, y[:, None].to(z.device), float("-inf")).amax(1)
    (g,) = torch.autograd.grad((true - other).sum(), leaf, allow_unused=True)
    g = torch.zeros_like(leaf) if g is None else g.detach()
    flat = g.flatten(1)
    big = flat.abs().amax(1)
    share = lambda mask: float(mask.float().mean())  # noqa: E731
    if not torch.isfinite(flat).all():
        found.add("nonfinite-gradients", f"model {name!r}: input gradients are NaN or inf on "
                                         f"{100 * share(~torch.isfinite(flat).all(1)):.0f} % of probe images")
    elif share(big == 0) > ZERO_SHARE:
        found.add("zero-gradients", f"model {name!r}: the input gradient is exactly zero on "
                                    f"{100 * share(big == 0):.0f} % of probe images (quantised or saturated "
                                    "layers): gradient attacks cannot move; BPDA, Square and transfer added")
    elif share(big < VANISHING) > 0.5:
        found.add("vanishing-gradients", f"model {name!r}: input gradients below {VANISHING:g} on "
                                         f"{100 * share(big < VANISHING):.0f} % of probe images: BPDA, Square "
                                         "and transfer added")
