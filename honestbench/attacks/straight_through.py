"""``bpda-st``: PGD L-inf through BPDA's straight-through estimator (Athalye et al. 2018), for models whose own
gradients are zero or missing. Pixels in [0, 1]; ``eps`` and ``alpha`` in the same units.

Two levels, the first that gives a gradient:
  * every rounding operation the forward pass calls (``round``, ``floor``, ``ceil``, ``trunc``, ``sign``, as
    functions or tensor methods) keeps its value but passes the gradient through unchanged (identity
    backward), located at run time by a ``TorchFunctionMode``, whatever module or plain function calls it
    (an input quantiser ``round(16 x) / 16``, a binarised layer);
  * when the forward pass builds no graph at all (it runs under ``torch.no_grad()``, detaches, or leaves
    torch), the whole model is straight-through: its logits with the gradient of a differentiable stand-in
    ``source`` (a zoo model or one registered in memory, :func:`honestbench.attacks.transfer.load_source`) --
    BPDA with the stand-in as the approximation ``g(x) ~ f(x)``; without a ``source`` the images are
    returned unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from honestbench.attacks.adaptive_pgd import AdaptivePGD
from honestbench.attacks.base import frozen_eval
from honestbench.attacks.registry import register_attack
from honestbench.attacks.transfer import load_source

_ROUNDING = frozenset({torch.round, torch.floor, torch.ceil, torch.trunc, torch.sign, torch.fix,
                       torch.Tensor.round, torch.Tensor.floor, torch.Tensor.ceil, torch.Tensor.trunc,
                       torch.Tensor.sign, torch.Tensor.fix})


class StraightThroughMode(TorchFunctionMode):
    """Within the block, each rounding op on a tensor that requires grad returns ``x + (op(x) - x).detach()``:
    the op's value with an identity backward."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        x = args[0] if args else None
        if func in _ROUNDING and isinstance(x, torch.Tensor) and x.requires_grad and out.shape == x.shape:
            return x + (out - x).detach()
        return out


class StraightThrough(nn.Module):
    """``model`` with its rounding ops straight-through (:class:`StraightThroughMode`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with StraightThroughMode():
            return self.model(x)


class WholeModelBPDA(nn.Module):
    """The logits of ``model`` with the gradient of ``standin`` (BPDA through the whole model)."""

    def __init__(self, model: nn.Module, standin: nn.Module):
        super().__init__()
        self.model, self.standin = model, standin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            real = self.model(x.detach()).float()
        smooth = self.standin(x)
        return smooth + (real - smooth).detach()


def has_graph(model: nn.Module, x: torch.Tensor) -> bool:
    """True when ``model``'s output on ``x`` depends on ``x`` through autograd."""
    with torch.enable_grad():
        out = model(x.detach().clone().requires_grad_(True))
    return isinstance(out, torch.Tensor) and out.requires_grad


@register_attack("bpda-st")
@dataclasses.dataclass
class StraightThroughPGD(AdaptivePGD):
    """PGD L-inf with straight-through rounding ops, or the gradient of ``source`` when the model has no
    graph (module docstring). Deterministic models: first-success early stop by default."""

    name: ClassVar[str] = "bpda-st"
    description: ClassVar[str] = "PGD with BPDA straight-through rounding ops (or a stand-in's gradient)"
    roles: ClassVar[frozenset[str]] = frozenset({"adaptive", "own"})

    steps: int = 50
    early_stop: bool = True
    source: str = ""

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
                ) -> torch.Tensor:
        wrapped: nn.Module = StraightThrough(model)
        if len(x) and not has_graph(wrapped, x[:1]):
            if not self.source:
                return x.clone()
            src = load_source(self.source, x.device)
            with frozen_eval(src):
                return self.pgd().perturb(WholeModelBPDA(model, src), x, y, generator)
        return self.pgd().perturb(wrapped, x, y, generator)
