"""The robustness matrix: every model x every attack x every sample, with early exit.

``evaluate(model, x, y, attacks)`` returns a :class:`bench.results.Matrix` (samples x attacks: robust flag,
perturbation norm, adversarial prediction and confidence; the clean pass; wall time per attack; inference
ms/image at batch 1 and 256). ``bench run`` (:func:`run_command`) does it for every selected zoo model and
writes records, matrices and the leaderboard (see :mod:`bench.results` for the directory layout).

Modes (recorded in every row's ``mode``):
  * ``early-exit`` (default): only clean-correct samples are attacked, and the attacks run as a cascade,
    cheapest first (:func:`bench.suites.attack_cost`): a sample that an earlier attack already fooled is not
    attacked again. The worst-case column is exact (every sample meets every attack until one fools it), and
    so is the first attack of the cascade. A later attack's own column is NOT redefined: its flags are
    ``-1`` (not evaluated) on the samples skipped, so its accuracy is known only within bounds, reported as
    ``count`` (lower bound: known robust) and ``count_hi`` (upper bound: known robust + not evaluated), with
    ``accuracy = count_hi / n`` and ``exact = False``. The leaderboard prints such a column as ``<= hi``.
  * ``full-matrix`` (``--full-matrix``, and suites whose columns are independent such as ``eps-sweep``): every
    clean-correct sample meets every attack; every column is exact.

Seeding (results independent of sharding): samples are processed in blocks of ``batch_size`` consecutive
positions; for each block and attack, the generator of the attack (random starts, noise) and the torch RNG of
a stochastic model are seeded from ``(seed, column label, canonical id of the block's first sample)``. A
shard whose boundaries are multiples of ``batch_size`` therefore reproduces exactly the single-process
numbers. Stochastic models are evaluated with single stochastic forward passes under those seeds (the robust
flags), and in addition with ``R`` further seeded passes per image, clean and on every adversarial image (the
mean-over-R accuracy and its spread in the records; :mod:`bench.results`).

Per-model suites and diagnostics (``bench run``): each model gets its own flavour of the suite
(:func:`bench.suites.model_suite`: the stochastic flavour of ``adaptive``, and ``standard`` plus EOT and
adaptive columns, for a stochastic model), stored in ``cells/<model>/model.json``. ``--diagnose`` runs
:func:`bench.diagnostics.diagnose` on each model after its matrix and keeps the flags in
``cells/<model>/diagnostics.json``; the records' ``warnings`` column is filled from that file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.attacks.base import Attack, frozen_eval, perturbation_norm
from bench.attacks.eot import is_stochastic
from bench.core.errors import BenchError, ModelCardError
from bench.core.io import REPO_ROOT, write_json_atomic
from bench.core.rng import make_generator
from bench.core.threads import resolve_device
from bench.eval.stochastic import R_DEFAULT
from bench.results import (
    NOT_EVALUATED,
    Matrix,
    cell_path,
    load_cell,
    matrix_path,
    provenance,
    read_records,
    record_rows,
    safe_name,
    save_cell,
    write_records,
)
from bench.suites import DEFAULT_SUITE, Entry, Suite, attack_cost, get_suite, model_suite, suite_entries

B1_BUDGET_S = 1.0  # at most ~1 s of batch-1 timing per model inside `bench run`
N_EXAMPLES = 8  # adversarial example images kept per (model, attack) cell: up to 4 robust + 4 fooled
FULL_COMMAND = "bench run --models all --suite standard --out results/standard"


# ----------------------------------------------------------------------------------------------- seeding
def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from ``seed`` and any labels (sha256: stable across runs, machines and Python)."""
    text = "|".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def samples_id(index, y) -> str:
    """The evaluation set's id in cell keys: sha256 of its canonical ids and labels (16 hex digits)."""
    index = np.asarray(index, dtype=np.int64)
    labels = torch.as_tensor(y).long().cpu().numpy()
    return hashlib.sha256(index.tobytes() + labels.tobytes()).hexdigest()[:16]


