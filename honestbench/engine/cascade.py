"""The robustness matrix: every sample x every attack of one model, with early exit.

``evaluate(model, x, y, attacks, options)`` returns a :class:`honestbench.results.Matrix` (samples x attacks:
robust flag, perturbation norm, adversarial prediction and confidence; the clean pass; wall time per attack;
inference ms/image at batch 1 and 256). Images are float32 NCHW with pixels in [0, 1]; budgets (eps) are in
the same units.

Modes (recorded in every row's ``mode``):
  * ``early-exit`` (default): only clean-correct samples are attacked, and the attacks run as a cascade,
    cheapest first (:meth:`honestbench.attacks.Attack.cost`): a sample that an earlier attack already fooled is not
    attacked again. The worst-case column is exact (every sample meets every attack until one fools it), and
    so is the first attack of the cascade. A later attack's own column is NOT redefined: its flags are
    ``-1`` (not evaluated) on the samples skipped, so its accuracy is known only within bounds, reported as
    ``count`` (lower bound: known robust) and ``count_hi`` (upper bound: known robust + not evaluated), with
    ``accuracy = count_hi / n`` and ``exact = False``. The leaderboard prints such a column as ``<= hi``.
  * ``full-matrix`` (``EvalOptions(full_matrix=True)``, and suites whose columns are independent such as
    ``eps-sweep``): every clean-correct sample meets every attack; every column is exact.

Seeding makes results independent of sharding (:mod:`honestbench.engine.cells`). Stochastic models are evaluated
with single stochastic forward passes under those seeds (the robust flags), and in addition with ``R``
further seeded passes per image, clean and on every adversarial image (the mean-over-R accuracy and its
spread in the records; :mod:`honestbench.results`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial

import numpy as np
import torch
from torch import nn

from honestbench.attacks.base import Attack
from honestbench.attacks.eot import is_stochastic
from honestbench.core.errors import BenchError
from honestbench.core.rng import seeded_rng
from honestbench.engine.cells import AttackCell, C, CellCache, CleanCell, derive_seed, samples_id
from honestbench.engine.certified import bound_columns
from honestbench.engine.columns import attack_column, clean_pass
from honestbench.engine.options import EvalOptions
from honestbench.engine.witness import witnesses_cover
from honestbench.results import NOT_EVALUATED, Matrix
from honestbench.suites import Entry, Suite, get_suite

Attacks = Suite | str | Mapping[str, Attack] | Sequence[Attack | Entry | tuple[str, Attack]]


def detect_stochastic(model: nn.Module, x: torch.Tensor, device: torch.device, seed: int = 0) -> bool:
    """True when two forward passes on the first 64 images give different logits (seeded, so the answer is
    reproducible and the caller's RNG is untouched)."""
    with seeded_rng(derive_seed(seed, "stochastic-check"), device):
        return is_stochastic(model, x[:64].to(device))


def _normalise_attacks(attacks: Attacks) -> tuple[list[tuple[str, Attack]], dict, bool]:
    """(label, Attack) pairs, aggregates and the suite's full-matrix flag from any accepted input."""
    if isinstance(attacks, str):
        attacks = get_suite(attacks)
    if isinstance(attacks, Suite):
        return list(attacks.attacks().items()), dict(attacks.aggregates), attacks.full_matrix
    if isinstance(attacks, Mapping):
        return list(attacks.items()), {}, False
    pairs = []
    for a in attacks:
        if isinstance(a, Entry):
            pairs.append((a.label, a.build()))
        elif isinstance(a, tuple):
            pairs.append(a)
        else:
            pairs.append((a.name, a))
    return pairs, {}, False


def _spec(attack: Attack) -> dict:
    return {"kernel": attack.name, "params": attack.params(), "norm": attack.norm, "eps": attack.budget,
            "eps_effective": attack.effective_eps(), "spec": attack.spec(), "cost": attack.cost()}


def _cell(cache: CellCache | None, label: str, key: dict, kind: type[C], compute: Callable[[], C],
          complete: Callable[[C], bool] | None = None) -> C:
    """The cell ``label`` from ``cache`` when it holds one for ``key`` (and ``complete`` accepts it: e.g. it
    keeps the witnesses this run needs), else computed (and stored)."""
    found = cache.get(label, key, kind) if cache else None
    if found is not None and complete is not None and not complete(found):
        found = None
    if found is None:
        found = compute()
        if cache:
            cache.put(label, key, found)
    return found


def _inputs(x: torch.Tensor, y: torch.Tensor, index) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    x, y = x.detach().float().cpu(), y.detach().long().cpu()
    index = np.arange(len(x), dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    if not (len(x) == len(y) == len(index)) or len(x) == 0:
        raise BenchError(f"evaluate needs as many images, labels and ids (> 0): {len(x)}, {len(y)}, {len(index)}")
    return x, y, index


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Attacks,
    options: EvalOptions | None = None,
    *,
    index: torch.Tensor | np.ndarray | None = None,
    name: str = "model",
    cache: CellCache | None = None,
    stochastic: bool | None = None,
    aggregates: Mapping[str, list[str]] | None = None,
) -> Matrix:
    """The per-sample robustness matrix of ``model`` on images ``x`` (float32 NCHW in [0, 1]), labels ``y``.

    ``attacks``: a suite (or its name), ``{label: Attack}``, or a list of attacks / suite entries.
    ``options``: mode, batch size, seed, device, passes (:class:`EvalOptions`; default early exit). ``index``:
    canonical sample ids (default 0..N-1; they seed each block). ``stochastic`` None detects it. ``cache``
    makes the evaluation resumable per (model, attack) cell. A stochastic model is also evaluated with
    ``options.passes`` further seeded passes per image (``clean_passes``, ``robust_passes``).
    """
    opts = options or EvalOptions()
    pairs, suite_aggregates, suite_full = _normalise_attacks(attacks)
    labels = [label for label, _ in pairs]
    if len(set(labels)) != len(labels):
        raise BenchError(f"duplicate attack labels {labels}")
    opts = replace(opts, full_matrix=opts.full_matrix or suite_full)
    x, y, index = _inputs(x, y, index)
    model = model.to(opts.device)
    if stochastic is None:
        stochastic = detect_stochastic(model, x, opts.device, opts.seed)
    R = max(0, int(opts.passes)) if stochastic else 0
    base_key = {"samples": samples_id(index, y), "n": len(x), "seed": opts.seed, "batch_size": opts.batch_size,
                "mode": "full-matrix" if opts.full_matrix else "early-exit", "stochastic": bool(stochastic)}
    if R:
        base_key["R"] = R
    clean = _cell(cache, "clean", {**base_key, "label": "clean"}, CleanCell,
                  partial(clean_pass, model, x, y, index, opts, f"{name} clean", R))
    specs = {label: _spec(a) for label, a in pairs}
    order = list(range(len(pairs))) if opts.full_matrix else sorted(
        range(len(pairs)), key=lambda j: specs[pairs[j][0]]["cost"])
    correct = clean.pred == y.numpy()
    cols: dict[str, AttackCell] = {}
    fooled = ~correct  # known non-robust so far (clean-incorrect, then fooled by an earlier attack)
    for j in order:  # the cascade: each attack's cell is keyed by the attacks that ran before it
        label, attack = pairs[j]
        key = {**base_key, "label": label, "attack": specs[label]["spec"], "after": [] if opts.full_matrix
               else [specs[lb]["spec"] for lb in cols]}
        targets = correct if opts.full_matrix else ~fooled
        compute = partial(_column, model, attack, label, x, y, index, targets, correct, opts, f"{name} {label}", R,
                          fooled.copy())
        cols[label] = _cell(cache, label, key, AttackCell, compute, partial(witnesses_cover, fooled.copy(), index))
        fooled = fooled | (cols[label].robust == 0)
    suite = get_suite(attacks) if isinstance(attacks, str) else attacks
    bounds = bound_columns(model, x, y, index, suite, pairs, cols, correct, opts, cache, base_key, name) \
        if isinstance(suite, Suite) and suite.certify is not None else None
    meta = {"model": name, "mode": base_key["mode"], "seed": opts.seed, "batch_size": opts.batch_size,
            "stochastic": bool(stochastic), "specs": specs, "order": [labels[j] for j in order],
            "aggregates": dict(aggregates or suite_aggregates), "clean_seconds": float(clean.seconds),
            "ms_per_image_b1": float(clean.ms_b1), "ms_per_image_b256": float(clean.ms_b256),
            "device": str(opts.device)}
    matrix = _matrix(index, y.numpy(), labels, clean, cols, meta, R)
    if bounds is not None:
        matrix.meta["bounds"], matrix.bounds = bounds
    return matrix


def _column(model, attack, label, x, y, index, targets, correct, opts, desc, R, witnessed) -> AttackCell:
    col = attack_column(model, attack, label, x, y, index, targets, opts, desc, R, witnessed)
    col.robust[~correct] = 0  # misclassified clean: not robust by definition (exact)
    if R:
        col.passes[~correct] = 0
    return col


def _matrix(index: np.ndarray, y: np.ndarray, labels: list[str], clean: CleanCell, cols: dict[str, AttackCell],
            meta: dict, R: int) -> Matrix:
    """The matrix from the clean cell and the attack cells (in ``labels`` order)."""
    n, a = len(index), len(labels)
    stack = {k: np.stack([getattr(cols[label], k) for label in labels], 1) if a else np.zeros((n, 0))
             for k in ("robust", "norm", "raw_norm", "pred", "conf")}
    passes: dict[str, np.ndarray] = {}
    if R:  # per pass: robust when the clean AND the adversarial prediction of that pass are right
        cp = clean.passes.astype(np.int8)
        adv = np.stack([cols[label].passes for label in labels], 1) if a else np.zeros((n, 0, R), np.int8)
        robust_passes = np.where(adv == NOT_EVALUATED, NOT_EVALUATED, adv & cp[:, None]).astype(np.int8)
        passes = {"clean_passes": cp, "robust_passes": robust_passes}
        meta["R"] = R
    return Matrix(**passes, index=index, y=y, labels=labels,
                  clean_pred=clean.pred.astype(np.int64), clean_conf=clean.conf,
                  clean_probs=clean.probs,
                  robust=stack["robust"].astype(np.int8), norm=stack["norm"].astype(np.float32),
                  raw_norm=stack["raw_norm"].astype(np.float32),
                  pred=stack["pred"].astype(np.int16), conf=stack["conf"].astype(np.float32),
                  seconds=np.array([float(cols[label].seconds) for label in labels]), meta=meta)
