"""The bound columns beside the attack columns, for a suite with a :class:`~honestbench.suites.CertifySpec`
(``--certify``, the ``certified`` suite): per image

* ``certified``: 1 when a sound lower bound (CROWN by default, :mod:`honestbench.certify`) of every margin
  ``f_y - f_j`` over the L-inf ball (pixels in [0, 1], clipped to the box) is > 0, else 0;
* ``exact``: the MILP's answer (:mod:`honestbench.certify.milp`): 1 robust, 0 a counterexample (or wrong
  clean), -1 timeout or unknown (the per-image limit is in the row).

Each is a cell (:class:`BoundCell`), resumable like an attack's. A model whose layers the bounds cannot handle
gets flags -1 and the one-line refusal as the column's note, not a crash. :func:`check_invariant` then holds
every run to ``certified or exact robust => robust to every L-inf attack of at most that budget``: an image
proved robust and broken by an attack is a hard error naming the image, the attack, the method and the bound.
"""

from __future__ import annotations

import collections
import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from honestbench.certify import UnsupportedLayer, build_graph, certify
from honestbench.certify import ops as cops
from honestbench.certify.milp import verify
from honestbench.core.errors import BenchError
from honestbench.suites import CertifySpec, Suite


@dataclass
class BoundCell:
    """One bound column: tri-state ``flags`` (int8), ``bound`` (float32, the smallest margin lower bound per
    image; NaN for ``exact``), wall ``seconds``, the ``method`` used and a ``note`` (a refusal or fallback
    line; '' when none); ``refused``: the model could not be bounded at all."""

    flags: np.ndarray
    bound: np.ndarray
    seconds: float
    method: str
    note: str = ""
    refused: bool = False

    def arrays(self) -> dict[str, np.ndarray]:
        return {"flags": self.flags, "bound": self.bound, "seconds": np.float64(self.seconds),
                "method": np.array(self.method), "note": np.array(self.note), "refused": np.array(self.refused)}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> BoundCell:
        return cls(a["flags"], a["bound"], float(a["seconds"]), str(a["method"]), str(a["note"]), bool(a["refused"]))

    @classmethod
    def concat(cls, parts: list[BoundCell]) -> BoundCell:
        """Consecutive shards' cells as one (flags and bounds concatenated, seconds summed)."""
        return cls(np.concatenate([p.flags for p in parts]), np.concatenate([p.bound for p in parts]),
                   sum(p.seconds for p in parts), parts[0].method, parts[0].note, parts[0].refused)


def certify_eps(suite: Suite) -> float:
    """The budget of the bound columns: the spec's, else the largest L-inf attack budget of the suite."""
    spec = suite.certify
    if spec is not None and spec.eps is not None:
        return float(spec.eps)
    budgets = [a.budget for a in suite.attacks().values() if a.norm == "linf" and a.budget]
    if not budgets:
        raise BenchError(f"suite {suite.name!r} has no L-inf attack: the certified column needs an L-inf budget")
    return float(max(budgets))


def _relus(model: nn.Module, graph, x: torch.Tensor) -> int:
    """ReLU neurons of ``model`` on one image of ``x``'s shape."""
    with torch.no_grad():
        vals = graph.forward(x[:1])
    return sum(int(v[0].numel()) for v, n in zip(vals, graph.nodes, strict=True) if isinstance(n.op, cops.ReLU))


def _refused(n: int, method: str, note: str, t0: float) -> BoundCell:
    return BoundCell(np.full(n, -1, np.int8), np.full(n, np.nan, np.float32), time.perf_counter() - t0, method,
                     note, True)


def certified_cell(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: CertifySpec, eps: float,
                   device: torch.device, batch_size: int) -> BoundCell:
    """The ``certified`` column of ``model`` on ``x`` (float32 NCHW in [0, 1]), labels ``y``."""
    t0, n = time.perf_counter(), len(x)
    try:
        graph = build_graph(model.eval())
    except UnsupportedLayer as e:
        return _refused(n, spec.method, str(e), t0)
    xd, yd = x.to(device), y.to(device)
    method, note = spec.method, ""
    relus = _relus(model, graph, xd)
    if method == "crown" and relus > spec.crown_max_relus:
        method = "crown-ibp"
        note = (f"crown-ibp: CROWN's per-neuron refinement is not run on {relus:,} ReLUs "
                f"(more than {spec.crown_max_relus:,})")
    c = certify(graph, xd, yd, eps, method, batch_size)
    lb = np.where(np.isfinite(c.margin_lower), c.margin_lower, np.inf).min(1) if n else np.zeros(0)
    flags = c.certified.astype(np.int8)  # a certified image misclassified clean: check_invariant's error
    return BoundCell(flags, lb.astype(np.float32), time.perf_counter() - t0, method, note)


