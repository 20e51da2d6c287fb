"""CROWN (Zhang et al. 2018, "Efficient neural network robustness certification with general activation
functions"): each ReLU between its pre-activation bounds ``l < 0 < u`` is bounded above by the chord
``u (z - l) / (u - l)`` and below by ``a z`` with the adaptive slope ``a = 1`` if ``u > -l`` else 0; carrying
the specification ``C`` back through the network with these lines (upper line where the coefficient is
negative, lower line where positive) gives a linear lower bound of ``C f`` in the input, minimised in closed
form over the pixel box. Pre-activation bounds of every ReLU come from the same backward pass started at
that layer (unstable neurons only), intersected with IBP's.

``crown-ibp`` (Zhang et al. 2020) keeps IBP's intermediate boxes and runs the backward pass only from the
margins: cheaper and looser, the bound of CROWN-IBP training.
"""

from __future__ import annotations

import torch

from honestbench.certify.bounds import margin_bounds
from honestbench.certify.graph import Graph
from honestbench.certify.registry import register_bound


@register_bound("crown")
def crown_margins(graph: Graph, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """CROWN lower bounds of the margins (N, classes), +inf at column ``y``."""
    return margin_bounds(graph, x, y, eps, refine=True, relax_final=True)


@register_bound("crown-ibp")
def crown_ibp_margins(graph: Graph, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """CROWN-IBP lower bounds of the margins (N, classes), +inf at column ``y``."""
    return margin_bounds(graph, x, y, eps, refine=False, relax_final=True)
