"""The two kinds of column of the robustness matrix, computed batch by batch: the clean pass (predictions,
softmax, inference timings) and one attack's column (robust flags, perturbation norms, adversarial
predictions, example images). Images are float32 NCHW with pixels in [0, 1]; norms are in the attack's norm
in the same units."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from honestbench.attacks.base import Attack, frozen_eval, perturbation_norm
from honestbench.core.rng import make_generator, seeded_rng
from honestbench.engine.cells import N_EXAMPLES, AttackCell, CleanCell, Examples, derive_seed
from honestbench.engine.options import EvalOptions
from honestbench.engine.timing import inference_ms
from honestbench.engine.witness import add_witnesses
from honestbench.results import NOT_EVALUATED
from honestbench.results.witnesses import Witnesses


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def pass_correct(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, R: int, seed: int,
                 device: torch.device) -> np.ndarray:
    """(len(xb), R) int8: 1 where each of ``R`` seeded stochastic passes classifies the image correctly."""
    with seeded_rng(seed, device), frozen_eval(model), torch.inference_mode():
        return torch.stack([model(xb).argmax(1) == yb for _ in range(R)], 1).to(torch.int8).cpu().numpy()


def clean_pass(model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: np.ndarray, opts: EvalOptions,
               desc: str, R: int = 0) -> CleanCell:
    """The clean cell: predictions, confidences, float16 softmax, wall time, inference ms per image at batch
    1 and 256, and with ``R`` the correctness in ``R`` further seeded passes (``passes``)."""
    n, device, bs = len(x), opts.device, opts.batch_size
    passes = np.zeros((n, R), np.int8) if R else None
    pred = np.zeros(n, np.int64)
    conf = np.zeros(n, np.float32)
    probs = None
    full_batch_ms = []  # ms per image of full 256-image batches after the first (warm), for inference_ms
    t0 = time.perf_counter()
    with frozen_eval(model), torch.inference_mode(), \
            tqdm(total=n, desc=desc, unit="img", leave=False, disable=not opts.progress) as bar:
        for start in range(0, n, bs):
            sl = slice(start, min(n, start + bs))
            t1 = time.perf_counter()
            xs = x[sl].to(device, copy=True)  # a copy: no model can alter the images later columns attack
            with seeded_rng(derive_seed(opts.seed, "clean", int(index[start])), device):
                p = torch.softmax(model(xs).float(), 1).cpu()
            if sl.stop - sl.start == 256 and start > 0:
                full_batch_ms.append((time.perf_counter() - t1) * 1000 / 256)
            if probs is None:
                probs = np.zeros((n, p.shape[1]), np.float16)
            c, k = p.max(1)
            pred[sl], conf[sl], probs[sl] = k.numpy(), c.numpy(), p.numpy().astype(np.float16)
            if R:
                passes[sl] = pass_correct(model, x[sl].to(device, copy=True), y[sl].to(device), R,
                                          derive_seed(opts.seed, "clean", "R", int(index[start])), device)
            bar.update(sl.stop - sl.start)
    seconds = time.perf_counter() - t0
    b1, b256 = inference_ms(model, x, device, opts.seed, min(full_batch_ms) if full_batch_ms else None)
    return CleanCell(pred, conf, probs, seconds, b1, b256, passes)


class _Examples:
    """The example images of one column: the first ``N_EXAMPLES // 2`` robust and the first fooled, by
    position, as uint8 NHWC."""

    def __init__(self) -> None:
        self.parts: dict[str, list] = {"index": [], "clean": [], "adv": [], "pred": [], "conf": [], "robust": []}
        self.kept = {0: 0, 1: 0}

    def add(self, ids: np.ndarray, xb: torch.Tensor, x_adv: torch.Tensor, k: torch.Tensor, c: torch.Tensor,
            ok: np.ndarray) -> None:
        for flag in (1, 0):
            take = np.nonzero(ok == flag)[0][: N_EXAMPLES // 2 - self.kept[flag]]
            if len(take):
                self.kept[flag] += len(take)
                t = torch.from_numpy(take)
                self.parts["index"].append(ids[take])
                self.parts["clean"].append(_to_uint8(xb[t]))
                self.parts["adv"].append(_to_uint8(x_adv[t]))
                self.parts["pred"].append(k[t].cpu().numpy())
                self.parts["conf"].append(c[t].cpu().numpy())
                self.parts["robust"].append(np.full(len(take), flag, np.int8))

    def examples(self, x: torch.Tensor) -> Examples:
        out = {k: np.concatenate(v) if v else np.zeros((0,), np.int64) for k, v in self.parts.items()}
        if not self.parts["clean"]:
            out["clean"] = out["adv"] = np.zeros((0, *x.shape[2:], x.shape[1]), np.uint8)
        return Examples(**out)


def attack_column(model: nn.Module, attack: Attack, label: str, x: torch.Tensor, y: torch.Tensor,
                  index: np.ndarray, targets: np.ndarray, opts: EvalOptions, desc: str, R: int = 0,
                  witnessed: np.ndarray | None = None) -> AttackCell:
    """Attack the samples where ``targets`` is True; flags -1 elsewhere (the caller fills known zeros). With
    ``R``: also the correctness of each adversarial image in ``R`` further seeded passes (``passes``). Every
    image it fools keeps a witness (:mod:`honestbench.results.witnesses`) unless ``witnessed`` (a boolean mask)
    says an earlier column already keeps one."""
    n = len(x)
    col = {"robust": np.full(n, NOT_EVALUATED, np.int8), "norm": np.full(n, np.nan, np.float32),
           "raw_norm": np.full(n, np.nan, np.float32), "pred": np.full(n, -1, np.int16),
           "conf": np.full(n, np.nan, np.float32)}
    passes = np.full((n, R), NOT_EVALUATED, np.int8) if R else None
    examples = _Examples()
    witnesses = Witnesses()
    skip = np.zeros(n, bool) if witnessed is None else np.asarray(witnessed, bool)
    seconds = 0.0
    with tqdm(total=int(targets.sum()), desc=desc, unit="img", leave=False, disable=not opts.progress) as bar:
        for start in range(0, n, opts.batch_size):
            pos = np.arange(start, min(n, start + opts.batch_size))
            sel = pos[targets[pos]]
            if len(sel):
                seconds += _attack_block(model, attack, label, x, y, index, sel, start, opts, R, col, passes,
                                         examples, (witnesses, skip))
                bar.update(len(sel))
    return AttackCell(**col, seconds=seconds, examples=examples.examples(x), passes=passes, witnesses=witnesses)


def _attack_block(model, attack, label, x, y, index, sel, start, opts, R, col, passes, examples, wit) -> float:
    """Attack the images at positions ``sel`` (of the seeding block that begins at ``start``), fill their
    entries of ``col`` / ``passes`` / ``examples`` and the witnesses ``wit`` = (store, already-witnessed
    mask); returns the seconds the attack and its passes took (witness selection excluded)."""
    device = opts.device
    s = derive_seed(opts.seed, label, int(index[start]))
    sel_t = torch.from_numpy(sel)
    xb, yb = x[sel_t].to(device), y[sel_t].to(device)
    t0 = time.perf_counter()
    with seeded_rng(s, device):
        out = attack.run(model, xb, yb, generator=make_generator(s, device))
        x_adv = out.x_adv
        with frozen_eval(model), torch.inference_mode():
            p = torch.softmax(model(x_adv).float(), 1)
    c, k = p.max(1)
    ok = (k == yb).cpu().numpy()
    if R:
        passes[sel] = pass_correct(model, x_adv, yb, R, derive_seed(opts.seed, label, "R", int(index[start])),
                                   device)
    seconds = time.perf_counter() - t0
    kind = attack.norm if attack.norm in ("linf", "l2") else "linf"
    col["robust"][sel] = ok.astype(np.int8)
    col["norm"][sel] = perturbation_norm(x_adv, xb, kind).cpu().numpy()
    if out.raw_norms is not None:  # minimum-norm attacks (CW): unthresholded norms
        col["raw_norm"][sel] = out.raw_norms.detach().float().cpu().numpy()
    col["pred"][sel], col["conf"][sel] = k.cpu().numpy(), c.cpu().numpy()
    examples.add(index[sel], xb, x_adv, k, c, ok)
    new = np.nonzero(~ok & ~wit[1][sel])[0]
    if len(new):
        t = torch.from_numpy(new).to(device)
        add_witnesses(wit[0], model, index[sel][new], xb[t], x_adv[t], yb[t], bool(R),
                      derive_seed(opts.seed, label, "witness", int(index[start])))
    return seconds
