"""One row of ``bench crosscheck``: run an attack (ours and each reference library) on the same model and images,
then judge the difference against the row's tolerance.

Robust accuracy = clean-correct AND adversarial-correct, in % of all images (pixels in [0, 1], eps in the same
units). Tolerances by the attack's :class:`~honestbench.devtools.crosscheck.references.Equivalent` ``check``:

* ``gradient``, deterministic (FGSM, PGD without random start, ours with ``early_stop=False``: the exact
  torchattacks iteration): max |ours - torchattacks| <= :data:`EXACT_PIXEL_TOL` per pixel and robust accuracy
  within :data:`EXACT_ACC_TOL_PP` of ART; the first-success early-stop variant must not be weaker;
* ``gradient``, randomised (random start, or any attack on a stochastic model): mean robust accuracy over paired
  seeds within :data:`RANDOM_ACC_TOL_PP` of both references;
* ``cw``: within :data:`CW_ACC_TOL_PP` of ART's CarliniL2Method, both counted at L2 <= the attack's threshold;
  torchattacks' CW is reported, not compared (no binary search over c; its margin ``max((1 - onehot) * Z)`` is
  wrong when the logits of the other classes are negative, and the note counts the affected samples);
* ``noise``: no reference; judged against the run's PGD L-inf rows by the driver.

A reference left out on purpose (ART unless ``--art``) is skipped, not failed; a row no run reference checks
gets ``n/a``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from honestbench.attacks import Attack
from honestbench.devtools.crosscheck.references import (
    AttackFn,
    Equivalent,
    art_equivalent,
    equivalent,
    torchattacks_equivalent,
)

EXACT_PIXEL_TOL = 1e-5  # max abs pixel difference to torchattacks (float32 rounding only)
EXACT_ACC_TOL_PP = 1.0  # deterministic attacks: robust accuracy vs ART
RANDOM_ACC_TOL_PP = 1.5  # random start: robust accuracy vs both references
CW_ACC_TOL_PP = 2.0  # CW-L2 vs ART's CarliniL2Method at the L2 threshold
REFERENCES = ("torchattacks", "art")
EVAL_SEED = 1_000_003  # offset of the global-RNG seeds of the evaluation passes (stochastic models)


# ----------------------------------------------------------------------------------------------- measuring
@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's and numpy's global RNGs for a reference library; restore the caller's state after."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Predicted classes of ``x``, in batches."""
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def robust_flags(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, clean_ok: torch.Tensor,
                 l2_threshold: float | None) -> torch.Tensor:
    """Per-sample robust flag; with ``l2_threshold`` an adversarial image farther than it does not count."""
    fooled = predict(model, x_adv) != y
    if l2_threshold is not None:
        fooled &= (x_adv - x).flatten(1).norm(dim=1) <= l2_threshold + 1e-6
    return clean_ok & ~fooled


def pct(flags: torch.Tensor) -> float:
    """Share of true flags, in % (4 decimals)."""
    return round(100.0 * flags.float().mean().item(), 4)


@dataclasses.dataclass
class Setting:
    """What every row of one crosscheck shares: model, images, clean pass, seeds and the reference runs' cache."""

    model: nn.Module
    classifier: object  # ART's classifier around the model, None when ART is left out
    x: torch.Tensor
    y: torch.Tensor
    clean_ok: torch.Tensor
    seed: int
    random_seeds: int
    stochastic: bool
    negative_others: int  # clean samples whose every other-class logit is negative (torchattacks' CW note)
    references: Sequence[str] = REFERENCES
    cache: dict = dataclasses.field(default_factory=dict)  # reference runs shared by rows differing in early_stop
    bars: bool = False  # a tqdm bar (stderr) per (attack, library), one tick per seed


