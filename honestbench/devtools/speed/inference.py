"""The ``inference slwta ...`` sections of ``bench speed``: ms per image at batch 1 and 256 of the ``slwta``
(small CNN), ``slwta-wrn34-1`` and published SLWTA architectures (CIFAR-10 inputs, pixels in [0, 1]), each in
the forms of :func:`inference_variants`; batch 1 also on one thread (waking a second thread for each of a
batch-1 forward's small parallel regions can cost more than it saves). The WRN section's headline takes the
fastest of the two traced forms and the two thread counts, and says which."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from tabulate import tabulate
from torch import nn

from honestbench.devtools.speed.options import Context, SpeedOptions
from honestbench.devtools.speed.timing import sync, timed
from honestbench.nets import LWTA, lwta_ext
from honestbench.nets.fast import optimize_for_inference, trace_for_inference
from honestbench.zoo import build_model, freeze, get_card

#: (label, zoo card) of the architectures timed by the inference sections
INFERENCE_ARCHS = {"small": [("slwta", "slwta")],
                   "wrn": [("slwta-wrn34-1", "slwta-wrn34-1"), ("published", "slwta-wrn34-1-panousis2021")]}
B1_IMAGES = 16  # single images timed per repeat (batch 1)
INPUT_SHAPE = (3, 32, 32)  # the SLWTA architectures are CIFAR-10 models
VARIANTS = {"reference": "LWTA pair-gate path (before the inference fast path)",
            "eager": "default model (LWTA eval_pair)",
            "fast": "optimize_for_inference: BN folded + channels-last (CPU)",
            "traced": "trace_for_inference: fast as a frozen TorchScript graph",
            "fused": "traced, LWTA layers as the fused CPU kernel (honestbench.nets.lwta_ext)"}


def inference_variants(card_name: str, device: torch.device, seed: int = 0) -> dict[str, nn.Module]:
    """The card's architecture (seeded untrained weights: a forward pass costs the same) in up to five
    forms: ``reference`` (the LWTA layers' pair-gate path, as before the inference fast path), ``eager`` (the
    default model: LWTA :meth:`~honestbench.nets.lwta.LWTA.eval_pair`), ``fast``
    (:func:`honestbench.nets.fast.optimize_for_inference`: BN folded, channels-last on a CPU), ``traced``
    (:func:`honestbench.nets.fast.trace_for_inference`: ``fast`` as one frozen TorchScript graph) and, on a CPU
    where the kernel builds, ``fused`` (``traced`` with the fused LWTA kernel of
    :mod:`honestbench.nets.lwta_ext`; :func:`honestbench.nets.lwta_ext.status` says why it is missing)."""
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


def _time_once(m: nn.Module, mode: str, big: torch.Tensor, singles: list[torch.Tensor],
               device: torch.device) -> tuple[list[float], float]:
    """Wall seconds per image (one figure for b256, one per single image for b1) and CPU seconds per image."""
    if mode == "b256":
        _, w, c = timed(lambda: m(big), device)
        return [w / 256], c / 256
    times = []
    c = time.process_time()
    for xi in singles:
        sync(device)
        t = time.perf_counter()
        m(xi)
        sync(device)
        times.append(time.perf_counter() - t)
    return times, (time.process_time() - c) / len(singles)


def inference_ms(models: dict[str, nn.Module], x: torch.Tensor, repeats: int = 3,
                 b1_single_thread: bool = True) -> dict:
    """ms per image of each model at batch 1 (``B1_IMAGES`` single images per repeat) and batch 256 (one
    pass per repeat), in ``torch.inference_mode``, interleaved model by model within each repeat after one
    warm-up round; wall (median and min) and CPU time of this process (min). ``b1_single_thread`` (CPU,
    more than one torch thread): batch 1 also on one thread (``b1_1thread``)."""
    device = x.device
    big = x[torch.arange(256, device=device) % len(x)]
    singles = [x[i % len(x)][None] for i in range(B1_IMAGES)]
    threads = torch.get_num_threads()
    modes = [("b1", threads), ("b256", threads)]
    if b1_single_thread and device.type == "cpu" and threads > 1:
        modes.append(("b1_1thread", 1))
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    with torch.inference_mode(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            for rep in range(repeats + 1):
                for name, m in models.items():
                    for mode, n_threads in modes:
                        torch.set_num_threads(n_threads)
                        w, c = _time_once(m, mode, big, singles, device)
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


def _wrn_headline(res: dict) -> None:
    """The fastest traced form of ``slwta-wrn34-1``; batch 1 on the better of the two thread counts."""
    forms = res["models"]["slwta-wrn34-1"]
    b1 = [(forms[v][k]["ms_median"], v, k) for v in ("traced", "fused") if v in forms
          for k in ("b1", "b1_1thread") if k in forms[v]]
    ms, variant, mode = min(b1)
    res["slwta_wrn34_1_variant"] = variant
    res["slwta_wrn34_1_ms_per_image_b1"] = ms
    res["slwta_wrn34_1_b1_threads"] = 1 if mode == "b1_1thread" else res["threads"]
    res["slwta_wrn34_1_ms_per_image_b256"] = min(forms[v]["b256"]["ms_median"]
                                                 for v in ("traced", "fused") if v in forms)


def inference_section(group: str) -> Callable[[SpeedOptions, Context], dict]:
    """A section timing the architectures of ``INFERENCE_ARCHS[group]`` in every form."""

    def run(opts: SpeedOptions, ctx: Context) -> dict:
        x = ctx.batch(opts)
        if opts.dataset != "cifar10":
            return {"skipped": f"the SLWTA architectures are CIFAR-10 models (this run: {opts.dataset})"}
        res: dict = {"threads": torch.get_num_threads(), "repeats": opts.repeats, "b1_images_per_repeat": B1_IMAGES,
                     "weights": "untrained, seeded (cost does not depend on them)", "variants": dict(VARIANTS),
                     "models": {}}
        for label, card in INFERENCE_ARCHS[group]:
            models = inference_variants(card, ctx.device, opts.seed)
            res["models"][label] = inference_ms(models, x, res["repeats"])
        if ctx.device.type == "cpu":
            res["fused_kernel"] = lwta_ext.status()
        if group == "wrn":
            _wrn_headline(res)
        return res

    return run


def format_inference(name: str, res: dict) -> str:
    """ms per image per model and variant: batch 1 (and on one thread where measured) and batch 256."""
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
