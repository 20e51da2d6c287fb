"""A model as a graph the bound methods can walk: :func:`build_graph` traces it with ``torch.fx`` and maps
every step to an operation of :mod:`honestbench.certify.ops`, or refuses the model with one line naming the
first step it cannot bound (:class:`UnsupportedLayer`). Never a wrong bound: modules are matched by exact
type, so a subclass that changes the forward pass (a noisy conv, a stochastic activation) is refused.

Supported: Conv2d (zero padding), Linear, ReLU, BatchNorm1d/2d in eval mode, Flatten, AvgPool2d /
AdaptiveAvgPool2d and MaxPool2d / AdaptiveMaxPool2d (uniform windows), residual additions of two tensors,
multiplication / division by a constant, Identity / Dropout in eval mode, and the card's input normalisation
(:class:`Normalize`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from honestbench.certify import ops
from honestbench.core.errors import BenchError
from honestbench.nets.layers.common import Normalize
from honestbench.nets.layers.common import ReLU as ZooReLU


class UnsupportedLayer(BenchError):
    """The model has a step the bound methods cannot bound soundly."""


_LEAVES = (nn.Conv2d, nn.Linear, nn.ReLU, ZooReLU, nn.BatchNorm1d, nn.BatchNorm2d, nn.Flatten, nn.AvgPool2d,
           nn.AdaptiveAvgPool2d, nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.Identity, nn.Dropout, Normalize)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m) in _LEAVES or super().is_leaf_module(m, qualname)


@dataclass
class Node:
    """One step: its operation, the indices of its input nodes and its name in the model."""

    name: str
    op: ops.Op
    inputs: tuple[int, ...] = ()


@dataclass
class Graph:
    """Nodes in topological order; node 0 is the input, the last node the output (logits)."""

    nodes: list[Node]
    consumers: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.consumers = [[] for _ in self.nodes]
        for i, n in enumerate(self.nodes):
            for j in n.inputs:
                self.consumers[j].append(i)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every node's value on ``x`` (pixels in [0, 1])."""
        vals: list[torch.Tensor] = [x]
        for n in self.nodes[1:]:
            vals.append(n.op.forward(*(vals[j] for j in n.inputs)))
        return vals

    def relu_inputs(self) -> set[int]:
        """Indices of the nodes that feed a ReLU (the pre-activations)."""
        return {n.inputs[0] for n in self.nodes if isinstance(n.op, ops.ReLU)}


def _refuse(what: str) -> UnsupportedLayer:
    return UnsupportedLayer(f"cannot bound {what}: the certify layer supports Conv2d, Linear, ReLU, BatchNorm "
                            "(eval), Flatten, average and max pooling, residual additions and input normalisation")


def _module_op(m: nn.Module, name: str) -> ops.Op:
    t = type(m)
    where = f"layer {name!r} ({t.__name__})"
    if t is nn.Conv2d:
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise _refuse(f"{where} with padding {m.padding!r} / mode {m.padding_mode!r}")
        return ops.Conv2d(m)
    if t is nn.Linear:
        return ops.Linear(m)
    if t in (nn.ReLU, ZooReLU):
        return ops.ReLU()
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        if m.training or m.running_mean is None:
            raise _refuse(f"{where} in training mode or without running statistics")
        scale = (m.weight if m.affine else 1.0) / torch.sqrt(m.running_var + m.eps)
        shift = (m.bias if m.affine else 0.0) - m.running_mean * scale
        view = (-1, 1, 1) if t is nn.BatchNorm2d else (-1,)
        return ops.Scale(scale.view(view), shift.view(view), "BatchNorm")
    if t is Normalize:
        return ops.Scale(1.0 / m.std[0], -m.mean[0] / m.std[0], "Normalize")
    if t is nn.Flatten:
        return ops.Flatten(m.start_dim, m.end_dim)
    if t is nn.AvgPool2d:
        if m.ceil_mode or m.divisor_override or (not m.count_include_pad and m.padding):
            raise _refuse(f"{where} with ceil_mode / divisor_override / count_include_pad=False")
        pair = nn.modules.utils._pair
        return ops.AvgPool2d(pair(m.kernel_size), pair(m.stride or m.kernel_size), pair(m.padding))
    if t is nn.AdaptiveAvgPool2d:
        return _AdaptiveAvg(m.output_size, where)
    if t is nn.MaxPool2d:
        if m.ceil_mode or m.return_indices or m.dilation not in (1, (1, 1)):
            raise _refuse(f"{where} with ceil_mode / return_indices / dilation")
        pair = nn.modules.utils._pair
        return ops.MaxPool2d(pair(m.kernel_size), pair(m.stride or m.kernel_size), pair(m.padding))
    if t is nn.AdaptiveMaxPool2d and not m.return_indices:
        return _AdaptiveMax(m.output_size, where)
    if t is nn.Identity or (t is nn.Dropout and not m.training):
        return ops.Identity()
    raise _refuse(where)


