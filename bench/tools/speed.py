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

Section ``standard suite early exit vs torchattacks`` (issue 7 item e, heavy): ``bench.eval.engine`` with the
``standard`` suite under early exit on the ``regular`` model and the first ``--n`` (default all 1,017)
evaluation images, against torchattacks running its closest equivalents of the same four attacks on every
image (its CW has no binary search: :data:`TA_CW`); wall and CPU seconds, worst-case accuracy of each.

Sections ``inference slwta ...`` (item f; the WRN one heavy): ms per image at batch 1 and 256 of the
``slwta`` (small CNN), ``slwta-wrn34-1`` and published SLWTA architectures, each as the reference LWTA path,
the default model, :func:`bench.nets.fast.optimize_for_inference` (BN folded, channels-last),
:func:`bench.nets.fast.trace_for_inference` (that, as a frozen TorchScript graph) and, on a CPU where it
builds, that with the fused LWTA kernel (:mod:`bench.nets.lwta_ext`); batch 1 also on one thread (waking a
second thread for each of a batch-1 forward's small parallel regions can cost more than it saves). The
headline takes the fastest of the two traced forms and the two thread counts, and says which.

Headline keys (top level of the JSON, :data:`HEADLINE_KEYS`): ``pgd_over_limit`` (target <= 1.05, ideally
<= 1.03), ``pgd_over_torchattacks`` (target <= 1.0), ``art_over_pgd``, ``early_exit_speedup`` (target >= 3),
``early_exit_worst_case_acc`` (<= ``torchattacks_worst_case_acc``), ``slwta_wrn34_1_ms_per_image_b1``
(target <= 4 on 2 cores; ``..._b256`` <= 3); plus ``machine``. Sections register themselves in
:data:`SECTIONS` with :func:`section`; ``--quick`` skips the ones marked heavy.
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
    fmt: Callable[[str, dict], str] | None = None  # its table (default: format_section)


SECTIONS: list[Section] = []


def section(name: str, heavy: bool = False, headline: dict[str, str] | None = None,
            fmt: Callable[[str, dict], str] | None = None):
    """Decorator registering a ``bench speed`` section (in call order)."""

    def deco(fn: Callable[[argparse.Namespace, dict], dict]) -> Callable[[argparse.Namespace, dict], dict]:
        SECTIONS.append(Section(name, fn, heavy, headline, fmt))
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
        "threads_policy": _threads_policy(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: spin, then sleep)"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if hasattr(os, "getloadavg"):
        info["loadavg_1min_at_start"] = round(os.getloadavg()[0], 2)
    return info


def _threads_policy() -> str:
    from bench.core.threads import default_threads

    n, why = default_threads()
    if n == torch.get_num_threads():
        return f"{n} ({why})"
    return f"set by the caller (default would be {n}: {why})"


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

        from bench.tools.crosscheck import art_classifier

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


# ----------------------------------------------------------------------------------------------- (e) suite
#: top-level keys of the JSON, in this order (each written when its section ran)
HEADLINE_KEYS = ("pgd_over_limit", "pgd_over_torchattacks", "art_over_pgd", "early_exit_speedup",
                 "early_exit_worst_case_acc", "torchattacks_worst_case_acc", "slwta_wrn34_1_ms_per_image_b1",
                 "slwta_wrn34_1_ms_per_image_b256")
SUITE_MODEL = "regular"
#: torchattacks' CW has no binary search over c: one run of 250 Adam steps (our 5 rounds x 50) at its default
#: c = 1, lr 0.01 as ours, kappa 0; a sample counts as fooled when its image is misclassified within L2 0.5
TA_CW = {"c": 1.0, "kappa": 0.0, "steps": 250, "lr": 0.01}


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float, float]:
    """``(result, wall seconds, CPU seconds of this process)``."""
    _sync(device)
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t, time.process_time() - c


