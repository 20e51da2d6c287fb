"""The operations a bounded graph is made of, each with three faces: the forward pass, interval propagation
(IBP, in centre / radius form) and the backward (transposed) map of CROWN. Tensors carry the batch first;
a CROWN coefficient tensor ``A`` has shape ``(batch, specs, *node_shape)``.

Affine operations map ``x -> L x + b``; ``backward(A)`` returns ``A L`` (one per input) and the bias term
``A b`` of shape ``(batch, specs)``. :class:`ReLU` and :class:`MaxPool2d` are the non-linear operations;
CROWN relaxes them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Interval = tuple[torch.Tensor, torch.Tensor]


def _flat2(a: torch.Tensor) -> torch.Tensor:
    """``(B, S, *shape)`` -> ``(B * S, *shape)``."""
    return a.reshape(-1, *a.shape[2:])


def _output_padding(size_in, size_out, stride, padding, dilation, kernel) -> tuple[int, ...]:
    """The ``output_padding`` that makes a transposed convolution return the forward input's size."""
    return tuple(i - ((o - 1) * s - 2 * p + d * (k - 1) + 1)
                 for i, o, s, p, d, k in zip(size_in, size_out, stride, padding, dilation, kernel, strict=True))


class Op:
    """One node's operation. ``kind`` names it in refusals and reports."""

    kind = "op"
    affine = True
    mixing = True  # an affine map that mixes coordinates (conv, linear, pooling): IBP is not exact after two

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def interval(self, *bounds: Interval) -> Interval:
        raise NotImplementedError

    def backward(self, a: torch.Tensor, in_shapes: list[tuple[int, ...]]) -> tuple[list[torch.Tensor],
                                                                                   torch.Tensor | None]:
        """``A`` (batch, specs, *out_shape) -> ``A L`` per input and the bias ``A b`` (batch, specs) or None;
        ``in_shapes``: the inputs' shapes without the batch."""
        raise NotImplementedError


class Input(Op):
    kind, mixing = "input", False


class ReLU(Op):
    kind, affine, mixing = "relu", False, False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)

    def interval(self, b: Interval) -> Interval:
        return F.relu(b[0]), F.relu(b[1])


class Conv2d(Op):
    kind = "Conv2d"

    def __init__(self, m: torch.nn.Conv2d):
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)

    def interval(self, b: Interval) -> Interval:
        m = self.m
        mid, rad = (b[1] + b[0]) / 2, (b[1] - b[0]) / 2
        mid = F.conv2d(mid, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
        rad = F.conv2d(rad, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups)
        return mid - rad, mid + rad

    def backward(self, a, in_shapes):
        m = self.m
        b, s = a.shape[:2]
        ho, wo = a.shape[-2:]
        hi, wi = in_shapes[0][-2:]
        k = m.weight.shape[-2:]
        op = _output_padding((hi, wi), (ho, wo), m.stride, m.padding, m.dilation, k)
        out = F.conv_transpose2d(_flat2(a), m.weight, None, m.stride, m.padding, op, m.groups, m.dilation)
        bias = None if m.bias is None else torch.einsum("bschw,c->bs", a, m.bias)
        return [out.reshape(b, s, *out.shape[1:])], bias


class Linear(Op):
    kind = "Linear"

    def __init__(self, m: torch.nn.Linear):
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)

    def interval(self, b: Interval) -> Interval:
        mid, rad = (b[1] + b[0]) / 2, (b[1] - b[0]) / 2
        mid = F.linear(mid, self.m.weight, self.m.bias)
        rad = F.linear(rad, self.m.weight.abs())
        return mid - rad, mid + rad

    def backward(self, a, in_shapes):
        bias = None if self.m.bias is None else a @ self.m.bias
        return [a @ self.m.weight], bias


class Scale(Op):
    """Element-wise ``x * scale + shift`` with per-channel (or scalar) tensors broadcast to the node's shape:
    BatchNorm in eval mode, the card's input normalisation, multiplication by a constant."""

    kind, mixing = "scale", False

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, kind: str = "scale"):
        self.scale, self.shift, self.kind = scale, shift, kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift

    def interval(self, b: Interval) -> Interval:
        mid, rad = (b[1] + b[0]) / 2, (b[1] - b[0]) / 2
        mid, rad = mid * self.scale + self.shift, rad * self.scale.abs()
        return mid - rad, mid + rad

    def backward(self, a, in_shapes):
        shift = torch.broadcast_to(self.shift, in_shapes[0])
        return [a * self.scale], (a * shift).flatten(2).sum(-1)


class Flatten(Op):
    kind, mixing = "Flatten", False

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, self.start_dim, self.end_dim)

    def interval(self, b: Interval) -> Interval:
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, a, in_shapes):
        return [a.reshape(*a.shape[:2], *in_shapes[0])], None


class Identity(Op):
    kind, mixing = "Identity", False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def interval(self, b: Interval) -> Interval:
        return b

    def backward(self, a, in_shapes):
        return [a], None


class AvgPool2d(Op):
    """Average pooling (zero padding counted in the divisor), a depthwise convolution with a uniform kernel."""

    kind = "AvgPool2d"

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel, self.stride, self.padding, count_include_pad=True)

    def interval(self, b: Interval) -> Interval:
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, a, in_shapes):
        b, s, c, ho, wo = a.shape
        hi, wi = in_shapes[0][-2:]
        w = a.new_full((c, 1, *self.kernel), 1.0 / (self.kernel[0] * self.kernel[1]))
        op = _output_padding((hi, wi), (ho, wo), self.stride, self.padding, (1, 1), self.kernel)
        out = F.conv_transpose2d(_flat2(a), w, None, self.stride, self.padding, op, groups=c)
        return [out.reshape(b, s, *out.shape[1:])], None


class Add(Op):
    """The sum of two nodes (a residual connection)."""

    kind, mixing = "add", True

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y

    def interval(self, b1: Interval, b2: Interval) -> Interval:
        return b1[0] + b2[0], b1[1] + b2[1]

    def backward(self, a, in_shapes):
        return [a, a], None


class MaxPool2d(Op):
    """Max pooling: monotone, so its box is the pooled box; not affine, so CROWN relaxes it like a ReLU
    (:func:`maxpool_relaxation`)."""

    kind, affine, mixing = "MaxPool2d", False, False

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel, self.stride, self.padding)

    def interval(self, b: Interval) -> Interval:
        return self.forward(b[0]), self.forward(b[1])


def maxpool_relaxation(op: MaxPool2d, a: torch.Tensor, pre: Interval) -> tuple[torch.Tensor, torch.Tensor]:
    """CROWN's step back through max pooling for coefficients ``a`` (batch, specs, C, Ho, Wo) whose input
    lies in ``pre``: below, ``max(z) >= z_k`` with ``k`` the window's largest lower bound; above,
    ``max(z) <= max(u)`` (a constant). Returns the input coefficients and the bias (batch, specs)."""
    lo, up = pre
    _, idx = F.max_pool2d(lo, op.kernel, op.stride, op.padding, return_indices=True)
    top = op.forward(up)
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    bias = (neg * top.unsqueeze(1)).flatten(2).sum(-1)
    b, s, c = a.shape[:3]
    out = a.new_zeros(b, s, c, lo.shape[-2] * lo.shape[-1])
    out.scatter_add_(3, idx.flatten(2).unsqueeze(1).expand(b, s, c, -1), pos.flatten(3))
    return out.reshape(b, s, *lo.shape[1:]), bias
