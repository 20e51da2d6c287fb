"""``bench speed``: where our kernels stand against torchattacks, ART and the limit of the machine, measured
side by side in one process.

Section ``pgd-cost`` (issue 3's benchmark, issue 7 items a-d), on the small CNN (``bench.nets.SmallCNN``) and,
unless ``--quick``, on WRN-34-1, batch 256 of the evaluation images:
  (a) the limit: 10 x (one forward + input-gradient pass), :func:`bench.attacks.input_grad`;
  (b) our PGD-10 L-inf (8/255, alpha 2/255, random start) with ``early_stop=False`` (every sample does all
      10 steps: comparable with the limit and the references), and with the default first-success early stop;
  (c) torchattacks' PGD-10 with the same settings; (d) ART's ProjectedGradientDescent, the same settings.
All run through their public entry points (ours: ``attack(model, x, y)`` with its input and budget checks), on
the same model with frozen parameters, interleaved repeat by repeat (so background load hits every method
alike); each figure is the median over ``--repeats`` after one warm-up run. Untrained weights (seeded): the
cost of a pass does not depend on them; the early-stop figure does (an untrained model is fooled fast), so it
is reported, not used in a ratio. Our 10 step updates (sign, step, projection, clip) are also timed alone: a
low-noise bound on the kernel's overhead over the limit. The ratios of the fastest repeats (``*_min``) are
kept as well: on a shared machine a repeat can take 2x longer when another process wakes up. Threads: torch's
default unless the caller sets them (``benchmarks/pgd_cost.py --threads 1`` is the most reproducible on a busy
2-core box, where two OpenMP threads contend with other processes); the machine record says what was used.

Headline keys (top level of the JSON): ``pgd_over_limit`` (target <= 1.05, ideally <= 1.03),
``pgd_over_torchattacks`` (target <= 1.0), ``art_over_pgd``; plus ``machine``. Further sections (issue 7:
(e) the standard suite with early exit, (f) SLWTA inference) register themselves in :data:`SECTIONS` with
:func:`section`; ``--quick`` skips the ones marked heavy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.attacks import create_attack, frozen_eval, input_grad

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10


# ----------------------------------------------------------------------------------------------- sections
@dataclass
class Section:
    """One measurement of ``bench speed``: ``run(args, ctx) -> dict`` (its figures); ``heavy`` ones are
    skipped by ``--quick``; ``headline`` maps top-level JSON keys to keys of the section's result."""

    name: str
    run: Callable[[argparse.Namespace, dict], dict]
    heavy: bool = False
    headline: dict[str, str] | None = None


SECTIONS: list[Section] = []


def section(name: str, heavy: bool = False, headline: dict[str, str] | None = None):
    """Decorator registering a ``bench speed`` section (in call order)."""

    def deco(fn: Callable[[argparse.Namespace, dict], dict]) -> Callable[[argparse.Namespace, dict], dict]:
        SECTIONS.append(Section(name, fn, heavy, headline))
        return fn

    return deco


