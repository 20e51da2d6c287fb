"""The ``pgd-cost`` sections of ``bench speed``: PGD-10 L-inf (the standard budget, random start) on one batch,
ours against the limit of the machine, torchattacks and ART, all through their public entry points.

Figures (seconds per call; ratios are unitless):
  (a) ``limit``: 10 x (one forward + input-gradient pass), :func:`honestbench.attacks.input_grad`;
  (b) ``ours`` with ``early_stop=False`` (every sample does all 10 steps: comparable with the limit and the
      references) and ``ours_early_stop`` with the default first-success early stop;
  (c) ``torchattacks`` PGD; (d) ``art`` ProjectedGradientDescent, the same settings;
  ``step_ops``: our 10 step updates (sign, step, projection, clip) alone, a low-noise bound on the kernel's
  overhead over the limit.
They run on the same model with frozen parameters, interleaved repeat by repeat and rotated (so background load
hits every method alike), after one warm-up run; the ratios come three ways, side by side: of the median wall
times, of the fastest repeats (``*_min``) and of the median CPU seconds of this process per call (``*_cpu``: the
work done, which time slices lost to other processes on a shared machine do not inflate). Untrained
weights (seeded): the cost of a pass does not depend on them; the early-stop figure does (an untrained model is
fooled fast), so it is reported, not used in a ratio.

Precision (``--precision``, :mod:`.precision`): ``fp32``, or ``bf16`` autocast around the limit, our PGD and
torchattacks and inside the model's forward for ART; the step updates are elementwise fp32 in both. Each result
says which library ran in which precision (``libraries_precision``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np
import torch
import torchattacks
from tabulate import tabulate
from torch import nn

from honestbench.attacks import create_attack, frozen_eval, input_grad
from honestbench.core.budgets import ALPHA_LINF, EPS_LINF
from honestbench.core.precision import AutocastForward, autocast
from honestbench.devtools.optional import import_art
from honestbench.devtools.speed.options import Context, SpeedOptions
from honestbench.devtools.speed.timing import time_interleaved
from honestbench.nets.backbones.small_cnn import SmallCNN
from honestbench.nets.backbones.wideresnet import WideResNet

EPS, ALPHA, STEPS = EPS_LINF, ALPHA_LINF, 10


def small_cnn(in_channels: int, input_size: int, dataset: str) -> nn.Module:
    return SmallCNN(in_channels=in_channels, input_size=input_size, dataset=dataset)


def wrn34_1(in_channels: int, input_size: int, dataset: str) -> nn.Module:
    return WideResNet(depth=34, width=1, in_channels=in_channels, dataset=dataset)


def wrn34_10(in_channels: int, input_size: int, dataset: str) -> nn.Module:
    """WRN-34-10 (46 M parameters: ~650 ms per image forward+backward on one CPU core; a GPU section)."""
    return WideResNet(depth=34, width=10, in_channels=in_channels, dataset=dataset)


#: ``--archs`` word -> the architecture of its ``pgd-cost`` section
ARCHS = {"small": small_cnn, "wrn-34-1": wrn34_1, "wrn-34-10": wrn34_10}


def _under(precision: str, device: torch.device, fn: Callable[[], object]) -> Callable[[], object]:
    def call() -> object:
        with autocast(precision, device):
            return fn()

    return call


def libraries_precision(precision: str, art: bool) -> dict[str, str]:
    """Which contender ran in which precision, as written into the result."""
    out = {k: precision for k in ("limit", "ours", "ours_early_stop", "torchattacks")}
    out["step_ops"] = "fp32 (elementwise: autocast does not apply)"
    if art:
        out["art"] = precision if precision == "fp32" else (
            f"{precision} (autocast inside the model's forward, logits cast to fp32: ART's numpy has no bf16)")
    return out


def _contenders(model: nn.Module, x: torch.Tensor, y: torch.Tensor, art: bool,
                precision: str = "fp32") -> dict[str, Callable[[], object]]:
    """The calls timed by :func:`pgd_cost`, by figure key, each under ``precision``."""
    ours = create_attack("pgd-linf", eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True, early_stop=False)
    ours_es = create_attack("pgd-linf", eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True, early_stop=True)
    gen = torch.Generator(device=x.device).manual_seed(0)
    ta = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)

    def limit() -> None:
        for _ in range(STEPS):
            input_grad(model, x, y)

    with frozen_eval(model):
        g0, _ = input_grad(model, x, y)
    x_step = x.clone()

    def step_ops() -> None:  # our per-step work besides the gradient pass (sign, step, projection, clip)
        xa = x_step
        for _ in range(STEPS):
            xa = ours._step_(xa, g0, x)

    dev = x.device
    fns: dict[str, Callable[[], object]] = {
        "limit": _under(precision, dev, limit),
        "ours": _under(precision, dev, lambda: ours(model, x, y, generator=gen)),
        "ours_early_stop": _under(precision, dev, lambda: ours_es(model, x, y, generator=gen)),
        "torchattacks": _under(precision, dev, lambda: ta(x, y)),
        "step_ops": step_ops,
    }
    if art:  # ART is optional: imported only when asked for
        from honestbench.devtools.crosscheck.references import art_classifier

        with torch.no_grad():
            nb_classes = model(x[:1]).shape[1]
        art_model = model if precision == "fp32" else AutocastForward(model, precision)
        art_pgd = import_art("art.attacks.evasion").ProjectedGradientDescent(
            art_classifier(art_model, x, nb_classes), norm=np.inf, eps=EPS, eps_step=ALPHA, max_iter=STEPS,
            num_random_init=1, batch_size=len(x), verbose=False,
        )
        x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
        fns["art"] = lambda: art_pgd.generate(x_np, y=y_np)
    return fns


def _ratio(a: float, b: float, digits: int = 4) -> float:
    return round(a / b, digits)


def pgd_cost(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int = 3, art: bool = True,
             precision: str = "fp32") -> dict:
    """Times (a)-(d) of the module docstring on ``model`` and the batch ``(x, y)`` under ``precision``; returns
    seconds (median and every repeat), the ratios, the precision and which library ran in which."""
    fns = _contenders(model, x, y, art, precision)
    cpu: dict[str, list[float]] = {}
    with frozen_eval(model):
        times = time_interleaved(fns, repeats, x.device, cpu=cpu)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    out = {
        "batch": len(x), "steps": STEPS, "repeats": repeats, "precision": precision,
        "libraries_precision": libraries_precision(precision, "art" in fns),
        "seconds_median": {k: round(v, 4) for k, v in med.items()},
        "seconds_all": {k: [round(t, 4) for t in v] for k, v in times.items()},
        "pgd_over_limit": _ratio(med["ours"], med["limit"]),
        "pgd_over_torchattacks": _ratio(med["ours"], med["torchattacks"]),
        "torchattacks_over_limit": _ratio(med["torchattacks"], med["limit"]),
        "pgd_early_stop_over_limit": _ratio(med["ours_early_stop"], med["limit"]),
        # the kernel's own work, timed alone: a low-noise bound on (ours - limit) / limit
        "step_ops_over_limit": _ratio(med["step_ops"], med["limit"], 5),
        # the same ratios from the fastest repeat of each (less sensitive to load from other processes)
        "pgd_over_limit_min": _ratio(best["ours"], best["limit"]),
        "pgd_over_torchattacks_min": _ratio(best["ours"], best["torchattacks"]),
        "seconds_min": {k: round(v, 4) for k, v in best.items()},
        # and from the CPU seconds of this process per call (the work done: the least sensitive to other
        # processes on a shared machine, where wall time also counts the time the scheduler gave away)
        "pgd_over_limit_cpu": _ratio(cmed["ours"], cmed["limit"]),
        "pgd_over_torchattacks_cpu": _ratio(cmed["ours"], cmed["torchattacks"]),
        "cpu_seconds_median": {k: round(v, 4) for k, v in cmed.items()},
        "cpu_seconds_all": {k: [round(t, 4) for t in v] for k, v in cpu.items()},
    }
    if "art" in med:
        out["art_over_pgd"] = _ratio(med["art"], med["ours"])
        out["art_over_pgd_min"] = _ratio(best["art"], best["ours"])
        out["art_over_torchattacks"] = _ratio(med["art"], med["torchattacks"])
    return out


def pgd_section(arch: str) -> Callable[[SpeedOptions, Context], dict]:
    """A section timing :func:`pgd_cost` on the architecture ``ARCHS[arch]`` (seeded untrained weights); the
    labels are the model's own clean fp32 predictions, so every sample starts correctly classified; the
    precision is ``opts.precisions[0]`` (the run calls the section once per precision)."""

    def run(opts: SpeedOptions, ctx: Context) -> dict:
        x = ctx.batch(opts)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(opts.seed)
            model = ARCHS[arch](x.shape[1], x.shape[-1], opts.dataset).to(ctx.device).eval()
        with torch.no_grad():
            y = model(x).argmax(1)
        res = pgd_cost(model, x, y, repeats=opts.repeats, art=opts.art, precision=opts.precisions[0])
        return {"arch": arch, **res}

    return run


LABELS = {"limit": "(a) limit: 10 x (forward + input gradient)",
          "ours": "(b) ours PGD-10, early stop off",
          "ours_early_stop": "(b') ours PGD-10, first-success early stop",
          "torchattacks": "(c) torchattacks PGD-10", "art": "(d) ART PGD-10",
          "step_ops": "our 10 step updates alone (no gradient pass)"}


def format_pgd_cost(name: str, res: dict) -> str:
    """A pgd-cost section as a table of times (median, fastest and CPU, ms) and their ratios to the limit and to
    ours, side by side."""
    if "seconds_median" not in res:
        return f"{name}: {res}"
    med, best = res["seconds_median"], res["seconds_min"]
    cmed = res.get("cpu_seconds_median")
    rows = []
    for k, v in med.items():
        row = [LABELS.get(k, k), f"{1000 * v:.1f}", f"{v / med['limit']:.3f}", f"{v / med['ours']:.3f}",
               f"{1000 * best[k]:.1f}", f"{best[k] / best['limit']:.3f}"]
        if cmed:
            row += [f"{1000 * cmed[k]:.1f}", f"{cmed[k] / cmed['limit']:.3f}", f"{cmed[k] / cmed['ours']:.3f}"]
        rows.append(row)
    head = ["", "median ms", "/ limit", "/ ours", "min ms", "min / limit"]
    head += ["CPU ms", "CPU / limit", "CPU / ours"] if cmed else []
    lib = res.get("libraries_precision", {})
    bf16 = sorted(k for k, v in lib.items() if v.startswith("bf16"))
    note = f"\nbf16 autocast: {', '.join(bf16)}; the rest fp32" if bf16 else ""
    return (f"{name} (batch {res['batch']}, median of {res['repeats']}, {res.get('precision', 'fp32')})\n"
            + tabulate(rows, head, "github") + note)