def torchattacks_suite(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """Per-sample robust flags (clean-correct and not fooled) of torchattacks' closest equivalents of the
    ``standard`` suite, every attack on every image: FGSM 8/255, PGD-20 L-inf 8/255 alpha 2/255 random
    start, PGD-20 L2 0.5 alpha 0.0625 random start, CW-L2 (:data:`TA_CW`) counted at L2 <= 0.5."""
    import torchattacks

    from bench.attacks.base import l2_norm

    device = next(model.parameters()).device
    atks = {"FGSM": torchattacks.FGSM(model, eps=8 / 255),
            "PGD": torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True),
            "PGD-L2": torchattacks.PGDL2(model, eps=0.5, alpha=2.5 * 0.5 / 20, steps=20, random_start=True),
            "CW": torchattacks.CW(model, **TA_CW)}
    flags = {k: np.zeros(len(x), bool) for k in ("clean", *atks)}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), frozen_eval(model):
        torch.manual_seed(seed)
        for start in range(0, len(x), batch_size):
            sl = slice(start, start + batch_size)
            xb, yb = x[sl].to(device), y[sl].to(device)
            with torch.inference_mode():
                correct = model(xb).argmax(1) == yb
            flags["clean"][sl] = correct.cpu().numpy()
            for label, atk in atks.items():
                adv = atk(xb, yb)
                with torch.inference_mode():
                    fooled = model(adv).argmax(1) != yb
                    if label == "CW":
                        fooled &= l2_norm(adv - xb) <= 0.5
                flags[label][sl] = (correct & ~fooled).cpu().numpy()
    return flags


def suite_vs_torchattacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
                          seed: int = 0) -> dict:
    """(e): ``bench.eval.engine`` on the ``standard`` suite with early exit (the whole harness: clean pass,
    cascade, records) against torchattacks running the same attacks on every image; ours is run before and
    after torchattacks (background load drifts over minutes) and its mean is compared."""
    from bench.eval.engine import evaluate
    from bench.suites import get_suite

    device = next(model.parameters()).device
    suite = get_suite("standard")

    def ours():
        return evaluate(model, x, y, suite, batch_size=batch_size, seed=seed, device=device, progress=False,
                        stochastic=False, name=SUITE_MODEL)

    matrix, w1, c1 = _timed(ours, device)
    ta, w_ta, c_ta = _timed(lambda: torchattacks_suite(model, x, y, batch_size, seed), device)
    _, w2, c2 = _timed(ours, device)
    wall, cpu = (w1 + w2) / 2, (c1 + c2) / 2
    ta_worst = ta["clean"] & ta["FGSM"] & ta["PGD"] & ta["PGD-L2"] & ta["CW"]
    ours_worst = matrix.worst_case() == 1
    cols = {label: matrix.column(label) for label in matrix.labels}
    return {
        "model": SUITE_MODEL, "n": len(x), "batch_size": batch_size, "seed": seed, "suite": "standard",
        "mode": matrix.meta["mode"], "order": matrix.meta["order"],
        "seconds": {"ours": round(wall, 2), "ours_runs": [round(w1, 2), round(w2, 2)],
                    "torchattacks": round(w_ta, 2)},
        "cpu_seconds": {"ours": round(cpu, 2), "ours_runs": [round(c1, 2), round(c2, 2)],
                        "torchattacks": round(c_ta, 2)},
        "early_exit_speedup": round(w_ta / wall, 3),
        "early_exit_speedup_cpu": round(c_ta / cpu, 3),
        "early_exit_worst_case_acc": round(float(ours_worst.mean()), 4),
        "torchattacks_worst_case_acc": round(float(ta_worst.mean()), 4),
        "clean_acc": round(float(matrix.clean_correct.mean()), 4),
        # ours: the first column of the cascade is exact, later ones are upper bounds (not-evaluated = robust)
        "ours_columns_acc_upper": {k: round(float((v != 0).mean()), 4) for k, v in cols.items()},
        "ours_attack_seconds": dict(zip(matrix.labels, [round(float(s), 2) for s in matrix.seconds],
                                        strict=True)),
        "torchattacks_columns_acc": {k: round(float(v.mean()), 4) for k, v in ta.items()},
        "torchattacks_cw": {**TA_CW, "note": "no binary search over c in torchattacks: one run at c = 1 with "
                            "our 5 x 50 steps; fooled when misclassified at L2 <= 0.5"},
    }


