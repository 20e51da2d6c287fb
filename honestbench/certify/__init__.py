"""Certified lower bounds and exact robustness on small networks: interval bound propagation (``ibp``),
CROWN (``crown``, ``crown-ibp``) and exact verification by mixed-integer programming
(:mod:`honestbench.certify.milp`). Pixels in [0, 1]; ``eps`` an L-inf radius in the same units, the ball
clipped to the pixel box.

An image is *certified* at ``eps`` when the lower bound of every margin ``f_y - f_j`` (j != y) is > 0: no
point of the ball changes the prediction away from the true label. A model with a step the methods cannot
bound is refused with one line (:class:`UnsupportedLayer`), never given a wrong bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from honestbench.certify.bounds import input_box, spec_matrix
from honestbench.certify.graph import Graph, UnsupportedLayer, build_graph
from honestbench.certify.registry import BOUND_METHODS, register_bound


@dataclass
class Certificate:
    """Per-image outcome of one bound method: ``margin_lower`` (N, classes; +inf at the label's column),
    ``certified`` (every margin bound > 0), ``correct`` (clean prediction right); ``seconds`` wall time."""

    method: str
    eps: float
    margin_lower: np.ndarray
    certified: np.ndarray
    correct: np.ndarray
    seconds: float

    @property
    def certified_accuracy(self) -> float:
        return float(self.certified.mean()) if len(self.certified) else 0.0


def bound_methods() -> list[str]:
    """Registered bound method names."""
    return BOUND_METHODS.names()


def certify(model: nn.Module | Graph, x: torch.Tensor, y: torch.Tensor, eps: float, method: str = "crown",
            batch_size: int = 64) -> Certificate:
    """Bound the margins of ``model`` (eval mode) on images ``x`` (N, C, H, W, pixels in [0, 1]) with labels
    ``y`` under the L-inf budget ``eps``."""
    fn = BOUND_METHODS.get(method)
    if isinstance(model, nn.Module):
        model.eval()
    graph = model if isinstance(model, Graph) else build_graph(model)
    t0 = time.perf_counter()
    lbs, correct = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            correct.append((graph.forward(xb)[-1].argmax(1) == yb).cpu())
            lbs.append(fn(graph, xb, yb, float(eps)).cpu())
    lb = torch.cat(lbs).double().numpy() if lbs else np.zeros((0, 0))
    return Certificate(method, float(eps), lb, (lb > 0).all(1) if len(lb) else np.zeros(0, bool),
                       torch.cat(correct).numpy() if correct else np.zeros(0, bool), time.perf_counter() - t0)


__all__ = ["BOUND_METHODS", "Certificate", "Graph", "UnsupportedLayer", "bound_methods", "build_graph",
           "certify", "input_box", "register_bound", "spec_matrix"]
