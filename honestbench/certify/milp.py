"""Exact robustness by mixed-integer linear programming (Tjeng et al. 2019, "Evaluating robustness of neural
networks with mixed integer programming"), solved by HiGHS (``highspy``).

Per image: the ReLU network over the clipped L-inf ball is encoded exactly. Variables: the input pixels (box
bounds), every ReLU output ``a`` and, for each *unstable* ReLU (pre-activation bounds ``l < 0 < u`` from
CROWN, :mod:`honestbench.certify.bounds`), a binary ``d`` with ``a >= z, a <= u d, a <= z - l (1 - d)``
(the big-M encoding); stable ReLUs are fixed (``a = z`` or ``a = 0``). For each class ``j`` not already
certified by CROWN (the weakest first), HiGHS minimises the margin ``f_y - f_j`` and stops early: once
every open node's bound exceeds ``tol`` (``objective_bound``: that target cannot be reached) or once it holds a
point with margin < ``-margin_slack`` (``objective_target``). Minimising, rather than asking whether
``f_y - f_j <= tol`` is feasible, gives the branch and bound a direction and finds counterexamples at once:

* every target pruned: ``robust`` (margins > ``tol`` over the whole ball, in float64 arithmetic);
* a point with margin < ``-margin_slack`` that the real model (float32 forward pass, the point clipped into the
  ball) misclassifies: ``counterexample``; one it does not misclassify, or a minimum within
  [``-margin_slack``, ``tol``]: ``unknown`` (the minimum lies within numerical tolerance of 0);
* the per-image time limit spent: ``timeout``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from honestbench.certify import ops
from honestbench.certify.bounds import backward, input_box, lower_bound, propagate, spec_matrix
from honestbench.certify.graph import Graph, UnsupportedLayer, build_graph
from honestbench.core.errors import BenchError

STATUSES = ("robust", "counterexample", "timeout", "unknown")


@dataclass
class Verdict:
    """One image: ``status`` (one of :data:`STATUSES`), the ``target`` class of a counterexample, the
    ``point`` (C, H, W pixels in [0, 1]) or None, seconds, binaries (unstable ReLUs) and solver calls."""

    status: str
    seconds: float
    target: int | None = None
    point: np.ndarray | None = None
    binaries: int = 0
    solves: int = 0


@dataclass
class _Encoding:
    """The network's affine pieces, as dense float64 matrices over the terminals (input, ReLU outputs)."""

    graph: Graph
    terms: list[int]  # terminal node indices: input first, then each ReLU in order
    sizes: dict[int, int]
    offsets: dict[int, int]
    relus: list[tuple[int, dict[int, np.ndarray], np.ndarray]] = field(default_factory=list)
    out: tuple[dict[int, np.ndarray], np.ndarray] | None = None


