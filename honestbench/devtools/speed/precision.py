"""Precision of ``bench speed``: the ``--precision`` words (``fp32``, ``bf16``), the autocast they mean, and the
``pgd-10 precision fp32 vs bf16`` section: robust accuracy of our PGD-10 (L-inf, the standard budget, random
start) on the same images and trained model under each precision, and the difference in percentage points
against the :data:`BAR_PP` bar (accuracies are fractions in [0, 1]; pixels in [0, 1], eps in the same units).

bf16 is ``torch.autocast(device_type, dtype=torch.bfloat16)``: around a whole call (our PGD, the limit,
torchattacks) or, for ART (which turns the model's outputs into numpy arrays, and numpy has no bf16), inside the
model's forward with the logits cast back to fp32 (:class:`~honestbench.core.precision.AutocastForward`); in
both the forward and its backward run in bf16, the images, perturbations and input gradients stay fp32. The
words and the autocast live in :mod:`honestbench.core.precision`.
"""

from __future__ import annotations

import torch
from tabulate import tabulate
from torch import nn

from honestbench.attacks import create_attack
from honestbench.core.budgets import ALPHA_LINF, EPS_LINF
from honestbench.core.errors import BenchError
from honestbench.core.precision import PRECISIONS, autocast
from honestbench.data import load_eval
from honestbench.devtools.speed.options import Context, SpeedOptions
from honestbench.zoo import get_card, load_card_model

BAR_PP = 0.5  # item 4 of issue 17: bf16 robust accuracy within 0.5 percentage points of fp32
STEPS = 10


def parse_words(value: str | None, choices: tuple[str, ...], flag: str) -> tuple[str, ...] | None:
    """``"a,b"`` -> ``("a", "b")`` checked against ``choices`` (None stays None); a bad word is a one-line
    :class:`BenchError` naming the flag and the choices."""
    if value is None:
        return None
    words = tuple(w.strip() for w in value.split(",") if w.strip())
    bad = [w for w in words if w not in choices]
    if bad or not words:
        raise BenchError(f"{flag} {value!r}: unknown {', '.join(bad) or '(empty)'}; use a comma-separated subset "
                         f"of {', '.join(choices)}")
    return tuple(dict.fromkeys(words))


def robust_flags(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str, batch_size: int = 256,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image clean-correct and robust (clean-correct and not fooled by our PGD-10) flags, attack and
    predictions under ``precision``; the random start draws from a generator seeded with ``seed``, so every
    precision starts from the same points."""
    pgd = create_attack("pgd-linf", eps=EPS_LINF, alpha=ALPHA_LINF, steps=STEPS, random_start=True, early_stop=False)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    clean, robust = [], []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        with autocast(precision, x.device):
            adv = pgd(model, xb, yb, generator=gen)
            with torch.inference_mode():
                ok = model(xb).argmax(1) == yb
                robust.append(ok & (model(adv).argmax(1) == yb))
        clean.append(ok)
    return torch.cat(clean), torch.cat(robust)


def precision_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precisions: tuple[str, ...] = PRECISIONS,
                    batch_size: int = 256, seed: int = 0) -> dict:
    """Clean and PGD-10 robust accuracy of ``model`` on ``(x, y)`` under each precision, and (fp32 and bf16
    both run) the robust-accuracy difference in percentage points, the images whose flag differs, and whether
    the difference is within :data:`BAR_PP`."""
    out: dict = {"n": len(x), "steps": STEPS, "seed": seed, "bar_pp": BAR_PP, "clean_acc": {}, "robust_acc": {}}
    flags = {}
    for p in precisions:
        clean, flags[p] = robust_flags(model, x, y, p, batch_size, seed)
        out["clean_acc"][p] = round(clean.float().mean().item(), 4)
        out["robust_acc"][p] = round(flags[p].float().mean().item(), 4)
    if {"fp32", "bf16"} <= set(flags):
        diff = 100 * (flags["bf16"].float().mean() - flags["fp32"].float().mean()).item()
        out["robust_diff_pp"] = round(diff, 3)
        out["robust_flags_differ"] = int((flags["bf16"] != flags["fp32"]).sum())
        out["within_bar"] = abs(diff) <= BAR_PP
    return out


def precision_section(opts: SpeedOptions, ctx: Context) -> dict:
    """The check on the trained ``opts.precision_model`` and the first ``opts.n`` (None: all) evaluation images;
    skipped (with the reason) where the model is stochastic (its randomness would mix with the precision), is
    a model of another data set, or has no checkpoint here."""
    name = opts.precision_model
    try:
        card = get_card(name)
        if card.stochastic:
            return {"skipped": f"{name} is stochastic: pick a deterministic model with --precision-model"}
        if card.data != opts.dataset:
            return {"skipped": f"{name} is a {card.data} model (this run: {opts.dataset})"}
        model = load_card_model(card, ctx.device)
        data = load_eval(opts.dataset, n=opts.n, source=opts.source)
    except BenchError as e:  # unknown card, no checkpoint or no data here
        return {"skipped": f"{name}: {str(e).splitlines()[0]}"}
    x, y = data.x.to(ctx.device), data.y.to(ctx.device)
    res = precision_check(model, x, y, PRECISIONS, seed=opts.seed)
    return {"model": name, "dataset": opts.dataset, **res}


def format_precision(name: str, res: dict) -> str:
    """Clean and robust accuracy (%) per precision and the difference against the bar."""
    if "skipped" in res:
        return f"{name}: skipped ({res['skipped']})"
    rows = [[p, f"{100 * res['clean_acc'][p]:.2f}", f"{100 * res['robust_acc'][p]:.2f}"] for p in res["robust_acc"]]
    text = (f"{name} ({res.get('model', 'model')}, {res['n']} images, PGD-{res['steps']} seed {res['seed']})\n"
            + tabulate(rows, ["precision", "clean acc %", "PGD-10 acc %"], "github"))
    if "robust_diff_pp" in res:
        verdict = "within" if res["within_bar"] else "OUTSIDE"
        text += (f"\nbf16 - fp32 = {res['robust_diff_pp']:+.2f} pp, {verdict} the {res['bar_pp']} pp bar (robust "
                 f"flag differs on {res['robust_flags_differ']} of {res['n']} images)")
    return text
