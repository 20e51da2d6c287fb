"""``bench verify DIR``: re-check every break a results directory claims, from its stored adversarial examples.

A claim is an image that a model's worst case counts as not robust. Clean errors are re-checked with a fresh
forward pass on the clean image; every other claim needs a witness (:mod:`honestbench.results.witnesses`) in
one of the model's cells, checked by :func:`honestbench.pipeline.proof.check_images` against the clean image
from the data and the budget its column recorded (``matrices/<model>.npz``, ``meta["specs"]``). Witnesses
beyond the claims (none by default) are checked the same way. Nothing here calls an attack.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from honestbench.core.errors import BenchError
from honestbench.core.threads import resolve_device
from honestbench.data import load_eval
from honestbench.pipeline.check import _with_sources, _zoo_loader
from honestbench.pipeline.proof import PASSES, Budget, check_images, classify
from honestbench.results import Matrix, matrix_path, read_records
from honestbench.results.witnesses import read_witnesses


@dataclass(frozen=True)
class Unproven:
    """A claim the stored evidence does not prove: model, canonical image id, column, why. ``soft``: a
    stochastic model's example inside its budget that no fresh pass misclassified (its flag came from one
    random pass: not reproduced, but not refuted); listed, a failure only with ``strict``."""

    model: str
    image: int
    column: str
    reason: str
    soft: bool = False

    def line(self) -> str:
        return f"  {self.model}  image {self.image if self.image >= 0 else '(all)'}  {self.column}: {self.reason}"


@dataclass
class ModelProof:
    """What was checked for one model: claims (clean errors, breaks), witnesses by level, the budgets."""

    model: str
    stochastic: bool
    passes: int
    clean_errors: int = 0
    breaks: int = 0
    witnesses: int = 0
    exact: int = 0
    nbytes: int = 0
    budgets: dict[str, str] = field(default_factory=dict)
    fooled_mean: float = 1.0
    unproven: list[Unproven] = field(default_factory=list)

    def line(self) -> str:
        """One line saying what was checked."""
        how = (f"{self.passes} seeded passes each (mean fraction fooled {self.fooled_mean:.2f})"
               if self.stochastic else "one eval-mode forward pass each")
        cols = "; ".join(f"{k}: {v}" for k, v in self.budgets.items()) or "no column"
        return (f"{self.model}: {self.breaks} breaks with {self.witnesses} adversarial examples "
                f"({self.exact} stored exactly, the rest quantised; {self.nbytes / max(self.witnesses, 1):.0f} bytes "
                f"each) and {self.clean_errors} clean errors, "
                f"{how}; budgets re-measured in float64 ({cols}); "
                f"{'all proven' if not self.unproven else f'{len(self.unproven)} unproven'}")


def verify_results(out: str | Path, *, models: list[str] | None = None, device: str = "cpu",
                   passes: int = PASSES, model_loader: Callable[[str], nn.Module | tuple] | None = None
                   ) -> list[ModelProof]:
    """Check every claim of every model (or of ``models``) in results directory ``out``; ``passes``: the
    passes per image of a stochastic model."""
    out = Path(out)
    if not (out / "records.json").is_file():
        raise BenchError(f"{out} holds no records.json: give a folder written by `bench run`")
    if passes < 1:
        raise BenchError(f"--passes must be >= 1, got {passes}")
    run, _ = read_records(out)
    names = list(run.get("models") or [])
    if models:
        unknown = [m for m in models if m not in names]
        if unknown:
            raise BenchError(f"{out} has no results for {', '.join(unknown)} (it has: {', '.join(names)})")
        names = models
    dev = resolve_device(device)
    loader = model_loader or _with_sources(out, dev, _zoo_loader(dev))
    data = load_eval(run["dataset"], run["n"], run.get("data_source", "npz"))
    if data.source_sha256 != run.get("data_sha256", data.source_sha256):
        raise BenchError(f"the evaluation data changed since {out} was written (sha256): cannot re-check it")
    return [_verify_model(out, name, data, loader, dev, passes, int(run.get("seed", 0))) for name in names
            if matrix_path(out, name).is_file()]


def _verify_model(out: Path, name: str, data, loader: Callable, device, passes: int, seed: int) -> ModelProof:
    matrix = Matrix.load(matrix_path(out, name))
    loaded = loader(name)
    model = loaded[0] if isinstance(loaded, tuple) else loaded
    model = model.to(device)
    stochastic = bool(matrix.meta.get("stochastic"))
    k = passes if stochastic else 1
    proof = ModelProof(name, stochastic, k)
    pos = {int(i): p for p, i in enumerate(data.index.tolist())}
    x_all, y_all = data.x.numpy(), data.y.numpy()
    ids = np.asarray(matrix.index, np.int64)
    rows = np.array([pos[int(i)] for i in ids])
    clean_wrong = ~matrix.clean_correct
    worst = matrix.worst_case()
    # clean errors: a fresh forward pass on the clean image
    if clean_wrong.any():
        at = rows[clean_wrong]
        wrong = classify(model, x_all[at], y_all[at], device, k, seed)
        proof.clean_errors = int(clean_wrong.sum())
        proof.unproven += [Unproven(name, int(i), "clean", "classified correctly in a fresh eval pass"
                                    if k == 1 else f"classified correctly in all {k} passes", stochastic)
                           for i, w in zip(ids[clean_wrong], wrong, strict=True) if w == 0]
    claims = set(ids[(worst == 0) & ~clean_wrong].tolist())
    proof.breaks = len(claims)
    order = [lb for lb in matrix.meta.get("order", matrix.labels) if lb in matrix.labels]
    specs = matrix.meta.get("specs", {})
    proven: set[int] = set()
    fooled_sum = 0.0
    for label, wit in read_witnesses(out, name, order).items():
        if not len(wit):
            continue
        spec = specs.get(label, {})
        budget = Budget(str(spec.get("norm") or "none"), spec.get("eps"))
        proof.budgets[label] = f"{len(wit)} examples, {budget.text()}"
        proof.nbytes += wit.nbytes()
        clean = {i: x_all[pos[i]] for i in wit.index if i in pos}
        missing = [i for i in wit.index if i not in pos]
        proof.unproven += [Unproven(name, i, label, "image not in the evaluation data") for i in missing]
        decoded = [(i, lv, xw) for i, lv, xw in wit.images(clean)] if not missing else []
        if not decoded:
            continue
        got = check_images(model, np.stack([d[2] for d in decoded]), np.stack([clean[d[0]] for d in decoded]),
                           y_all[[pos[d[0]] for d in decoded]], budget, device, k, seed)
        for (i, lv, _), reason, f in zip(decoded, got.reason, got.fooled, strict=True):
            proof.witnesses += 1
            proof.exact += lv < 0
            fooled_sum += float(f)
            if reason:
                soft = stochastic and reason.startswith("misclassified in 0 of")
                proof.unproven.append(Unproven(name, i, label, reason, soft))
            else:
                proven.add(i)
    proof.fooled_mean = fooled_sum / proof.witnesses if proof.witnesses else 1.0
    witnessed = set().union(*(set(w.index) for w in read_witnesses(out, name, order).values()))
    if claims and not witnessed:  # a folder written before witnesses existed: one line, not one per image
        proof.unproven.append(Unproven(name, -1, "worst-case", f"none of its {len(claims)} breaks has a stored "
                                       "adversarial example (written before witnesses existed? rerun bench run "
                                       "into a fresh folder)"))
        return proof
    proof.unproven += [Unproven(name, i, "worst-case", "no adversarial example stored")
                       for i in sorted(claims - witnessed)]
    return proof


def failures(proofs: list[ModelProof], strict: bool = False) -> list[Unproven]:
    """The unproven claims that fail verification (soft ones too with ``strict``)."""
    return [u for p in proofs for u in p.unproven if strict or not u.soft]


def unproven_table(proofs: list[ModelProof], soft: bool | None = None) -> str:
    """The unproven claims (only the soft or only the hard ones when ``soft`` is given), one per line."""
    return "\n".join(u.line() for p in proofs for u in p.unproven if soft is None or u.soft == soft)


def summary(proofs: list[ModelProof], out: str | Path, strict: bool = False) -> str:
    """What was checked, one line per model, then the verdict."""
    bad = failures(proofs, strict)
    soft = [u for p in proofs for u in p.unproven if u.soft]
    claims = sum(p.breaks + p.clean_errors for p in proofs)
    lines = [p.line() for p in proofs]
    if soft and not strict:
        lines.append(f"note: {len(soft)} claims of stochastic models not reproduced (inside the budget, but no "
                     f"fresh pass misclassified them; --strict fails on them):\n{unproven_table(proofs, True)}")
    lines.append(f"bench verify: OK: all {claims} claimed breaks of {len(proofs)} models in {out} checked, "
                 f"{claims - len(soft)} proven" if not bad else
                 f"bench verify: {len(bad)} unproven claims in {out}:\n" + "\n".join(u.line() for u in bad))
    return "\n".join(lines)


def proofs_json(proofs: list[ModelProof]) -> str:
    """The proofs as JSON (for ``--json``)."""
    return json.dumps([{**{k: v for k, v in p.__dict__.items() if k != "unproven"},
                        "unproven": [u.__dict__ for u in p.unproven]} for p in proofs], indent=1)