@section("standard suite early exit vs torchattacks", heavy=True,
         headline={"early_exit_speedup": "early_exit_speedup",
                   "early_exit_worst_case_acc": "early_exit_worst_case_acc",
                   "torchattacks_worst_case_acc": "torchattacks_worst_case_acc"},
         fmt=lambda name, res: format_suite(name, res))
def suite_section(args: argparse.Namespace, ctx: dict) -> dict:
    """(e) on ``regular`` and the first ``--n`` (default all 1,017) CIFAR-10 evaluation images."""
    from bench.core.errors import BenchError
    from bench.data import load_eval
    from bench.zoo import load_model

    dataset = getattr(args, "dataset", None) or "cifar10"
    if dataset != "cifar10":
        return {"skipped": f"the {SUITE_MODEL} model is a CIFAR-10 model (this run: {dataset})"}
    try:
        model = load_model(SUITE_MODEL, ctx["device"])
    except BenchError as e:
        return {"skipped": str(e)}
    data = load_eval("cifar10", n=getattr(args, "n", None), source=getattr(args, "data", "npz"))
    return suite_vs_torchattacks(model, data.x, data.y, seed=getattr(args, "seed", 0))


def format_suite(name: str, res: dict) -> str:
    from tabulate import tabulate

    if "skipped" in res:
        return f"{name}: skipped ({res['skipped']})"
    s, c = res["seconds"], res["cpu_seconds"]
    rows = [["ours, early exit (bench.eval.engine)", f"{s['ours']:.1f}", f"{c['ours']:.1f}",
             f"{100 * res['early_exit_worst_case_acc']:.1f}"],
            ["torchattacks, every attack on every image", f"{s['torchattacks']:.1f}",
             f"{c['torchattacks']:.1f}", f"{100 * res['torchattacks_worst_case_acc']:.1f}"]]
    head = ["", "wall s", "CPU s", "worst-case acc %"]
    return (f"{name} ({res['model']}, {res['n']} images, batch {res['batch_size']}): speedup "
            f"{res['early_exit_speedup']:.2f}x wall, {res['early_exit_speedup_cpu']:.2f}x CPU\n"
            + tabulate(rows, head, "github"))


# ----------------------------------------------------------------------------------------------- (f) SLWTA
#: (label, zoo card) of the architectures timed by the inference sections
INFERENCE_ARCHS = {"small": [("slwta", "slwta")],
                   "wrn": [("slwta-wrn34-1", "slwta-wrn34-1"), ("published", "slwta-wrn34-1-panousis2021")]}
B1_IMAGES = 16  # single images timed per repeat (batch 1)
INPUT_SHAPE = (3, 32, 32)  # the SLWTA architectures are CIFAR-10 models


