"""Interval bound propagation (Gowal et al. 2018, "On the effectiveness of interval bound propagation for
training verifiably robust models"): every node's box from its inputs' boxes, in centre / radius form; the
margins ``f_y - f_j`` are bounded through the trailing affine layers as one map (the last layer "elided" into
the specification), which is never looser than boxing the logits. Differentiable: the certified training
loss uses it."""

from __future__ import annotations

import torch

from honestbench.certify.bounds import Interval, input_box, margin_bounds, propagate
from honestbench.certify.graph import Graph
from honestbench.certify.registry import register_bound


def interval_bounds(graph: Graph, x: torch.Tensor, eps: float) -> list[Interval]:
    """IBP boxes (lower, upper) of every node over the clipped L-inf ball (the last: the logits)."""
    return propagate(graph, input_box(x, eps))[0]


@register_bound("ibp")
def ibp_margins(graph: Graph, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """IBP lower bounds of the margins (N, classes), +inf at column ``y``."""
    return margin_bounds(graph, x, y, eps, refine=False, relax_final=False)