class _Adaptive:
    """An adaptive pooling step whose windows are uniform (input size a multiple of the output size): the
    pooling op of its base class with kernel = stride = input size // output size, fixed per input shape."""

    def __init__(self, size, where: str):
        self.size, self.where = nn.modules.utils._pair(size), where
        super().__init__((1, 1), (1, 1), (0, 0))

    def _fix(self, shape: tuple[int, ...]) -> None:
        out = [s if o is None else o for s, o in zip(shape[-2:], self.size, strict=True)]
        if any(s % o for s, o in zip(shape[-2:], out, strict=True)):
            raise _refuse(f"{self.where}: input {tuple(shape[-2:])} is not a multiple of output {tuple(out)}")
        self.kernel = self.stride = tuple(s // o for s, o in zip(shape[-2:], out, strict=True))

    def forward(self, x):
        self._fix(x.shape)
        return super().forward(x)

    def interval(self, b):
        self._fix(b[0].shape)
        return super().interval(b)


class _AdaptiveAvg(_Adaptive, ops.AvgPool2d):
    """AdaptiveAvgPool2d with uniform windows."""


class _AdaptiveMax(_Adaptive, ops.MaxPool2d):
    """AdaptiveMaxPool2d with uniform windows."""


def _const(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def build_graph(model: nn.Module) -> Graph:
    """``model`` (pixels in [0, 1] -> logits) as a :class:`Graph`; :class:`UnsupportedLayer` when some step
    cannot be bounded (named), or when the model cannot be traced."""
    try:
        traced = _Tracer().trace(model)
    except Exception as e:
        raise UnsupportedLayer(f"cannot bound {type(model).__name__}: torch.fx cannot trace it "
                               f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    modules = dict(model.named_modules())
    nodes: list[Node] = []
    index: dict[fx.Node, int] = {}
    for n in traced.nodes:
        if n.op == "placeholder":
            if nodes:
                raise UnsupportedLayer("cannot bound a model with more than one input")
            index[n] = 0
            nodes.append(Node("input", ops.Input()))
        elif n.op == "output":
            out = n.args[0]
            if not isinstance(out, fx.Node) or index.get(out) != len(nodes) - 1:
                raise UnsupportedLayer("cannot bound a model whose output is not its last step")
        else:
            op, ins = _node_op(n, modules, index)
            index[n] = len(nodes)
            nodes.append(Node(str(n.target) if n.op == "call_module" else n.name, op, ins))
    return Graph(nodes)


def _node_op(n: fx.Node, modules: dict[str, nn.Module], index: dict[fx.Node, int]) -> tuple[ops.Op, tuple]:
    tensor_args = [a for a in n.args if isinstance(a, fx.Node)]
    if any(a not in index for a in tensor_args) or n.op == "get_attr":
        raise _refuse(f"step {n.name!r} (it reads a parameter or buffer directly)")
    ins = tuple(index[a] for a in tensor_args)
    if n.op == "call_module":
        return _module_op(modules[str(n.target)], str(n.target)), ins
    fn, args = n.target, n.args
    if fn in (F.relu, torch.relu, "relu"):
        return ops.ReLU(), ins
    if fn in (torch.flatten, "flatten"):
        return ops.Flatten(*(args[1:] or (1,))), ins
    if fn in (operator.add, torch.add, "add") and len(args) == 2 and len(ins) == 2 and not n.kwargs:
        return ops.Add(), ins
    if fn in (operator.add, operator.sub, operator.mul, operator.truediv, torch.mul) and len(args) == 2 \
            and len(ins) == 1 and args[0] is tensor_args[0] and _const(args[1]):
        c = float(args[1])
        scale, shift = {operator.add: (1.0, c), operator.sub: (1.0, -c), operator.mul: (c, 0.0),
                        torch.mul: (c, 0.0), operator.truediv: (1.0 / c if c else float("nan"), 0.0)}[fn]
        return ops.Scale(torch.tensor(scale), torch.tensor(shift), f"{getattr(fn, '__name__', fn)} {c:g}"), ins
    if fn in (operator.mul, torch.mul, operator.add) and len(ins) == 1 and _const(args[0]):
        c = float(args[0])
        return (ops.Scale(torch.tensor(c), torch.tensor(0.0), f"mul {c:g}") if fn is not operator.add
                else ops.Scale(torch.tensor(1.0), torch.tensor(c), f"add {c:g}")), ins
    raise _refuse(f"step {n.name!r} ({getattr(fn, '__name__', fn)})")