@dataclasses.dataclass
class _Row:
    """One row being measured: the attack, its seeds, the record so far and its notes."""

    attack: Attack
    entry: Equivalent | None
    s: Setting
    seeds: list[int]
    thr: float | None
    record: dict
    notes: list[str]
    raw_norms: torch.Tensor | None = None  # our last run's unthresholded norms (minimum-norm attacks: CW)

    def measure(self, key: str, fn: AttackFn | None) -> torch.Tensor:
        """Run ours (``fn`` None) or a reference once per seed; record mean robust accuracy and time; return the
        first seed's images. A reference's run is deterministic given its seed and ignores ``early_stop`` (ours
        only), so two rows that differ only there reuse the first row's reference runs."""
        first, accs, secs, reused = None, [], 0.0, 0
        params = repr(sorted((k, v) for k, v in self.attack.params().items() if k != "early_stop"))
        bar = tqdm(total=len(self.seeds), desc=f"{self.record['attack']} | {key}", unit="seed", file=sys.stderr,
                   disable=not self.s.bars, leave=True, dynamic_ncols=True)
        for seed in self.seeds:
            ck = (key, type(self.attack).__name__, params, self.thr, seed)
            if fn is not None and ck in self.s.cache:
                adv, acc, dt = self.s.cache[ck]
                reused += 1
            else:
                adv, acc, dt = self._run_once(fn, seed)
                if fn is not None:
                    self.s.cache[ck] = (adv if seed == self.seeds[0] else None, acc, dt)
            first = adv if first is None else first
            accs.append(acc)
            secs += dt
            bar.update()
        bar.close()
        if reused:
            self.notes.append(f"{key}: reused {reused} identical runs of an earlier row (early_stop changes ours only)")
        self.record["seconds"][key] = round(secs / len(self.seeds), 3)
        self.record["robust_accuracy"][key] = round(sum(accs) / len(accs), 4)
        if len(accs) > 1:
            self.record["robust_accuracy_per_seed"][key] = accs
        return first

    def _run_once(self, fn: AttackFn | None, seed: int) -> tuple[torch.Tensor, float, float]:
        s, t = self.s, time.perf_counter()
        with seeded(seed):  # global RNGs too: a stochastic model draws its noise from them
            if fn is None:
                out = self.attack.run(s.model, s.x, s.y, generator=torch.Generator(device=s.x.device).manual_seed(seed))
                adv, self.raw_norms = out.x_adv, out.raw_norms
            else:
                adv = fn(s.x, s.y).detach()
        with seeded(EVAL_SEED + seed):  # the same evaluation draws for every library's images
            acc = pct(robust_flags(s.model, adv, s.x, s.y, s.clean_ok, self.thr))
        return adv, acc, time.perf_counter() - t

    def ours_extras(self) -> None:
        """CW: our success rate and median L2; PGD without early stop: the first-success variant's accuracy."""
        attack, s, check = self.attack, self.s, self.entry.check if self.entry else None
        norms = self.raw_norms
        if check == "cw" and norms is not None:
            success = torch.isfinite(norms)
            ok_norms = norms[success & s.clean_ok]
            self.record["extra"]["ours_success_rate"] = pct(success[s.clean_ok])
            self.record["extra"]["ours_median_l2"] = round(ok_norms.median().item(), 4) if ok_norms.numel() else None
        if check == "gradient" and getattr(attack, "early_stop", True) is False:  # must be as strong
            es = dataclasses.replace(attack, early_stop=True)
            es.name = attack.name
            with seeded(s.seed):
                es_adv = es(s.model, s.x, s.y, generator=torch.Generator(device=s.x.device).manual_seed(s.seed))
            with seeded(EVAL_SEED + s.seed):
                acc = pct(robust_flags(s.model, es_adv, s.x, s.y, s.clean_ok, None))
            self.record["extra"]["ours_early_stop_robust_accuracy"] = acc

    def run_references(self, ours: torch.Tensor, exact: bool) -> None:
        """Each reference library asked for (and able to express this attack): its images, accuracy, pixel diff."""
        if self.entry is None or self.entry.check == "noise":
            return
        s, n = self.s, len(self.s.y)
        skipped = [ref for ref in REFERENCES if ref not in s.references]
        if skipped:
            self.notes.append(f"not run: {', '.join(skipped)}")
        builders = {"torchattacks": lambda: torchattacks_equivalent(self.attack, s.model, n),
                    "art": lambda: art_equivalent(self.attack, s.classifier, n)}
        for ref in (r for r in REFERENCES if r in s.references):
            fn, note = builders[ref]()
            if note:
                self.notes.append(note)
            if fn is None:
                continue
            adv = self.measure(ref, fn)
            if exact:
                self.record["max_abs_diff"][ref] = float((adv - ours).abs().max()) if n else 0.0


# ----------------------------------------------------------------------------------------------- judging
class _Verdict:
    """The computed verdict of one row: fails with reasons, and the references it was compared with."""

    def __init__(self, acc: dict, references: Sequence[str]):
        self.acc, self.references = acc, references
        self.ok, self.why, self.compared = True, [], []

    def fail(self, why: str) -> None:
        self.ok = False
        self.why.append(why)

    def need(self, ref: str, tol: float, what: str) -> None:
        """Robust accuracy within ``tol`` pp of ``ref`` (skipped, not failed, when ``ref`` was left out)."""
        if ref not in self.references:
            return
        self.compared.append(ref)
        if ref not in self.acc:
            self.fail(f"no {ref} result to compare ({what})")
            return
        d = abs(self.acc["ours"] - self.acc[ref])
        if d > tol + 1e-9:
            self.fail(f"robust accuracy differs from {ref} by {d:.2f} pp > {tol} pp")


