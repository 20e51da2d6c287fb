"""The ``standard suite early exit vs torchattacks`` section of ``bench speed``: the whole harness
(:func:`honestbench.engine.cascade.evaluate` on the ``standard`` suite with early exit: clean pass, cascade, records) on
the ``regular`` model, against torchattacks running its closest equivalents of the same four attacks on every
image. Wall and CPU seconds of each, worst-case accuracy of each (fractions in [0, 1]); pixels in [0, 1], eps in
the same units."""

from __future__ import annotations

import numpy as np
import torch
import torchattacks
from tabulate import tabulate
from torch import nn

from honestbench.attacks import frozen_eval
from honestbench.attacks.base import l2_norm
from honestbench.core.budgets import ALPHA_LINF, EPS_L2, EPS_LINF
from honestbench.core.errors import BenchError
from honestbench.data import load_eval
from honestbench.devtools.speed.options import Context, SpeedOptions
from honestbench.devtools.speed.timing import timed
from honestbench.engine.cascade import evaluate
from honestbench.engine.options import EvalOptions
from honestbench.suites import get_suite
from honestbench.zoo import load_card_model

SUITE_MODEL = "regular"
#: torchattacks' CW has no binary search over c: one run of 250 Adam steps (our 5 rounds x 50) at its default
#: c = 1, lr 0.01 as ours, kappa 0; a sample counts as fooled when its image is misclassified within L2 EPS_L2
TA_CW = {"c": 1.0, "kappa": 0.0, "steps": 250, "lr": 0.01}


def torchattacks_suite(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """Per-sample robust flags (clean-correct and not fooled) of torchattacks' closest equivalents of the
    ``standard`` suite, every attack on every image: FGSM at the L-inf budget, PGD-20 L-inf (alpha the standard
    step, random start), PGD-20 L2 (alpha 2.5 * eps / 20, random start), CW-L2 (:data:`TA_CW`) counted at the L2
    budget (:mod:`honestbench.core.budgets`)."""
    device = next(model.parameters()).device
    atks = {"FGSM": torchattacks.FGSM(model, eps=EPS_LINF),
            "PGD": torchattacks.PGD(model, eps=EPS_LINF, alpha=ALPHA_LINF, steps=20, random_start=True),
            "PGD-L2": torchattacks.PGDL2(model, eps=EPS_L2, alpha=2.5 * EPS_L2 / 20, steps=20, random_start=True),
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
                        fooled &= l2_norm(adv - xb) <= EPS_L2
                flags[label][sl] = (correct & ~fooled).cpu().numpy()
    return flags


def suite_vs_torchattacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
                          seed: int = 0) -> dict:
    """Ours (early exit) against torchattacks (every attack on every image); ours is run before and after
    torchattacks (background load drifts over minutes) and its mean is compared."""
    device = next(model.parameters()).device
    suite = get_suite("standard")

    def ours():
        opts = EvalOptions(batch_size=batch_size, seed=seed, device=device, progress=False)
        return evaluate(model, x, y, suite, opts, stochastic=False, name=SUITE_MODEL)

    matrix, w1, c1 = timed(ours, device)
    ta, w_ta, c_ta = timed(lambda: torchattacks_suite(model, x, y, batch_size, seed), device)
    _, w2, c2 = timed(ours, device)
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


def suite_section(opts: SpeedOptions, ctx: Context) -> dict:
    """The section on ``regular`` and the first ``opts.n`` (None: all) CIFAR-10 evaluation images."""
    if opts.dataset != "cifar10":
        return {"skipped": f"the {SUITE_MODEL} model is a CIFAR-10 model (this run: {opts.dataset})"}
    try:
        model = load_card_model(SUITE_MODEL, ctx.device)
    except BenchError as e:
        return {"skipped": str(e)}
    data = load_eval("cifar10", n=opts.n, source=opts.source)
    return suite_vs_torchattacks(model, data.x, data.y, seed=opts.seed)


def format_suite(name: str, res: dict) -> str:
    """The section as a two-row table: wall and CPU seconds and worst-case accuracy of each side."""
    if "skipped" in res:
        return f"{name}: skipped ({res['skipped']})"
    s, c = res["seconds"], res["cpu_seconds"]
    rows = [["ours, early exit (honestbench.engine.cascade)", f"{s['ours']:.1f}", f"{c['ours']:.1f}",
             f"{100 * res['early_exit_worst_case_acc']:.1f}"],
            ["torchattacks, every attack on every image", f"{s['torchattacks']:.1f}",
             f"{c['torchattacks']:.1f}", f"{100 * res['torchattacks_worst_case_acc']:.1f}"]]
    head = ["", "wall s", "CPU s", "worst-case acc %"]
    return (f"{name} ({res['model']}, {res['n']} images, batch {res['batch_size']}): speedup "
            f"{res['early_exit_speedup']:.2f}x wall, {res['early_exit_speedup_cpu']:.2f}x CPU\n"
            + tabulate(rows, head, "github"))
