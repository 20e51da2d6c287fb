"""The ``bench crosscheck`` program below its flags: the model to check (``tiny-digits``, a checkpoint file or a
zoo name), its evaluation images (pixels in [0, 1]), the run, and the result's provenance."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import art
import torch
import torchattacks
from torch import nn

from honestbench.core.errors import BenchError
from honestbench.data import load_eval
from honestbench.devtools.crosscheck.compare import REFERENCES
from honestbench.devtools.crosscheck.driver import AttackSpec, crosscheck
from honestbench.train.tiny import train_tiny_digits
from honestbench.zoo import get_card, load_model


def _load_with_builder(path: str, builder: str, device: torch.device) -> nn.Module:
    """``builder()`` (``package.module.function``) with the state dict of checkpoint ``path`` loaded."""
    mod_name, _, attr = builder.rpartition(".")
    try:
        model = getattr(importlib.import_module(mod_name), attr)()
    except (ImportError, AttributeError, ValueError) as e:
        raise BenchError(f"cannot import builder {builder!r} ({e}); use PATH.pt:package.module.builder") from None
    state = torch.load(path, map_location=device, weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise BenchError(f"{path} does not fit {builder}: {str(e).splitlines()[0]}") from None
    return model.to(device).eval()


def load_reference_model(spec: str, device: torch.device, seed: int = 0) -> tuple[nn.Module, str | None]:
    """``tiny-digits`` (trained on the fly), ``PATH.pt[:module.builder]`` or a zoo name -> (model, dataset).

    The dataset is None when the model does not imply one (then ``--dataset`` decides)."""
    if spec == "tiny-digits":
        return train_tiny_digits(seed=seed).to(device), "digits"
    path, _, builder = spec.partition(":") if ".pt" in spec or ".pth" in spec else (spec, "", "")
    if not path.endswith((".pt", ".pth")):
        return load_model(spec, device=device), getattr(get_card(spec), "data", None)
    if not Path(path).is_file():
        raise BenchError(f"model file {path} not found")
    if builder:
        return _load_with_builder(path, builder, device), None
    try:
        return torch.jit.load(path, map_location=device).eval(), None
    except RuntimeError as e:
        raise BenchError(f"{path} is not a TorchScript file ({e.__class__.__name__}); "
                         f"name its builder: --model {path}:package.module.builder") from None


def run_crosscheck(
    spec: str,
    *,
    device: torch.device,
    dataset: str | None = None,
    n: int | None = 128,
    source: str = "npz",
    seed: int = 0,
    attacks: Sequence[AttackSpec] | str | None = "all",
    random_seeds: int = 8,
    references: Sequence[str] = REFERENCES,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Load model ``spec`` and the first ``n`` evaluation images of its dataset (the model's own, else ``dataset``,
    else CIFAR-10), run :func:`~honestbench.devtools.crosscheck.driver.crosscheck`, and return its result with the
    model,
    dataset, device, library versions and wall seconds in front. ``log`` gets one line per step."""
    say = log or (lambda line: None)
    model, implied = load_reference_model(spec, device, seed=seed)
    dataset = implied or dataset or "cifar10"
    data = load_eval(dataset, n=n, source=source)
    x, y = data.x.to(device), data.y.to(device)
    say(f"crosscheck: model {spec}, dataset {dataset}, n={len(y)}, device {device}, seed {seed}")
    t = time.perf_counter()
    references = tuple(references)
    result = crosscheck(model, x, y, attacks=attacks, seed=seed, random_seeds=random_seeds, references=references,
                        progress=lambda a: say(f"  running {a} ..."))
    versions = {"torch": torch.__version__, "torchattacks": torchattacks.__version__}
    if "art" in references:
        versions["art"] = art.__version__
    return {"model": spec, "dataset": dataset, "device": str(device), "versions": versions,
            "seconds": round(time.perf_counter() - t, 2), **result}