def _judge_exact(row: _Row, v: _Verdict) -> dict:
    diff = row.record["max_abs_diff"].get("torchattacks")
    if "torchattacks" in row.s.references:  # else left out on purpose: skipped, not failed
        v.compared.append("torchattacks")
        if diff is None:
            v.fail("no torchattacks images to compare")
        elif diff > EXACT_PIXEL_TOL:
            v.fail(f"images differ from torchattacks by {diff:.3g} > {EXACT_PIXEL_TOL}")
    v.need("art", EXACT_ACC_TOL_PP, "deterministic")
    es, ours = row.record["extra"].get("ours_early_stop_robust_accuracy"), v.acc["ours"]
    if es is not None and es > ours + 1e-9:
        v.fail(f"first-success early stop is weaker ({es} % > {ours} %)")
    return {"max_abs_diff_vs_torchattacks": EXACT_PIXEL_TOL, "robust_acc_pp_vs_art": EXACT_ACC_TOL_PP}


def _judge(row: _Row, exact: bool) -> None:
    """Set the row's ``tolerance``, ``verdict`` and ``note``."""
    rec, check = row.record, row.entry.check if row.entry else None
    v = _Verdict(rec["robust_accuracy"], row.s.references)
    if check is None:
        rec["tolerance"] = {}
    elif check == "cw":
        rec["tolerance"] = {"robust_acc_pp_vs_art": CW_ACC_TOL_PP, "l2_threshold": row.thr}
        v.need("art", CW_ACC_TOL_PP, "CW")
        if "torchattacks" in v.acc:
            row.notes.append(f"torchattacks CW reported, not compared: fixed c (no binary search over c), "
                             f"and its margin max((1-onehot)*Z) is wrong where every other class has a "
                             f"negative logit ({row.s.negative_others}/{len(row.s.y)} clean samples here)")
    elif check == "noise":
        rec["tolerance"] = {"not_stronger_than_pgd": True}
        row.notes.append("no reference library has uniform L-inf noise; checked against PGD L-inf at its eps")
    elif exact:
        rec["tolerance"] = _judge_exact(row, v)
    else:
        rec["tolerance"] = {"robust_acc_pp_vs_both": RANDOM_ACC_TOL_PP}
        for ref in REFERENCES:
            v.need(ref, RANDOM_ACC_TOL_PP, "random start")
    if check is None:
        rec["verdict"] = "n/a"
        row.notes.insert(0, f"no reference implementation of {row.attack.name!r} in torchattacks or ART")
    elif not v.compared and check != "noise":
        rec["verdict"] = "n/a"
        row.notes.insert(0, "no reference that checks this row was run")
    else:
        rec["verdict"] = "ok" if v.ok else "FAIL"
    rec["note"] = "; ".join(v.why + row.notes)


# ----------------------------------------------------------------------------------------------- one row
def compare_row(label: str, attack: Attack, s: Setting) -> dict:
    """Run ``attack`` (ours, then each reference) on ``s`` and judge it; returns the row's record (accuracies
    in %, seconds per seed)."""
    entry = equivalent(attack)
    check = entry.check if entry else None
    exact = check == "gradient" and not attack.randomized and not s.stochastic
    repeated = (attack.randomized or s.stochastic) and check != "cw"
    seeds = [s.seed + k for k in range(s.random_seeds)] if repeated else [s.seed]
    record: dict = {"attack": label, "name": attack.name, "params": attack.params(), "deterministic": exact,
                    "seeds": seeds, "robust_accuracy": {}, "robust_accuracy_per_seed": {}, "max_abs_diff": {},
                    "seconds": {}, "extra": {}}
    notes: list[str] = []
    if repeated and len(seeds) > 1:
        notes.append(f"random: robust accuracy is the mean over {len(seeds)} seeds (paired across libraries)")
    row = _Row(attack, entry, s, seeds, getattr(attack, "threshold", None) if check == "cw" else None, record, notes)
    ours = row.measure("ours", None)
    row.ours_extras()
    row.run_references(ours, exact)
    _judge(row, exact)
    return record
