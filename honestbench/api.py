"""The Python API behind ``honestbench.evaluate_model``, ``honestbench.attack`` and ``honestbench.load_model``: the
same pipeline
as ``bench run`` (same suites, seeds, batch size, records, leaderboard and figures) for a model in hand.

Images are float32 NCHW with pixels in [0, 1]; budgets (``eps``) in the same units.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from honestbench import report
from honestbench.attacks import Attack, attack_defaults, create_attack
from honestbench.core.datawords import data_word
from honestbench.core.threads import resolve_device
from honestbench.data import load_eval
from honestbench.engine.options import EvalOptions
from honestbench.engine.stochastic import R_DEFAULT
from honestbench.engine.validate import PROBE_IMAGES, prepared
from honestbench.pipeline.models import checked, resolve_model_specs
from honestbench.pipeline.run import evaluate_and_diagnose
from honestbench.results import load as load_records
from honestbench.suites.user import parse_number, resolve_suite
from honestbench.zoo import Card
from honestbench.zoo.source import ModelSource
from honestbench.zoo.user import load_any


def _warn(text: str) -> None:
    warnings.warn(text.removeprefix("warning: "), UserWarning, stacklevel=3)


def evaluate_model(
    model: nn.Module | str,
    suite: str = "standard",
    data: str = "cifar10",
    n: int | None = None,
    eps: float | str | None = None,
    out: str | Path | None = None,
    device: str | torch.device | None = None,
    *,
    threat_model: str | None = None,
    name: str | None = None,
    num_classes: int | None = None,
    normalize: Mapping | None = None,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Evaluate ``model`` under ``suite`` on the first ``n`` images of ``data`` and return its records (one row
    per model x column, as ``bench run`` writes them).

    ``model``: an ``nn.Module`` taking pixels in [0, 1] (its mode and ``requires_grad`` flags are restored
    afterwards), a zoo name, a card file or a model spec (``FILE.py:builder@weights.pt``). ``suite``: a name or
    a suite file; ``threat_model`` (``Linf``/``L2``) and ``eps`` (``8/255`` accepted) scale it. ``out``: also
    write records, matrices, leaderboard and figures there (a ``bench run`` folder may be joined when its
    settings match); default a temporary folder. ``device``: default cuda when available."""
    dataset, source = data_word(data)
    suite_ = resolve_suite(suite, threat_model, eps)
    n = n if n is not None else suite_.default_n
    opts = EvalOptions(batch_size=batch_size, seed=seed, device=resolve_device(str(device or "auto")),
                       passes=R_DEFAULT, progress=progress)
    evalset = load_eval(dataset, n, source)
    with contextlib.ExitStack() as stack:
        if isinstance(model, nn.Module):
            name = name or "model"
            found: list[str] = []
            stack.enter_context(prepared(model, name, found))
            for text in found:
                _warn(text)
            own = ModelSource.of(name, model, checkpoint_sha256="", data=dataset,
                                 description=f"Python object {name}", num_classes=num_classes)
            specs = [checked(own, lambda: _head(evalset), log=_warn)]
        else:
            specs = resolve_model_specs(None, [model], dataset, n, source, normalize, log=_warn)
            if name:
                specs[0].name = name
        tmp = None if out is not None else stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
        folder = Path(out if out is not None else tmp)
        command = f"honestbench.evaluate_model({specs[0].name!r}, suite={suite_.name!r}, data={data!r}, n={n})"
        evaluate_and_diagnose(specs, suite_, evalset, folder, opts, command=command, data_source=source,
                              log=lambda text: None)
        if out is not None:
            report.write_report(folder)
        frame = load_records(folder)
    return frame[frame["model"] == specs[0].name].reset_index(drop=True)


def _head(evalset):
    """The first :data:`~honestbench.engine.validate.PROBE_IMAGES` images of ``evalset``, which validate a model."""
    if len(evalset) <= PROBE_IMAGES:
        return evalset
    return dataclasses.replace(evalset, x=evalset.x[:PROBE_IMAGES], y=evalset.y[:PROBE_IMAGES],
                               index=evalset.index[:PROBE_IMAGES])


def attack(name: str, eps: float | str | None = None, **params: object) -> Attack:
    """A configured attack, a callable ``attack(model, x, y) -> x_adv`` (pixels in [0, 1], the model
    evaluated frozen in eval mode, seeded by default). ``eps`` (``8/255`` accepted) sets the budget and scales
    the default step size ``alpha`` with it (L-inf: eps / 4); other parameters as ``bench list attacks``."""
    if eps is not None:
        eps = parse_number(eps)
        defaults = attack_defaults(name)
        if "alpha" not in params and defaults.get("alpha") and defaults.get("eps"):
            params["alpha"] = defaults["alpha"] * eps / defaults["eps"]
        params["eps"] = eps
    return create_attack(name, **params)


def load_model(name_or_card: str | Card, device: str | torch.device = "cpu") -> nn.Module:
    """A zoo model, a card (file or :class:`honestbench.zoo.Card`) or a model spec (``FILE.py:builder@weights.pt``,
    ``pkg.module:builder``, TorchScript, ``torch.export``): eval mode, parameters frozen, pixels in [0, 1]."""
    return load_any(name_or_card, device)
