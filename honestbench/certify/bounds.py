"""The machinery shared by the bound methods: the input box, the specification matrix of the margins,
interval propagation with optional CROWN refinement of every ReLU's pre-activation, and the backward pass
that turns a linear function of one node into a linear function of earlier nodes (CROWN, Zhang et al. 2018).

Units: pixels in [0, 1]; ``eps`` an L-inf radius in the same units; the box is clipped to [0, 1].
"""

from __future__ import annotations

import torch

from honestbench.certify import ops
from honestbench.certify.graph import Graph

Interval = tuple[torch.Tensor, torch.Tensor]
#: CROWN's refinement handles this many floats of coefficients at once (memory, not accuracy)
CHUNK_FLOATS = 1 << 24


def input_box(x: torch.Tensor, eps: float) -> Interval:
    """The L-inf ball of radius ``eps`` around ``x`` clipped to the pixel box [0, 1]."""
    return (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)


def spec_matrix(y: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``C`` of shape (N, classes, classes): row ``j`` is ``e_y - e_j`` (row ``y`` is zero), so ``C f`` is the
    margin ``f_y - f_j`` of every class."""
    eye = torch.eye(num_classes, dtype=dtype, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def concretize(a: torch.Tensor, box: Interval) -> torch.Tensor:
    """Lower bound of ``A x`` over the box (``A``: (batch, specs, *shape)) -> (batch, specs)."""
    mid, rad = ((box[1] + box[0]) / 2).unsqueeze(1), ((box[1] - box[0]) / 2).unsqueeze(1)
    return ((a * mid).flatten(2).sum(-1) - (a.abs() * rad).flatten(2).sum(-1))


def relu_relaxation(pre: Interval) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CROWN's linear bounds of ``relu(z)`` for ``l <= z <= u``: (lower slope, upper slope, upper intercept).
    Unstable neurons get the chord as upper line and the adaptive lower slope (1 where ``u > -l``, else 0)."""
    lo, up = pre
    active, unstable = lo >= 0, (lo < 0) & (up > 0)
    denom = torch.where(unstable, up - lo, torch.ones_like(up))
    su = torch.where(unstable, up / denom, active.to(up.dtype))
    bu = torch.where(unstable, -lo * su, torch.zeros_like(up))
    sl = torch.where(unstable, (up > -lo).to(up.dtype), active.to(up.dtype))
    return sl, su, bu


def backward(graph: Graph, start: int, a: torch.Tensor, shapes: list[tuple[int, ...]],
             relax: list[Interval | None] | None) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """Carry ``A x_start`` back through the graph to the input: ``sum_t A_t x_t + bias``, a lower bound of
    ``A x_start`` wherever ReLUs are relaxed. ``relax`` (interval per node) relaxes each ReLU with its input's
    bounds; ``relax=None`` stops at ReLU outputs instead (they become terminals ``t``, as the input is).
    ``shapes``: node shapes without the batch."""
    pending: dict[int, torch.Tensor] = {start: a}
    bias = a.new_zeros(a.shape[:2])
    terminals: dict[int, torch.Tensor] = {}
    for i in range(start, -1, -1):
        ai = pending.pop(i, None)
        if ai is None:
            continue
        node = graph.nodes[i]
        if isinstance(node.op, ops.Input) or (not node.op.affine and relax is None):
            terminals[i] = ai
            continue
        if isinstance(node.op, ops.ReLU):
            sl, su, bu = (t.unsqueeze(1) for t in relu_relaxation(relax[node.inputs[0]]))
            pos, neg = ai.clamp(min=0), ai.clamp(max=0)
            bias = bias + (neg * bu).flatten(2).sum(-1)
            outs = [pos * sl + neg * su]
        elif isinstance(node.op, ops.MaxPool2d):
            out, b = ops.maxpool_relaxation(node.op, ai, relax[node.inputs[0]])
            bias, outs = bias + b, [out]
        else:
            outs, b = node.op.backward(ai, [shapes[j] for j in node.inputs])
            if b is not None:
                bias = bias + b
        for j, aj in zip(node.inputs, outs, strict=True):
            pending[j] = pending[j] + aj if j in pending else aj
    return terminals, bias


def lower_bound(graph: Graph, start: int, a: torch.Tensor, bounds: list[Interval | None],
                shapes: list[tuple[int, ...]], relax: bool) -> torch.Tensor:
    """Lower bound of ``A x_start`` (batch, specs): by CROWN (``relax``) or by stopping at the last ReLUs and
    using their interval bounds (elision of the trailing affine layers)."""
    terminals, bias = backward(graph, start, a, shapes, bounds if relax else None)
    for t, at in terminals.items():
        bias = bias + concretize(at, bounds[t])
    return bias


def propagate(graph: Graph, box: Interval, refine: bool = False) -> tuple[list[Interval], list[tuple]]:
    """Interval bounds of every node (IBP); with ``refine`` every ReLU's pre-activation is tightened by CROWN
    (intersected with its interval). Returns the bounds and the node shapes (without the batch)."""
    n = len(graph.nodes)
    bounds: list[Interval | None] = [None] * n
    shapes: list[tuple] = [()] * n
    mixes = [0] * n
    bounds[0], shapes[0] = box, tuple(box[0].shape[1:])
    pre = graph.relu_inputs() if refine else set()
    for i in range(1, n):
        node = graph.nodes[i]
        bounds[i] = node.op.interval(*(bounds[j] for j in node.inputs))
        shapes[i] = tuple(bounds[i][0].shape[1:])
        m = max(mixes[j] for j in node.inputs)
        mixes[i] = 99 if isinstance(node.op, (ops.ReLU, ops.MaxPool2d, ops.Add)) else m + int(node.op.mixing)
        if i in pre and mixes[i] > 1:  # IBP is exact up to the first mixing affine map
            bounds[i] = _refine(graph, i, bounds, shapes)
    return bounds, shapes


def _refine(graph: Graph, i: int, bounds: list, shapes: list) -> Interval:
    """CROWN bounds of node ``i``'s unstable neurons (the stable ones keep their interval bounds). Each
    (image, unstable neuron) pair is one row of the backward pass, so images with few unstable neurons cost
    little; rows are processed in chunks of at most :data:`CHUNK_FLOATS` coefficients."""
    lo, up = bounds[i]
    bsz = lo.shape[0]
    lo_f, up_f = lo.reshape(bsz, -1).clone(), up.reshape(bsz, -1).clone()
    img, neu = ((lo_f < 0) & (up_f > 0)).nonzero(as_tuple=True)
    if len(img) == 0:
        return lo, up
    needed = {0} | {graph.nodes[r].inputs[0] for r in range(i) if not graph.nodes[r].op.affine}
    biggest = max(max(int(torch.tensor(s).prod()) for s in shapes[:i + 1]), 1)
    step = max(1, CHUNK_FLOATS // (2 * biggest))
    for c in range(0, len(img), step):
        ic, nc = img[c:c + step], neu[c:c + step]
        rows = torch.arange(len(ic), device=lo.device)
        a = lo_f.new_zeros(len(ic), 2, lo_f.shape[1])
        a[rows, 0, nc], a[rows, 1, nc] = 1.0, -1.0
        sub = [(b[0][ic], b[1][ic]) if j in needed else None for j, b in enumerate(bounds[:i + 1])]
        lb = lower_bound(graph, i, a.reshape(len(ic), 2, *shapes[i]), sub, shapes, relax=True)
        lo_f[ic, nc] = torch.maximum(lo_f[ic, nc], lb[:, 0])
        up_f[ic, nc] = torch.minimum(up_f[ic, nc], -lb[:, 1])
    return lo_f.reshape(lo.shape), up_f.reshape(up.shape)


def margin_bounds(graph: Graph, x: torch.Tensor, y: torch.Tensor, eps: float, *, refine: bool,
                  relax_final: bool, num_classes: int | None = None) -> torch.Tensor:
    """Lower bounds of ``f_y - f_j`` (N, classes) over the clipped ball; column ``y`` is +inf."""
    bounds, shapes = propagate(graph, input_box(x, eps), refine=refine)
    nc = num_classes or shapes[-1][0]
    c = spec_matrix(y, nc, x.dtype)
    last = len(graph.nodes) - 1
    lb = lower_bound(graph, last, c, bounds, shapes, relax=relax_final)
    if relax_final and refine:  # both bounds are sound: keep the better (CROWN is never looser than IBP)
        lb = torch.maximum(lb, lower_bound(graph, last, c, bounds, shapes, relax=False))
    return lb.scatter(1, y.unsqueeze(1), float("inf"))
