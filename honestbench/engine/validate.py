"""Checks of a user's model before any attack: each problem is one line, an error (:class:`ModelCheckError`,
exit status 2 on the command line) when no number measured on the model could be right, a warning otherwise.

Errors: the forward pass fails on a batch of the data; the output is not a (batch, classes) tensor of logits
(``num_classes`` from the card, else the dataset's); NaN or inf logits. Warnings: the model was in train mode,
or some parameters required grad (:func:`prepared` evaluates it in eval mode with every parameter frozen and
restores both afterwards); clean accuracy near chance, with the probe of :func:`input_range_probe` naming the
likely cause: the model expects mean/std-normalised input or pixels in [0, 255] instead of [0, 1] (the fix:
``normalize = {mean, std}`` in its card, or ``--normalize``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from honestbench.core.errors import BenchError
from honestbench.nets.layers.common import DATASET_STATS

#: images of the data the checks classify (the first ones, in canonical order)
PROBE_IMAGES = 256
#: clean accuracy below this multiple of chance (1 / classes) is "near chance"
NEAR_CHANCE = 1.5
#: an alternative input scaling counts as the likely cause when it beats [0, 1] by this much (a fraction)
PROBE_MARGIN = 0.2
FIX = "add normalize = {{mean = {mean}, std = {std}}} to its card, or pass --normalize {flag}"


class ModelCheckError(BenchError):
    """A user's model cannot be evaluated as it is (wrong output, NaN logits, failing forward pass)."""


@contextlib.contextmanager
def prepared(model: nn.Module, name: str = "model", warn: list[str] | None = None) -> Iterator[nn.Module]:
    """``model`` in eval mode with every parameter frozen for the ``with`` block; its mode and each
    parameter's ``requires_grad`` are restored afterwards. Appends a warning to ``warn`` for each change."""
    was_training = model.training
    grads = [p for p in model.parameters()  # lazy parameters: materialised and frozen by the preflight
             if p.requires_grad and not isinstance(p, nn.parameter.UninitializedParameter)]
    if warn is not None and was_training:
        warn.append(f"model {name!r} was in train mode: evaluated in eval mode (call model.eval() to silence this)")
    if warn is not None and grads:
        warn.append(f"model {name!r}: {len(grads)} parameters required grad: frozen for the run and restored after")
    model.eval()
    for p in grads:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in grads:
            p.requires_grad_(True)
        model.train(was_training)


def _logits(model: nn.Module, x: torch.Tensor, name: str, num_classes: int) -> torch.Tensor:
    """The model's logits on ``x``, checked: one-line :class:`ModelCheckError` otherwise."""
    shape = "x".join(str(s) for s in x.shape)
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ModelCheckError(f"model {name!r}: forward pass on a {shape} batch (float32 NCHW, pixels in [0, 1]) "
                              f"failed: {type(e).__name__}: {first}") from None
    if not isinstance(out, torch.Tensor) or out.shape != (len(x), num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelCheckError(f"model {name!r} returned {got} for a {shape} batch: expected ({len(x)}, "
                              f"{num_classes}) logits, one per class (set num_classes in its card if it differs)")
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).any(1).sum())
        raise ModelCheckError(f"model {name!r} returned NaN or inf logits for {bad} of {len(x)} clean images: "
                              "fix the model (check its normalisation and weights) before evaluating it")
    return out


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, num_classes: int) -> float:
    return float((_logits(model, x, name, num_classes).argmax(1) == y).float().mean())


def input_range_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dataset: str, name: str,
                      num_classes: int) -> str | None:
    """A warning when clean accuracy on pixels in [0, 1] is near chance or far below that on the dataset's
    mean/std-normalised images or on pixels in [0, 255] (naming the fix), else None."""
    acc = _accuracy(model, x, y, name, num_classes)
    chance = 1.0 / num_classes
    mean, std = DATASET_STATS.get(dataset, DATASET_STATS["none"])
    if len(mean) != x.shape[1]:
        mean, std = (mean[0],) * x.shape[1], (std[0],) * x.shape[1]
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    alternatives = [
        ("mean/std-normalised", (x - m) / s, FIX.format(mean=list(mean), std=list(std), flag=dataset)),
        ("0-255", x * 255, FIX.format(mean=[0.0] * x.shape[1], std=[round(1 / 255, 8)] * x.shape[1], flag="255")),
    ]
    head = f"model {name!r}: clean accuracy {100 * acc:.1f} % on {len(y)} images with pixels in [0, 1]"
    for label, x_alt, fix in alternatives:
        alt = _accuracy(model, x_alt, y, name, num_classes)
        if alt >= acc + PROBE_MARGIN and alt > NEAR_CHANCE * chance:
            return f"{head} but {100 * alt:.1f} % on {label} ones: likely a normalisation mismatch: bench feeds " \
                   f"pixels in [0, 1]; {fix}"
    if acc < NEAR_CHANCE * chance:
        return (f"{head} is near chance ({100 * chance:.0f} %): likely a normalisation mismatch or untrained "
                "weights: bench feeds pixels in [0, 1]; if the model expects normalised input, add normalize = "
                f"{{mean = [...], std = [...]}} to its card, or pass --normalize {dataset}")
    return None


def validate_model(model: nn.Module, data, name: str = "model", num_classes: int | None = None,
                   device: torch.device | str | None = None) -> list[str]:
    """Check ``model`` (already in eval mode, see :func:`prepared`) on the first :data:`PROBE_IMAGES` images of
    ``data`` (a :class:`honestbench.data.EvalSet`, pixels in [0, 1]); raise :class:`ModelCheckError` on a fatal
    problem, return the warnings (module docstring)."""
    classes = len(data.classes)
    if num_classes is not None and num_classes != classes:
        raise ModelCheckError(f"model {name!r} has {num_classes} classes but {data.name} has {classes}: evaluate "
                              f"it on its own data (--data) or fix num_classes in its card")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = data.x[:PROBE_IMAGES].to(device)
    y = data.y[:PROBE_IMAGES].to(device)
    warning = input_range_probe(model, x, y, data.name, name, classes)
    return [warning] if warning else []