def inference_variants(card_name: str, device: torch.device, seed: int = 0) -> dict[str, nn.Module]:
    """The card's architecture (seeded untrained weights: a forward pass costs the same) in up to five
    forms: ``reference`` (the LWTA layers' pair-gate path, as before the inference fast path), ``eager`` (the
    default model: LWTA :meth:`~bench.nets.lwta.LWTA.eval_pair`), ``fast``
    (:func:`bench.nets.fast.optimize_for_inference`: BN folded, channels-last on a CPU), ``traced``
    (:func:`bench.nets.fast.trace_for_inference`: ``fast`` as one frozen TorchScript graph) and, on a CPU
    where the kernel builds, ``fused`` (``traced`` with the fused LWTA kernel of
    :mod:`bench.nets.lwta_ext`; :func:`bench.nets.lwta_ext.status` says why it is missing)."""
    from bench.nets import LWTA, lwta_ext
    from bench.nets.fast import optimize_for_inference, trace_for_inference
    from bench.zoo import build_model, freeze, get_card

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = freeze(build_model(get_card(card_name))).to(device)
    ref = optimize_for_inference(model, channels_last=False, fold_bn=False)
    for m in ref.modules():
        if isinstance(m, LWTA):
            m.fast_eval = False
    fast = optimize_for_inference(model)
    example = torch.rand(1, *INPUT_SHAPE, device=device)
    forms = {"reference": ref, "eager": model, "fast": fast, "traced": trace_for_inference(fast, example)}
    if device.type == "cpu" and lwta_ext.load():
        forms["fused"] = trace_for_inference(fast, example, fused=True)
    return forms