@contextmanager
def seeded(seed: int, device: torch.device):
    """Torch's global RNG seeded with ``seed`` inside the block, the caller's RNG state restored after."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def detect_stochastic(model: nn.Module, x: torch.Tensor, device: torch.device, seed: int = 0) -> bool:
    """True when two forward passes on the first 64 images give different logits (seeded, so the answer is
    reproducible and the caller's RNG is untouched)."""
    with seeded(derive_seed(seed, "stochastic-check"), device):
        return is_stochastic(model, x[:64].to(device))


def inference_ms(
    model: nn.Module, x: torch.Tensor, device: torch.device, seed: int = 0, b256: float | None = None
) -> tuple[float, float]:
    """Clean inference time in ms per image (warm model, inference mode): at batch 1 the median over up to
    8 single images (at most ~1 s) after one warm-up; at batch 256 ``b256`` when the caller timed a full
    batch already, else one pass over the images repeated up to 256. Indicative only (``bench speed``
    measures properly): it must stay cheap inside ``bench run``."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    k = min(8, len(x))
    with frozen_eval(model), torch.inference_mode(), seeded(seed, device):
        model(x[:1].to(device))
        singles: list[float] = []
        for i in range(k):
            if len(singles) >= 2 and sum(singles) > B1_BUDGET_S:
                break  # a slow (or oversubscribed) model: enough samples for an indicative median
            sync()
            t0 = time.perf_counter()
            model(x[i:i + 1].to(device))
            sync()
            singles.append(time.perf_counter() - t0)
        b1 = float(np.median(singles)) * 1000
        if b256 is None:
            big = x[torch.arange(256) % len(x)].to(device)
            sync()
            t0 = time.perf_counter()
            model(big)
            sync()
            b256 = (time.perf_counter() - t0) * 1000 / 256
    return b1, b256


# ----------------------------------------------------------------------------------------------- cell cache
@dataclass
class CellCache:
    """Finished (model, attack) cells under ``DIR/cells/<model>/``; ``key`` fixes the configuration they
    belong to (model checkpoint, data, seed, batch size, mode). A cell of another configuration is an error,
    never silently mixed in."""

    out: Path
    model: str
    key: dict = field(default_factory=dict)

    def path(self, label: str) -> Path:
        return cell_path(self.out, self.model, label)

    def get(self, label: str, key: dict) -> dict[str, np.ndarray] | None:
        found = load_cell(self.path(label))
        if found is None:
            return None
        arrays, meta = found
        want = json.loads(json.dumps({**self.key, **key}, default=str))
        if meta.get("key") != want:
            diff = sorted(k for k in set(want) | set(meta.get("key", {}))
                          if want.get(k) != meta.get("key", {}).get(k))
            where = self.out / "cells" / safe_name(self.model)
            raise BenchError(
                f"{self.path(label)} was computed with a different configuration "
                f"({', '.join(diff)} differ): use another --out, or delete {where}")
        return arrays

    def put(self, label: str, key: dict, arrays: dict[str, np.ndarray]) -> None:
        save_cell(self.path(label), arrays, {"key": {**self.key, **key}})


# ----------------------------------------------------------------------------------------------- evaluate
def _normalise_attacks(attacks) -> tuple[list[tuple[str, Attack]], dict, bool]:
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
            "eps_effective": attack.effective_eps(), "spec": attack.spec(), "cost": attack_cost(attack)}


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _clean_pass(model, x, y, index, batch_size, seed, device, progress, desc, R: int = 0
                ) -> dict[str, np.ndarray]:
    from tqdm import tqdm

    n = len(x)
    passes = np.zeros((n, R), np.int8) if R else None  # correctness in R further seeded passes
    pred = np.zeros(n, np.int64)
    conf = np.zeros(n, np.float32)
    probs = None
    full_batch_ms = []  # ms per image of full 256-image batches after the first (warm), for inference_ms
    t0 = time.perf_counter()
    with frozen_eval(model), torch.inference_mode(), \
            tqdm(total=n, desc=desc, unit="img", leave=False, disable=not progress) as bar:
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            t1 = time.perf_counter()
            with seeded(derive_seed(seed, "clean", int(index[start])), device):
                p = torch.softmax(model(x[sl].to(device)).float(), 1).cpu()
            if sl.stop - sl.start == 256 and start > 0:
                full_batch_ms.append((time.perf_counter() - t1) * 1000 / 256)
            if probs is None:
                probs = np.zeros((n, p.shape[1]), np.float16)
            c, k = p.max(1)
            pred[sl], conf[sl], probs[sl] = k.numpy(), c.numpy(), p.numpy().astype(np.float16)
            if R:
                passes[sl] = _pass_correct(model, x[sl].to(device), y[sl].to(device), R,
                                           derive_seed(seed, "clean", "R", int(index[start])), device)
            bar.update(sl.stop - sl.start)
    seconds = time.perf_counter() - t0
    b1, b256 = inference_ms(model, x, device, seed, min(full_batch_ms) if full_batch_ms else None)
    out = {"pred": pred, "conf": conf, "probs": probs, "seconds": np.float64(seconds),
           "ms_b1": np.float64(b1), "ms_b256": np.float64(b256)}
    if R:
        out["passes"] = passes
    return out


def _pass_correct(model, xb, yb, R: int, seed: int, device) -> np.ndarray:
    """(len(xb), R) int8: 1 where each of ``R`` seeded stochastic passes classifies the image correctly."""
    with seeded(seed, device), frozen_eval(model), torch.inference_mode():
        return torch.stack([model(xb).argmax(1) == yb for _ in range(R)], 1).to(torch.int8).cpu().numpy()


def _attack_column(model, attack, label, x, y, index, targets, batch_size, seed, device, progress,
                   desc, R: int = 0) -> dict[str, np.ndarray]:
    """Attack the samples where ``targets`` is True; flags -1 elsewhere (the caller fills known zeros). With
    ``R``: also the correctness of each adversarial image in ``R`` further seeded passes (``passes``)."""
    from tqdm import tqdm

    n = len(x)
    robust = np.full(n, NOT_EVALUATED, np.int8)
    passes = np.full((n, R), NOT_EVALUATED, np.int8) if R else None
    norm = np.full(n, np.nan, np.float32)
    raw_norm = np.full(n, np.nan, np.float32)
    pred = np.full(n, -1, np.int16)
    conf = np.full(n, np.nan, np.float32)
    kind = attack.norm if attack.norm in ("linf", "l2") else "linf"
    ex: dict[str, list] = {"index": [], "clean": [], "adv": [], "pred": [], "conf": [], "robust": []}
    kept = {0: 0, 1: 0}
    seconds = 0.0
    with tqdm(total=int(targets.sum()), desc=desc, unit="img", leave=False, disable=not progress) as bar:
        for start in range(0, n, batch_size):
            pos = np.arange(start, min(n, start + batch_size))
            sel = pos[targets[pos]]
            if not len(sel):
                continue
            s = derive_seed(seed, label, int(index[start]))
            sel_t = torch.from_numpy(sel)
            xb, yb = x[sel_t].to(device), y[sel_t].to(device)
            t0 = time.perf_counter()
            with seeded(s, device):
                x_adv = attack(model, xb, yb, generator=make_generator(s, device))
                with frozen_eval(model), torch.inference_mode():
                    p = torch.softmax(model(x_adv).float(), 1)
            c, k = p.max(1)
            ok = (k == yb).cpu().numpy()
            if R:
                s_r = derive_seed(seed, label, "R", int(index[start]))
                passes[sel] = _pass_correct(model, x_adv, yb, R, s_r, device)
            seconds += time.perf_counter() - t0
            robust[sel] = ok.astype(np.int8)
            norm[sel] = perturbation_norm(x_adv, xb, kind).cpu().numpy()
            last = getattr(attack, "last_norms", None)  # minimum-norm attacks (CW): unthresholded norms
            if last is not None and len(last) == len(sel):
                raw_norm[sel] = last.detach().float().cpu().numpy()
            pred[sel], conf[sel] = k.cpu().numpy(), c.cpu().numpy()
            for flag in (1, 0):  # keep the first robust and the first fooled examples, by position
                take = np.nonzero(ok == flag)[0][: N_EXAMPLES // 2 - kept[flag]]
                if len(take):
                    kept[flag] += len(take)
                    t = torch.from_numpy(take)
                    ex["index"].append(index[sel[take]])
                    ex["clean"].append(_to_uint8(xb[t]))
                    ex["adv"].append(_to_uint8(x_adv[t]))
                    ex["pred"].append(k[t].cpu().numpy())
                    ex["conf"].append(c[t].cpu().numpy())
                    ex["robust"].append(np.full(len(take), flag, np.int8))
            bar.update(len(sel))
    arrays = {"robust": robust, "norm": norm, "raw_norm": raw_norm, "pred": pred, "conf": conf,
              "seconds": np.float64(seconds)}
    if R:
        arrays["passes"] = passes
    for k, v in ex.items():
        arrays[f"ex_{k}"] = np.concatenate(v) if v else np.zeros((0,), np.int64)
    if not ex["clean"]:
        shape = (0, *x.shape[2:], x.shape[1])
        arrays["ex_clean"] = arrays["ex_adv"] = np.zeros(shape, np.uint8)
    return arrays


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Suite | str | Mapping[str, Attack] | Sequence[Attack | Entry | tuple[str, Attack]],
    *,
    full_matrix: bool = False,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    stochastic: bool | None = None,
    index: torch.Tensor | np.ndarray | None = None,
    name: str = "model",
    cache: CellCache | None = None,
    aggregates: Mapping[str, list[str]] | None = None,
    R: int = R_DEFAULT,
) -> Matrix:
    """The per-sample robustness matrix of ``model`` on images ``x`` (float32 NCHW in [0, 1]), labels ``y``.

    ``attacks``: a suite (or its name), ``{label: Attack}``, or a list of attacks / suite entries. The
    default is early exit (module docstring); ``full_matrix=True`` attacks every clean-correct sample with
    every attack. ``index`` gives the canonical sample ids (default 0..N-1; they seed each block of
    ``batch_size`` positions). ``stochastic`` None detects it (two forward passes differ). ``cache`` makes the
    evaluation resumable per (model, attack) cell. Also accepts any plain ``nn.Module``. A stochastic model
    is also evaluated with ``R`` further seeded passes per image (``clean_passes``, ``robust_passes``; 0 or
    less: none).
    """
    device = torch.device(device) if not isinstance(device, torch.device) else device
    if batch_size < 1:
        raise BenchError(f"batch size must be >= 1, got {batch_size}")
    pairs, suite_aggregates, suite_full = _normalise_attacks(attacks)
    labels = [label for label, _ in pairs]
    if len(set(labels)) != len(labels):
        raise BenchError(f"duplicate attack labels {labels}")
    full_matrix = full_matrix or suite_full
    aggregates = dict(aggregates or suite_aggregates)
    mode = "full-matrix" if full_matrix else "early-exit"
    x = x.detach().float().cpu()
    y = y.detach().long().cpu()
    index = np.arange(len(x), dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    if not (len(x) == len(y) == len(index)) or len(x) == 0:
        raise BenchError(f"evaluate needs as many images, labels and ids (> 0): "
                         f"{len(x)}, {len(y)}, {len(index)}")
    model = model.to(device)
    if stochastic is None:
        stochastic = detect_stochastic(model, x, device, seed)
    ids = samples_id(index, y)
    base_key = {"samples": ids, "n": len(x), "seed": seed, "batch_size": batch_size, "mode": mode,
                "stochastic": bool(stochastic)}
    R = max(0, int(R)) if stochastic else 0
    if R:
        base_key["R"] = R

    key = {**base_key, "label": "clean"}
    clean = cache.get("clean", key) if cache else None
    if clean is None:
        clean = _clean_pass(model, x, y, index, batch_size, seed, device, progress, f"{name} clean", R)
        if cache:
            cache.put("clean", key, clean)
    correct = clean["pred"] == y.numpy()

    specs = {label: _spec(a) for label, a in pairs}
    order = list(range(len(pairs))) if full_matrix else sorted(
        range(len(pairs)), key=lambda j: specs[pairs[j][0]]["cost"])
    cols: dict[str, dict[str, np.ndarray]] = {}
    fooled = ~correct  # known non-robust so far (clean-incorrect, then fooled by an earlier attack)
    prefix: list[str] = []
    for j in order:
        label, attack = pairs[j]
        key = {**base_key, "label": label, "attack": specs[label]["spec"],
               "after": [] if full_matrix else list(prefix)}
        col = cache.get(label, key) if cache else None
        if col is None:
            targets = correct if full_matrix else ~fooled
            col = _attack_column(model, attack, label, x, y, index, targets, batch_size, seed, device,
                                 progress, f"{name} {label}", R)
            col["robust"][~correct] = 0  # misclassified clean: not robust by definition (exact)
            if R:
                col["passes"][~correct] = 0
            if cache:
                cache.put(label, key, col)
        cols[label] = col
        fooled = fooled | (col["robust"] == 0)
        prefix.append(specs[label]["spec"])

    n, a = len(x), len(pairs)
    stack = {k: np.stack([cols[label][k] for label in labels], 1) if a else np.zeros((n, 0))
             for k in ("robust", "norm", "raw_norm", "pred", "conf")}
    meta = {"model": name, "mode": mode, "seed": seed, "batch_size": batch_size,
            "stochastic": bool(stochastic),
            "specs": specs, "order": [labels[j] for j in order], "aggregates": aggregates,
            "clean_seconds": float(clean["seconds"]), "ms_per_image_b1": float(clean["ms_b1"]),
            "ms_per_image_b256": float(clean["ms_b256"]), "device": str(device)}
    passes: dict[str, np.ndarray] = {}
    if R:  # per pass: robust when the clean AND the adversarial prediction of that pass are right
        cp = clean["passes"].astype(np.int8)
        adv = np.stack([cols[label]["passes"] for label in labels], 1) if a else np.zeros((n, 0, R), np.int8)
        robust_passes = np.where(adv == NOT_EVALUATED, NOT_EVALUATED, adv & cp[:, None]).astype(np.int8)
        passes = {"clean_passes": cp, "robust_passes": robust_passes}
        meta["R"] = R
    return Matrix(**passes, index=index, y=y.numpy(), labels=labels,
                  clean_pred=clean["pred"].astype(np.int64), clean_conf=clean["conf"],
                  clean_probs=clean["probs"],
                  robust=stack["robust"].astype(np.int8), norm=stack["norm"].astype(np.float32),
                  raw_norm=stack["raw_norm"].astype(np.float32),
                  pred=stack["pred"].astype(np.int16), conf=stack["conf"].astype(np.float32),
                  seconds=np.array([float(cols[label]["seconds"]) for label in labels]), meta=meta)


# ----------------------------------------------------------------------------------------------- bench run
@dataclass
class ModelSpec:
    """A model to evaluate: its name, a loader (called once, lazily) and card facts for the records
    (``checkpoint_sha256``, ``stochastic``, ``description``, ``data``)."""

    name: str
    load: Callable[[], nn.Module]
    info: dict = field(default_factory=dict)


RUN_KEYS = ("suite", "dataset", "n", "seed", "mode", "batch_size")


def run_models(
    models: Iterable[ModelSpec],
    suite: Suite,
    data,
    out: str | Path,
    *,
    full_matrix: bool = False,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    command: str = "",
    data_source: str = "npz",
    log: Callable[[str], None] = print,
    diagnose: bool = False,
    R: int = R_DEFAULT,
    diagnose_budget_s: float | None = None,
) -> list[dict]:
    """Evaluate each model on ``data`` (a :class:`bench.data.EvalSet`) under ``suite`` into ``out``, resuming
    finished cells; records are rewritten after every model (so Ctrl-C keeps all finished models). Returns
    the record rows of every model in ``out``.

    Each model is evaluated with its own flavour of ``suite`` (:func:`bench.suites.model_suite`; stochastic:
    the card says so or two forward passes differ), stochastic models also with ``R`` further passes per
    image. ``diagnose``: then :func:`bench.diagnostics.diagnose` on each model (:func:`diagnose_model`;
    ``diagnose_budget_s`` caps its measurements per model, default :func:`diagnostics_budget` on a CPU)."""
    out = Path(out)
    device = torch.device(device) if not isinstance(device, torch.device) else device
    mode = "full-matrix" if (full_matrix or suite.full_matrix) else "early-exit"
    run_info = {"suite": suite.name, "suite_description": suite.description, "dataset": data.name,
                "n": len(data), "seed": seed, "mode": mode, "batch_size": batch_size,
                "data_source": data_source, "suite_full_matrix": suite.full_matrix,
                "attacks": {e.label: e.build().spec() for e in suite.entries},
                "entries": [[e.label, e.attack, e.params] for e in suite.entries],
                "aggregates": dict(suite.aggregates), "command": command, "classes": list(data.classes),
                "order": suite.labels if mode == "full-matrix" else
                [e.label for e in sorted(suite.entries, key=lambda e: attack_cost(e.build()))],
                **provenance(seed, str(device), data.source_sha256)}
    run_info["R"] = R  # stochastic passes per image (mean-over-R columns); bench check re-measures with it
    if suite.params:  # e.g. adaptive:aa_eot=5 (bench.suites.get_suite)
        run_info["suite_params"] = dict(suite.params)
    old: dict = {}
    if (out / "records.json").is_file():
        old, _ = read_records(out)
        bad = [k for k in RUN_KEYS if k in old and old[k] != run_info[k]]
        if bad:
            was = ", ".join(f"{k}={old[k]}" for k in bad)
            now = ", ".join(f"{k}={run_info[k]}" for k in bad)
            raise BenchError(f"{out} holds results of another configuration ({was}; this run: {now}): "
                             "choose another --out")
        run_info["commands"] = list(dict.fromkeys([*old.get("commands", []), command]))
    else:
        run_info["commands"] = [command]
    models = list(models)
    run_info["models"] = list(dict.fromkeys([*old.get("models", []), *(spec.name for spec in models)]))
    from bench.eval import distributed

    shard = distributed.current_shard(len(data), batch_size)  # None outside torchrun
    for spec in models:
        t0 = time.perf_counter()
        try:
            model = spec.load()
        except ModelCardError as e:  # e.g. a checkpoint file missing: the other models still run
            log(f"note: skipping {spec.name}: {e}")
            continue
        info = {"name": spec.name, **spec.info}
        model = model.to(device)
        stochastic = bool(info.get("stochastic")) or detect_stochastic(model, data.x, device, seed)
        msuite = model_suite(suite, stochastic, spec.name, data.name)  # this model's flavour of the suite
        info["suite"] = suite_entries(msuite)
        write_json_atomic(out / "cells" / safe_name(spec.name) / "model.json", info)
        key = {"checkpoint_sha256": info.get("checkpoint_sha256", ""), "dataset": data.name,
               "data_sha256": data.source_sha256}
        run = partial(evaluate, model, attacks=msuite, full_matrix=full_matrix, batch_size=batch_size,
                      seed=seed, device=device, progress=progress, stochastic=stochastic, name=spec.name, R=R)
        if shard:  # under torchrun: this rank's images; rank 0 gets the merged matrix, the others None
            matrix = shard.evaluate(run, data, out, spec.name, key)
            if matrix is None:
                continue
        else:
            matrix = run(data.x, data.y, index=data.index, cache=CellCache(out, spec.name, key))
        matrix.meta["checkpoint_sha256"] = info.get("checkpoint_sha256", "")
        matrix.save(matrix_path(out, spec.name))
        if diagnose:
            budget = diagnose_budget_s if diagnose_budget_s is not None else (
                diagnostics_budget(matrix) if device.type == "cpu" else None)
            diagnose_model(out, spec.name, model, matrix, info, run_info, data, seed=seed, R=R,
                           budget_s=budget, log=log)
        collect_records(out, run_info)
        wc = matrix.worst_case()
        log(f"{spec.name}: clean {100 * matrix.clean_correct.mean():.1f} %, worst case "
            f"{100 * (wc == 1).mean():.1f} % over {', '.join(matrix.labels)} "
            f"({time.perf_counter() - t0:.1f} s{', stochastic' if matrix.meta['stochastic'] else ''})")
    return collect_records(out, run_info) if shard is None or shard.is_main else []


def collect_records(out: str | Path, run_info: dict) -> list[dict]:
    """Rebuild and write ``records.json``/``records.csv`` from every model matrix in ``out``: with each
    model's own suite where it differs from the run's (``run_info["model_suites"]``, for ``bench check``) and
    the warnings of its ``diagnostics.json`` (when that file belongs to these very rows)."""
    from bench.diagnostics import apply_warnings

    out = Path(out)
    rows: list[dict] = []
    model_suites: dict[str, dict] = {}
    diagnosed: dict[str, dict] = {}
    run_entries = run_info.get("entries")
    rank = {safe_name(m): i for i, m in enumerate(run_info.get("models", []))}
    paths = sorted((out / "matrices").glob("*.npz"), key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    for path in paths:
        matrix = Matrix.load(path)
        info_path = out / "cells" / path.stem / "model.json"
        info = (json.loads(info_path.read_text()) if info_path.is_file()
                else {"name": matrix.meta.get("model")})
        mrows = record_rows(matrix, info, run_info)
        name = mrows[0]["model"]
        own = info.get("suite")
        if own and json.loads(json.dumps(own["entries"])) != json.loads(json.dumps(run_entries)):
            model_suites[name] = own
        diag = _read_diagnostics(out, name, mrows)
        if diag is not None:
            apply_warnings(mrows, {(name, label): fl for label, fl in diag["flags"]})
            diagnosed[name] = {k: diag.get(k) for k in ("measured", "skipped", "n", "seconds")}
        rows.extend(mrows)
    run_info = {**run_info, "models": list(dict.fromkeys(r["model"] for r in rows))}
    if model_suites:
        run_info["model_suites"] = model_suites
    if diagnosed:
        run_info["diagnostics"] = diagnosed
    write_records(out, rows, run_info)
    return rows


# ----------------------------------------------------------------------------------------------- diagnostics
DIAG_BUDGET_S = 600.0  # seconds of diagnostic measurements per model on a CPU at least (diagnose_model)
DIAG_SHARE = 0.25  # ... or this share of the time its attacks took, whichever is more
DIAG_N = 128  # images the measured checks use


def diagnostics_budget(matrix: Matrix) -> float:
    """Seconds the measured diagnostics of one model may take on a CPU: :data:`DIAG_BUDGET_S`, or a quarter
    of the model's own attack time when that is more (a model whose evaluation took an hour can afford a
    quarter hour of checks). Read from the matrix, so a resumed run plans the same checks."""
    return max(DIAG_BUDGET_S, DIAG_SHARE * float(np.sum(matrix.seconds)))


def seconds_per_pass(matrix: Matrix) -> float | None:
    """Seconds per image and forward+backward pass as this model's attacks took them here (median over its
    gradient columns of seconds / (images attacked x :func:`bench.suites.attack_cost`)), else twice the
    clean forward time per image; None when neither is known. Measured, so it includes what a clean
    timing misses: small batches, EOT, a CPU shared with other jobs."""
    specs = matrix.meta.get("specs", {})
    clean = matrix.clean_correct
    rates = []
    for j, label in enumerate(matrix.labels):
        cost = float(specs.get(label, {}).get("cost") or 0)
        images = int((clean & (matrix.robust[:, j] != NOT_EVALUATED)).sum())
        if cost >= 2 and images and matrix.seconds[j] > 0:  # multi-pass gradient attacks only
            rates.append(float(matrix.seconds[j]) / (images * cost))
    if rates:
        return float(np.median(rates))
    ms = matrix.meta.get("ms_per_image_b256")
    return 2 * ms / 1000 if ms else None


def diagnostics_path(out: str | Path, model: str) -> Path:
    return Path(out) / "cells" / safe_name(model) / "diagnostics.json"


def _rows_key(rows: list[dict]) -> str:
    """A digest of what the diagnostics read from one model's records (counts and parameters, not dates)."""
    keep = ("attack", "kernel", "count", "count_hi", "n", "exact", "evaluated", "fooled", "params", "eps",
            "eps_effective", "stochastic", "unbounded_success")
    text = json.dumps([[r.get(k) for k in keep] for r in rows], default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_diagnostics(out: Path, model: str, rows: list[dict]) -> dict | None:
    """The model's saved diagnostics when they were computed from these rows (else None: stale)."""
    path = diagnostics_path(out, model)
    if not path.is_file():
        return None
    try:
        diag = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return diag if diag.get("key", {}).get("rows") == _rows_key(rows) else None


def diagnose_model(out: str | Path, name: str, model: nn.Module, matrix: Matrix, info: dict, run_info: dict,
                   data, *, seed: int = 0, R: int = R_DEFAULT, budget_s: float | None = None,
                   n: int = DIAG_N, log: Callable[[str], None] = print) -> dict:
    """Run :func:`bench.diagnostics.diagnose` on one evaluated model and write
    ``cells/<model>/diagnostics.json`` (``flags`` as ``[[column, [flag, ...]], ...]``, the measurements run
    and skipped, their time). Resumable: nothing is measured again while the file belongs to the same
    records, checkpoint, seed, R and images.

    ``budget_s`` caps the measured checks (:func:`bench.diagnostics.plan_measures`, at the cost of a
    forward+backward pass that the model's own attacks took, :func:`seconds_per_pass`): a slow model on a CPU
    (a CIFAR WideResNet) skips the costliest checks (convergence, eps sweep), and the records say which."""
    from bench import diagnostics as dg

    out = Path(out)
    rows = record_rows(matrix, info, run_info)
    n = min(n, matrix.n)
    stochastic = bool(matrix.meta.get("stochastic"))
    kept, skipped = dg.plan_measures(rows, name, stochastic=stochastic, n=n, budget_s=budget_s, R=R,
                                     seconds_per_pass=seconds_per_pass(matrix))
    key = {"rows": _rows_key(rows), "checkpoint_sha256": info.get("checkpoint_sha256", ""),
           "data_sha256": run_info.get("data_sha256"), "seed": seed, "R": R, "n": n, "measured": kept}
    path = diagnostics_path(out, name)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("key") == json.loads(json.dumps(key, default=str)):
                return old
        except json.JSONDecodeError:
            pass
    if skipped:
        log(f"{name}: diagnostics skip {', '.join(skipped)} (over the {budget_s:.0f} s budget here)")
    t0 = time.perf_counter()
    flags = dg.diagnose(rows, model, data.x, data.y, name=name, seed=seed, n=n, measure=kept, R=R)
    seconds = time.perf_counter() - t0
    labels = [r["attack"] for r in rows]
    ordered = sorted(flags.items(),
                     key=lambda kv: labels.index(kv[0][1]) if kv[0][1] in labels else len(labels))
    diag = {"key": key, "model": name, "flags": [[label, fl] for (_, label), fl in ordered],
            "measured": kept, "skipped": skipped, "n": n, "seconds": seconds}
    write_json_atomic(path, diag)
    shown = sorted({dg.flag_name(f) for _, fl in ordered for f in fl})
    log(f"{name}: diagnostics ({', '.join(kept)}; {seconds:.0f} s): "
        + (", ".join(shown) if shown else "no flag"))
    return diag


def select_cards(spec: str) -> list:
    """Zoo cards for ``all``, comma-separated names or shell globs ('smoothing*'); in order, no repeats."""
    from bench.zoo import get_card, list_cards

    if spec.strip() in ("all", "*", ""):
        return list_cards("*")
    cards: dict[str, object] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if any(ch in part for ch in "*?["):
            found = list_cards(part)
            if not found:
                raise BenchError(f"no model matches {part!r}; see `bench list models`")
        else:
            found = [get_card(part)]
        cards.update((c.name, c) for c in found)
    return list(cards.values())


def run_command(args: argparse.Namespace) -> int:
    """``bench run``: evaluate zoo models under a suite, write records + matrices + leaderboard, print it."""
    from bench.data import load_eval
    from bench.eval import distributed
    from bench.zoo import load_model

    if getattr(args, "workers", None) and args.workers > 1:  # launch torchrun with the same arguments
        return distributed.launch_local(args.workers)
    suite = get_suite(args.suite or DEFAULT_SUITE)
    n = args.n if args.n is not None else suite.default_n
    out = Path(args.out) if args.out else REPO_ROOT / "results" / "latest"
    device = distributed.init(resolve_device(args.device))  # under torchrun: join the group, rank's device
    cards = select_cards(args.models)
    models = []
    for card in cards:
        if not card.trained:
            print(f"note: skipping {card.name}: untrained (train it with `bench train {card.name}`)",
                  file=sys.stderr)
        elif card.data != args.dataset:
            print(f"note: skipping {card.name}: a {card.data} model (this run: --dataset {args.dataset})",
                  file=sys.stderr)
        else:
            models.append(ModelSpec(card.name, lambda c=card: load_model(c, device),
                                    {"checkpoint_sha256": card.sha256, "stochastic": bool(card.stochastic),
                                     "description": card.description, "data": card.data}))
    if not models:
        raise BenchError(f"no trained {args.dataset} model matches --models {args.models!r}; "
                         "see `bench list models`")
    data = load_eval(args.dataset, n, args.data)
    command = "bench " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["run"] else "bench run"
    t0 = time.perf_counter()
    progress = not getattr(args, "quiet", False)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    rows = run_models(models, suite, data, out, full_matrix=args.full_matrix, batch_size=args.batch_size,
                      seed=args.seed, device=device, progress=progress, command=command,
                      data_source=args.data, log=log, diagnose=bool(getattr(args, "diagnose", False)),
                      R=getattr(args, "passes", None) or R_DEFAULT)
    if not distributed.is_main():  # another torchrun rank: rank 0 merged and writes records and report
        return 0
    if not rows:
        raise BenchError(f"no model could be evaluated (see the notes above); nothing written to {out}")
    from bench import report

    if not args.no_report:
        report.write_report(out)
    print(report.leaderboard_markdown(out, figures=False))
    log(f"wrote {out} in {time.perf_counter() - t0:.1f} s"
        + ("" if args.no_report else f"; leaderboard: {out / 'leaderboard.md'}"))
    if suite.name != "standard" or n is not None:
        log(f"this was a quick evaluation (suite {suite.name}, {len(data)} images); "
            f"the full one: {FULL_COMMAND}")
    return 0