# ----------------------------------------------------------------------------------------------- helpers
def machine_info(device: torch.device) -> dict:
    """What the figures were measured on: CPU/GPU name, cores, torch threads, load at the start."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if hasattr(os, "getloadavg"):
        info["loadavg_1min_at_start"] = round(os.getloadavg()[0], 2)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                     warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function: ``warmup`` untimed rounds, then ``repeats`` rounds in which every
    function runs once, in turn (background load then affects all of them alike)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t)
    return times


def small_cnn(in_channels: int, input_size: int, dataset: str) -> nn.Module:
    from bench.nets.small_cnn import SmallCNN

    return SmallCNN(in_channels=in_channels, input_size=input_size, dataset=dataset)


def wrn34_1(in_channels: int, input_size: int, dataset: str) -> nn.Module:
    from bench.nets.wideresnet import WideResNet

    return WideResNet(depth=34, width=1, in_channels=in_channels, dataset=dataset)


def pgd_cost(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int = 3,
             art: bool = True) -> dict:
    """Times (a)-(d) of the module docstring on ``model`` and the batch ``(x, y)``; returns seconds
    (median and every repeat) and the ratios."""
    import torchattacks

    device = x.device
    ours = create_attack("pgd-linf", eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True, early_stop=False)
    ours_es = create_attack("pgd-linf", eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True, early_stop=True)
    gen = torch.Generator(device=device).manual_seed(0)
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

    fns: dict[str, Callable[[], object]] = {
        "limit": limit,
        "ours": lambda: ours(model, x, y, generator=gen),
        "ours_early_stop": lambda: ours_es(model, x, y, generator=gen),
        "torchattacks": lambda: ta(x, y),
        "step_ops": step_ops,
    }
    if art:
        from art.attacks.evasion import ProjectedGradientDescent

        from bench.reference import art_classifier

        with torch.no_grad():
            nb_classes = model(x[:1]).shape[1]
        art_pgd = ProjectedGradientDescent(
            art_classifier(model, x, nb_classes), norm=np.inf, eps=EPS, eps_step=ALPHA, max_iter=STEPS,
            num_random_init=1, batch_size=len(x), verbose=False,
        )
        x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
        fns["art"] = lambda: art_pgd.generate(x_np, y=y_np)
    with frozen_eval(model):
        times = time_interleaved(fns, repeats, device)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    out = {
        "batch": len(x), "steps": STEPS, "repeats": repeats,
        "seconds_median": {k: round(v, 4) for k, v in med.items()},
        "seconds_all": {k: [round(t, 4) for t in v] for k, v in times.items()},
        "pgd_over_limit": round(med["ours"] / med["limit"], 4),
        "pgd_over_torchattacks": round(med["ours"] / med["torchattacks"], 4),
        "torchattacks_over_limit": round(med["torchattacks"] / med["limit"], 4),
        "pgd_early_stop_over_limit": round(med["ours_early_stop"] / med["limit"], 4),
        # the kernel's own work, timed alone: a low-noise bound on (ours - limit) / limit
        "step_ops_over_limit": round(med["step_ops"] / med["limit"], 5),
        # the same ratios from the fastest repeat of each (less sensitive to load from other processes)
        "pgd_over_limit_min": round(best["ours"] / best["limit"], 4),
        "pgd_over_torchattacks_min": round(best["ours"] / best["torchattacks"], 4),
        "seconds_min": {k: round(v, 4) for k, v in best.items()},
    }
    if "art" in med:
        out["art_over_pgd"] = round(med["art"] / med["ours"], 4)
        out["art_over_pgd_min"] = round(best["art"] / best["ours"], 4)
        out["art_over_torchattacks"] = round(med["art"] / med["torchattacks"], 4)
    return out


def _batch(args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, str]:
    from bench.data import load_eval

    dataset = getattr(args, "dataset", None) or "cifar10"
    data = load_eval(dataset, n=getattr(args, "batch", 256), source=getattr(args, "data", "npz"))
    return data.x.to(device), dataset


def _pgd_section(builder: Callable[[int, int, str], nn.Module]) -> Callable[[argparse.Namespace, dict], dict]:
    def run(args: argparse.Namespace, ctx: dict) -> dict:
        device = ctx["device"]
        if "batch" not in ctx:
            ctx["batch"] = _batch(args, device)
        x, dataset = ctx["batch"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(getattr(args, "seed", 0))
            model = builder(x.shape[1], x.shape[-1], dataset).to(device).eval()
        with torch.no_grad():  # labels = the model's own clean predictions: every sample starts correct
            y = model(x).argmax(1)
        repeats, art = getattr(args, "repeats", 3), not getattr(args, "no_art", False)
        return pgd_cost(model, x, y, repeats=repeats, art=art)

    return run


HEADLINE = {"pgd_over_limit": "pgd_over_limit", "pgd_over_torchattacks": "pgd_over_torchattacks",
            "art_over_pgd": "art_over_pgd"}
section("pgd-cost small-cnn", headline=HEADLINE)(_pgd_section(small_cnn))
section("pgd-cost wrn-34-1", heavy=True)(_pgd_section(wrn34_1))


# ----------------------------------------------------------------------------------------------- command
def format_section(name: str, res: dict) -> str:
    """A pgd-cost section as a table of times (median, ms) and ratios to the limit."""
    from tabulate import tabulate

    if "seconds_median" not in res:
        return f"{name}: {res}"
    med, best = res["seconds_median"], res["seconds_min"]
    labels = {"limit": "(a) limit: 10 x (forward + input gradient)",
              "ours": "(b) ours PGD-10, early stop off",
              "ours_early_stop": "(b') ours PGD-10, first-success early stop",
              "torchattacks": "(c) torchattacks PGD-10", "art": "(d) ART PGD-10",
              "step_ops": "our 10 step updates alone (no gradient pass)"}
    rows = [[labels.get(k, k), f"{1000 * v:.1f}", f"{v / med['limit']:.3f}", f"{v / med['ours']:.3f}",
             f"{1000 * best[k]:.1f}", f"{best[k] / best['limit']:.3f}"]
            for k, v in med.items()]
    head = ["", "median ms", "/ limit", "/ ours", "min ms", "min / limit"]
    return f"{name} (batch {res['batch']}, median of {res['repeats']})\n" + tabulate(rows, head, "github")


def speed_command(args: argparse.Namespace) -> int:
    """``bench speed``: run the sections (``--quick``: the light ones), print tables, write JSON."""
    from bench.utils import resolve_device, write_json_atomic

    device = resolve_device(getattr(args, "device", "auto"))
    quick = getattr(args, "quick", False)
    ctx: dict = {"device": device}
    result: dict = {"machine": machine_info(device), "quick": quick, "sections": {}}
    m = result["machine"]
    print(f"bench speed on {m['device_name']} ({m['cpus_usable']} usable CPUs, torch threads "
          f"{m['torch_threads']}, load {m.get('loadavg_1min_at_start', '?')})", file=sys.stderr)
    for sec in SECTIONS:
        if quick and sec.heavy:
            continue
        print(f"  measuring {sec.name} ...", file=sys.stderr)
        res = sec.run(args, ctx)
        result["sections"][sec.name] = res
        for key, src in (sec.headline or {}).items():
            if src in res:
                result[key] = res[src]
        print(format_section(sec.name, res))
    heads = {k: result[k] for k in ("pgd_over_limit", "pgd_over_torchattacks", "art_over_pgd") if k in result}
    print("headline: " + ", ".join(f"{k} = {v:.3f}" for k, v in heads.items()))
    # headline keys first in the file
    ordered = {**heads, **{k: v for k, v in result.items() if k not in heads}}
    if getattr(args, "json_path", None):
        write_json_atomic(args.json_path, ordered)
        print(f"wrote {args.json_path}")
    return 0