def inference_ms(models: dict[str, nn.Module], x: torch.Tensor, repeats: int = 3,
                 b1_single_thread: bool = True) -> dict:
    """ms per image of each model at batch 1 (``B1_IMAGES`` single images per repeat) and batch 256 (one
    pass per repeat), in ``torch.inference_mode``, interleaved model by model within each repeat after one
    warm-up round; wall (median and min) and CPU time of this process (min). ``b1_single_thread`` (CPU,
    more than one torch thread): batch 1 also on one thread (``b1_1thread``): a batch-1 forward is hundreds
    of small operations, and waking a second thread for each parallel region can cost more than it saves."""
    device = x.device
    big = x[torch.arange(256, device=device) % len(x)]
    singles = [x[i % len(x)][None] for i in range(B1_IMAGES)]
    threads = torch.get_num_threads()
    modes = [("b1", threads), ("b256", threads)]
    if b1_single_thread and device.type == "cpu" and threads > 1:
        modes.append(("b1_1thread", 1))
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}

    def once(m: nn.Module, mode: str) -> tuple[list[float], float]:
        if mode == "b256":
            _, w, c = _timed(lambda: m(big), device)
            return [w / 256], c / 256
        times = []
        c = time.process_time()
        for xi in singles:
            _sync(device)
            t = time.perf_counter()
            m(xi)
            _sync(device)
            times.append(time.perf_counter() - t)
        return times, (time.process_time() - c) / B1_IMAGES

    with torch.inference_mode(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            for rep in range(repeats + 1):
                for name, m in models.items():
                    for mode, n_threads in modes:
                        torch.set_num_threads(n_threads)
                        w, c = once(m, mode)
                        if rep:  # round 0 is the warm-up
                            wall.setdefault((name, mode), []).extend(w)
                            cpu.setdefault((name, mode), []).append(c)
        finally:
            torch.set_num_threads(threads)
    out: dict = {}
    for (name, mode), v in wall.items():
        out.setdefault(name, {})[mode] = {"ms_median": round(1000 * statistics.median(v), 3),
                                          "ms_min": round(1000 * min(v), 3),
                                          "cpu_ms_min": round(1000 * min(cpu[(name, mode)]), 3)}
    return out


def _inference_section(group: str) -> Callable[[argparse.Namespace, dict], dict]:
    def run(args: argparse.Namespace, ctx: dict) -> dict:
        device = ctx["device"]
        if "batch" not in ctx:
            ctx["batch"] = _batch(args, device)
        x, dataset = ctx["batch"]
        if dataset != "cifar10":
            return {"skipped": f"the SLWTA architectures are CIFAR-10 models (this run: {dataset})"}
        res: dict = {"threads": torch.get_num_threads(), "repeats": getattr(args, "repeats", 3),
                     "b1_images_per_repeat": B1_IMAGES,
                     "weights": "untrained, seeded (cost does not depend on them)",
                     "variants": {"reference": "LWTA pair-gate path (before the inference fast path)",
                                  "eager": "default model (LWTA eval_pair)",
                                  "fast": "optimize_for_inference: BN folded + channels-last (CPU)",
                                  "traced": "trace_for_inference: fast as a frozen TorchScript graph",
                                  "fused": "traced, LWTA layers as the fused CPU kernel (bench.nets.lwta_ext)"},
                     "models": {}}
        for label, card in INFERENCE_ARCHS[group]:
            models = inference_variants(card, device, getattr(args, "seed", 0))
            res["models"][label] = inference_ms(models, x, res["repeats"])
        if device.type == "cpu":
            from bench.nets import lwta_ext

            res["fused_kernel"] = lwta_ext.status()
        if group == "wrn":  # the fastest traced form; batch 1 on the better of the two thread counts
            forms = res["models"]["slwta-wrn34-1"]
            b1 = [(forms[v][k]["ms_median"], v, k) for v in ("traced", "fused") if v in forms
                  for k in ("b1", "b1_1thread") if k in forms[v]]
            ms, variant, mode = min(b1)
            res["slwta_wrn34_1_variant"] = variant
            res["slwta_wrn34_1_ms_per_image_b1"] = ms
            res["slwta_wrn34_1_b1_threads"] = 1 if mode == "b1_1thread" else res["threads"]
            res["slwta_wrn34_1_ms_per_image_b256"] = min(forms[v]["b256"]["ms_median"]
                                                         for v in ("traced", "fused") if v in forms)
        return res

    return run


def format_inference(name: str, res: dict) -> str:
    from tabulate import tabulate

    if "skipped" in res:
        return f"{name}: skipped ({res['skipped']})"
    rows = []
    one = any("b1_1thread" in r for variants in res["models"].values() for r in variants.values())
    for label, variants in res["models"].items():
        for v, r in variants.items():
            row = [label, v, f"{r['b1']['ms_median']:.2f}", f"{r['b1']['ms_min']:.2f}",
                   f"{r['b1']['cpu_ms_min']:.2f}"]
            if one:
                row += [f"{r['b1_1thread']['ms_median']:.2f}", f"{r['b1_1thread']['ms_min']:.2f}"]
            rows.append(row + [f"{r['b256']['ms_median']:.2f}", f"{r['b256']['ms_min']:.2f}",
                               f"{r['b256']['cpu_ms_min']:.2f}"])
    head = ["model", "variant", "b1 ms/img median", "b1 min", "b1 CPU min"]
    head += ["b1 1-thread median", "b1 1-thread min"] if one else []
    head += ["b256 ms/img median", "b256 min", "b256 CPU min"]
    kernel = res.get("fused_kernel", {})
    note = "" if kernel.get("ok") in (None, True) else f"\nfused variant skipped: {kernel.get('why')}"
    return (f"{name} ({res['threads']} threads, median of {res['repeats']} repeats; CPU = CPU time of this "
            f"process per image)\n" + tabulate(rows, head, "github") + note)


section("inference slwta small-cnn", fmt=lambda n, r: format_inference(n, r))(_inference_section("small"))
section("inference slwta wrn-34-1", heavy=True,
        headline={"slwta_wrn34_1_ms_per_image_b1": "slwta_wrn34_1_ms_per_image_b1",
                  "slwta_wrn34_1_ms_per_image_b256": "slwta_wrn34_1_ms_per_image_b256"},
        fmt=lambda n, r: format_inference(n, r))(_inference_section("wrn"))


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
    from bench.core.io import write_json_atomic
    from bench.core.threads import resolve_device

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
        print((sec.fmt or format_section)(sec.name, res))
    heads = {k: result[k] for k in HEADLINE_KEYS if k in result}
    print("headline: " + ", ".join(f"{k} = {v:.3f}" for k, v in heads.items()))
    # headline keys first in the file
    ordered = {**heads, **{k: v for k, v in result.items() if k not in heads}}
    if getattr(args, "json_path", None):
        write_json_atomic(args.json_path, ordered)
        print(f"wrote {args.json_path}")
    return 0