def _affine_map(graph: Graph, node: int, shapes: list[tuple]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    n = int(np.prod(shapes[node]))
    eye = torch.eye(n, dtype=torch.float64).reshape(1, n, *shapes[node])
    terms, bias = backward(graph, node, eye, shapes, None)
    return {t: a.reshape(n, -1).numpy() for t, a in terms.items()}, bias.reshape(n).numpy()


def encode(model: nn.Module, shape: tuple[int, ...]) -> _Encoding:
    """The float64 encoding of ``model`` for inputs of ``shape`` (C, H, W)."""
    graph = build_graph(copy.deepcopy(model).double().eval())
    _, shapes = propagate(graph, (torch.zeros(1, *shape, dtype=torch.float64),) * 2)
    other = [n for n in graph.nodes if not n.op.affine and not isinstance(n.op, ops.ReLU)]
    if other:
        raise UnsupportedLayer(f"exact verification encodes ReLU networks only: cannot encode layer {other[0].name!r} "
                               f"({other[0].op.kind})")
    relus = [i for i, n in enumerate(graph.nodes) if isinstance(n.op, ops.ReLU)]
    terms = [0, *relus]
    sizes = {t: int(np.prod(shapes[t])) for t in terms}
    offsets, o = {}, 0
    for t in terms:
        offsets[t], o = o, o + sizes[t]
    enc = _Encoding(graph, terms, sizes, offsets)
    with torch.no_grad():
        for r in relus:
            enc.relus.append((r, *_affine_map(graph, graph.nodes[r].inputs[0], shapes)))
        enc.out = _affine_map(graph, len(graph.nodes) - 1, shapes)
    return enc


class _Rows:
    """Rows of a HiGHS model being built: ``lower <= sum coef * var <= upper``."""

    def __init__(self) -> None:
        self.lo: list[float] = []
        self.up: list[float] = []
        self.starts: list[int] = []
        self.idx: list[np.ndarray] = []
        self.val: list[np.ndarray] = []
        self.nnz = 0

    def add(self, idx: np.ndarray, val: np.ndarray, lo: float, up: float) -> None:
        keep = val != 0
        self.starts.append(self.nnz)
        self.idx.append(idx[keep].astype(np.int32))
        self.val.append(val[keep].astype(np.float64))
        self.nnz += int(keep.sum())
        self.lo.append(lo)
        self.up.append(up)

    def push(self, h) -> None:
        if self.lo:
            h.addRows(len(self.lo), np.array(self.lo), np.array(self.up), self.nnz, np.array(self.starts, np.int32),
                      np.concatenate(self.idx), np.concatenate(self.val))


def _linear_row(enc: _Encoding, blocks: dict[int, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.concatenate([enc.offsets[t] + np.arange(enc.sizes[t]) for t in blocks])
    val = np.concatenate([blocks[t][k] for t in blocks])
    return idx, val


def _build(enc: _Encoding, bounds: list, x_box: tuple[np.ndarray, np.ndarray], y: int, options: dict | None):
    import highspy

    h = highspy.Highs()
    for k, v in {"output_flag": False, "threads": 1, **(options or {})}.items():
        h.setOptionValue(k, v)
    n_var = sum(enc.sizes.values())
    lo, up = np.zeros(n_var), np.zeros(n_var)
    lo[:enc.sizes[0]], up[:enc.sizes[0]] = x_box
    rows, binaries = _Rows(), []
    unstable_rows = []
    for r, blocks, bias in enc.relus:
        pl, pu = (b.reshape(-1).numpy() for b in bounds[enc.graph.nodes[r].inputs[0]])
        off = enc.offsets[r]
        for k in range(len(bias)):
            if pu[k] <= 0:
                continue  # inactive: a = 0 (bounds stay 0)
            idx, val = _linear_row(enc, blocks, k)
            idx, val = np.append(idx, off + k), np.append(-val, 1.0)  # a - z_linear
            if pl[k] >= 0:
                lo[off + k], up[off + k] = pl[k], pu[k]
                rows.add(idx, val, bias[k], bias[k])
            else:
                lo[off + k], up[off + k] = 0.0, pu[k]
                rows.add(idx, val, bias[k], np.inf)  # a >= z
                unstable_rows.append((idx, val, bias[k], pl[k], pu[k], off + k))
    n_bin = len(unstable_rows)
    h.addVars(n_var + n_bin, np.concatenate([lo, np.zeros(n_bin)]), np.concatenate([up, np.ones(n_bin)]))
    for b, (idx, val, bk, lk, uk, a) in enumerate(unstable_rows):
        d = n_var + b
        rows.add(np.append(idx, d), np.append(val, -lk), -np.inf, bk - lk)  # a <= z - l (1 - d)
        rows.add(np.array([a, d]), np.array([1.0, -uk]), -np.inf, 0.0)  # a <= u d
        binaries.append(d)
    rows.push(h)
    if binaries:
        h.changeColsIntegrality(n_bin, np.array(binaries, np.int32),
                                np.array([highspy.HighsVarType.kInteger] * n_bin))
    out_blocks, out_bias = enc.out
    iy, vy = _linear_row(enc, out_blocks, y)
    margins = [(iy, vy - _linear_row(enc, out_blocks, j)[1]) for j in range(len(out_bias))]
    return h, margins, out_bias[y] - out_bias, n_bin


def _solve(h, margin: tuple[np.ndarray, np.ndarray], bias: float, left: float, tol: float, slack: float,
           n_in: int) -> Verdict:
    """Minimise one margin ``f_y - f_j`` (its linear part ``margin`` plus ``bias``) over the encoding, stopping
    as soon as the search proves it > ``tol`` (HiGHS's ``objective_bound`` prunes every node whose bound is
    above; all pruned: robust) or finds a point with margin < ``-slack`` (``objective_target``)."""
    import highspy

    st = highspy.HighsModelStatus
    n = h.getNumCol()
    h.changeColsCost(n, np.arange(n, dtype=np.int32), np.zeros(n))
    idx, val = margin
    h.changeColsCost(len(idx), idx.astype(np.int32), val)
    h.setOptionValue("objective_bound", tol - bias)
    h.setOptionValue("objective_target", -slack - bias)
    h.setOptionValue("time_limit", float(left))
    h.run()
    status = h.getModelStatus()
    if status in (st.kInfeasible, st.kObjectiveBound):
        return Verdict("robust", 0.0)
    if status == st.kTimeLimit:
        return Verdict("timeout", 0.0)
    if status not in (st.kOptimal, st.kObjectiveTarget):
        return Verdict("unknown", 0.0)
    value = h.getInfo().objective_function_value + bias
    if value > tol:
        return Verdict("robust", 0.0)
    if value > -slack:
        return Verdict("unknown", 0.0)
    return Verdict("counterexample", 0.0, point=np.array(h.getSolution().col_value[:n_in]))


def _in_ball(p: np.ndarray, x: torch.Tensor, eps: float) -> torch.Tensor:
    """The solver's point as float32 pixels, clipped into the ball around ``x`` and the pixel box."""
    p32 = torch.from_numpy(p).float().reshape(x.shape)
    return torch.minimum(torch.maximum(p32, x - eps), x + eps).clamp(0.0, 1.0)


def verify(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, time_limit: float = 10.0,
           tol: float = 1e-6, margin_slack: float = 1e-4, options: dict | None = None, log=None) -> list[Verdict]:
    """Exact verification of ``model`` (plain ReLU network) on images ``x`` (N, C, H, W, pixels in [0, 1]),
    labels ``y``, L-inf budget ``eps``; ``time_limit`` seconds per image (bounds, encoding and solves);
    ``options``: HiGHS options (e.g. ``{"output_flag": True}`` for the solver's log)."""
    try:
        import highspy  # noqa: F401
    except ImportError:
        raise BenchError("exact verification needs HiGHS: pip install highspy") from None
    model = model.eval()
    enc = encode(model, tuple(x.shape[1:]))
    out = []
    for i in range(len(x)):
        t0 = time.perf_counter()
        xi, yi = x[i:i + 1].float(), int(y[i])
        with torch.no_grad():
            pred = int(model(xi).argmax(1))
        if pred != yi:
            out.append(Verdict("counterexample", time.perf_counter() - t0, pred, xi[0].numpy()))
            continue
        with torch.no_grad():
            bounds, shapes = propagate(enc.graph, input_box(xi.double(), eps), refine=True)
            c = spec_matrix(torch.tensor([yi]), shapes[-1][0], torch.float64)
            last = len(enc.graph.nodes) - 1
            lb = torch.maximum(lower_bound(enc.graph, last, c, bounds, shapes, True),
                               lower_bound(enc.graph, last, c, bounds, shapes, False))[0].numpy()
        targets = [int(j) for j in np.argsort(lb) if j != yi and lb[j] <= 0]
        if not targets:
            out.append(Verdict("robust", time.perf_counter() - t0))
            continue
        box = tuple(b.reshape(-1).numpy() for b in input_box(xi.double(), eps))
        h, margins, bm, n_bin = _build(enc, bounds, box, yi, options)
        verdict, solves = Verdict("robust", 0.0, binaries=n_bin), 0
        for j in targets:
            left = time_limit - (time.perf_counter() - t0)
            verdict = _solve(h, margins[j], float(bm[j]), left, tol, margin_slack, enc.sizes[0]) if left > 0 else \
                Verdict("timeout", 0.0)
            solves += left > 0
            verdict.target, verdict.binaries, verdict.solves = j, n_bin, solves
            if verdict.status == "counterexample":
                p = _in_ball(verdict.point, xi, eps)
                with torch.no_grad():
                    if int(model(p).argmax(1)) == yi:  # within float tolerance of the boundary
                        verdict.status, verdict.point = "unknown", None
                    else:
                        verdict.point = p[0].numpy()
            if verdict.status != "robust":
                break
            verdict.target = None
        verdict.seconds = time.perf_counter() - t0
        out.append(verdict)
        if log:
            log(f"image {i}: {verdict.status} ({verdict.binaries} binaries, {verdict.seconds:.2f}s)")
    return out