def exact_cell(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: CertifySpec, eps: float) -> BoundCell:
    """The ``exact`` column (MILP, ``spec.exact_limit`` seconds per image; on the CPU)."""
    t0, n = time.perf_counter(), len(x)
    method = f"milp ({spec.exact_limit:g} s/image)"
    try:
        graph = build_graph(model.eval())
        relus = _relus(model, graph, x)
        if relus > spec.exact_max_relus:
            return _refused(n, method, f"exact: not attempted on {relus:,} ReLUs (more than "
                                       f"{spec.exact_max_relus:,}: the MILP encoding is dense)", t0)
        on_cpu = all(p.device.type == "cpu" for p in model.parameters())
        model_cpu = model if on_cpu else copy.deepcopy(model).cpu()
        verdicts = verify(model_cpu, x, y, eps, float(spec.exact_limit))
    except UnsupportedLayer as e:
        return _refused(n, method, str(e), t0)
    code = {"robust": 1, "counterexample": 0}
    flags = np.array([code.get(v.status, -1) for v in verdicts], np.int8)
    k = collections.Counter(v.status for v in verdicts)
    note = "" if not (k["timeout"] or k["unknown"]) else \
        f"exact: {k['timeout']} timeouts, {k['unknown']} unknown at {spec.exact_limit:g} s per image"
    return BoundCell(flags, np.full(n, np.nan, np.float32), time.perf_counter() - t0, method, note)


def check_invariant(name: str, cells: dict[str, BoundCell], eps: float, attack_flags: dict[str, np.ndarray],
                    attack_budgets: dict[str, float | None], correct: np.ndarray, index: np.ndarray) -> None:
    # attack_budgets: L-inf budget of each attack column (None: another norm, not compared)
    """Raise a one-line :class:`BenchError` when an image proved robust (flag 1 in a bound column) is
    misclassified clean or fooled by an L-inf attack whose budget is at most ``eps``."""
    for label, cell in cells.items():
        proven = cell.flags == 1
        checks = {"the clean image": ~correct}
        checks.update({f"attack {a}": f == 0 for a, f in attack_flags.items()
                       if attack_budgets.get(a) is not None and attack_budgets[a] <= eps + 1e-12})
        for what, broken in checks.items():
            bad = np.nonzero(proven & broken)[0]
            if len(bad):
                i = int(bad[0])
                bound = "" if np.isnan(cell.bound[i]) else f", smallest margin lower bound {cell.bound[i]:.4g}"
                raise BenchError(f"{name}: image {int(index[i])} is {label} robust by {cell.method} at L-inf "
                                 f"{eps:.6g}{bound}, but {what} is misclassified ({len(bad)} such images): a bug "
                                 "in the bound or the attack")


def bound_columns(model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: np.ndarray, suite: Suite,
                  pairs: list, cols: dict, correct: np.ndarray, opts, cache, base_key: dict,
                  name: str) -> tuple[dict, np.ndarray]:
    """The suite's bound columns for one model (cells from ``cache`` when finished), checked against the
    attack columns ``cols`` (:func:`check_invariant`). Returns the matrix's ``meta["bounds"]`` (label ->
    method, eps, seconds, note, refused, limit) and the (N, B) int8 flags."""
    spec = suite.certify
    eps = certify_eps(suite)
    jobs = {"certified": (lambda: certified_cell(model, x, y, spec, eps, opts.device, opts.batch_size),
                          {"method": spec.method, "crown_max_relus": spec.crown_max_relus})}
    if spec.exact_limit is not None:
        jobs["exact"] = (lambda: exact_cell(model, x, y, spec, eps),
                         {"limit": spec.exact_limit, "exact_max_relus": spec.exact_max_relus})
    cells: dict[str, BoundCell] = {}
    for label, (compute, extra) in jobs.items():
        key = {**base_key, "label": label, "eps": eps, **extra}
        found = cache.get(label, key, BoundCell) if cache else None
        if found is None:
            found = compute()
            if cache:
                cache.put(label, key, found)
        cells[label] = found
    attacks = dict(pairs)
    budgets = {a: (attacks[a].budget if attacks[a].norm == "linf" else None) for a in cols}
    check_invariant(name, cells, eps, {a: c.robust for a, c in cols.items()}, budgets, correct, index)
    meta = {label: {"method": c.method, "eps": eps, "seconds": c.seconds, "note": c.note, "refused": c.refused,
                    "limit": spec.exact_limit if label == "exact" else None} for label, c in cells.items()}
    return meta, np.stack([c.flags for c in cells.values()], 1).astype(np.int8)
