"""bench: adversarial-robustness benchmark harness for image classifiers.

Conventions (see docs/methods.md): images are float32 NCHW tensors with pixels in [0, 1]; every budget (eps,
alpha) is in the same [0, 1] units; normalisation lives inside the model.

The Python API (imported on first use, PEP 562, so ``import honestbench``, ``bench --help`` and ``bench report``
load no torch):

* :func:`evaluate_model` ``(model, suite="standard", data="cifar10", n=None, eps=None, out=None, device=None)
  -> pandas.DataFrame``: the records ``bench run`` writes, for any ``nn.Module`` or model spec;
* :func:`attack` ``("pgd-linf", eps=8/255)``: a callable ``attack(model, x, y) -> x_adv``;
* :func:`load_model` ``(name_or_card)``: a zoo model, a card file or ``FILE.py:builder@weights.pt``;
* :mod:`honestbench.results` (``honestbench.results.load(dir)``: a results folder's records as a DataFrame) and
  :class:`Matrix` (``Matrix.to_frame()``: one row per image).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from honestbench.core import __version__

if TYPE_CHECKING:
    from honestbench import results
    from honestbench.api import attack, evaluate_model, load_model
    from honestbench.results.matrix import Matrix

#: name -> module that defines it (imported on first access: the API needs torch)
_LAZY = {"evaluate_model": "honestbench.api", "attack": "honestbench.api", "load_model": "honestbench.api",
         "Matrix": "honestbench.results.matrix"}

__all__ = ["Matrix", "__version__", "attack", "evaluate_model", "load_model", "results"]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        # function-level: honestbench.api imports torch, which `bench --help` and `bench report` never need
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name == "results":
        import importlib

        return importlib.import_module("honestbench.results")
    raise AttributeError(f"module 'honestbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
