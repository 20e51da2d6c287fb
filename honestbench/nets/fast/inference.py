"""The inference copies of a model: :func:`optimize_for_inference` (for attacks and inference) and
:func:`trace_for_inference` (plain predictions only). Inputs are images with pixels in [0, 1], as for the
model itself.

* **BN folding** (:func:`honestbench.nets.fast.folding.fold_batchnorm`);
* **channels-last** (CPU default): 4-d parameters in NHWC, so oneDNN's convolutions run without layout
  reorders;
* **TorchScript trace + freeze**: the optimised copy as one frozen graph, without Python's per-module and
  per-operation overhead (which dominates at batch 1);
* **fused LWTA kernel** (``fused=True``, :mod:`honestbench.nets.fast.lwta_ext`): each U = 2 LWTA layer as one C++
  operation on the same uniforms.

Stochastic layers: ``rand_like`` fills a channels-last tensor in memory order, so under the same seed the
channels-last copy draws the same random numbers for different units than the original model (same
distributions, different draws); the traced copy draws exactly what the channels-last copy draws.

The copies refuse to run in training mode (their BN statistics are gone): train the original model.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from honestbench.nets.fast.folding import fold_batchnorm
from honestbench.nets.fast.lwta_ext import use_fused_kernel
from honestbench.nets.layers.stochastic import StochasticLayer

#: what the records say of a model attacked as its :func:`optimize_for_inference` copy
INFERENCE_COPY = ("inference copy: BatchNorm folded into the convolutions, channels-last weights (the same "
                  "function up to float32 rounding)")


def _refuse_training(module: nn.Module, args: tuple) -> None:
    if module.training:
        raise RuntimeError("this model was optimised for inference (BatchNorm folded into the convs): "
                           "it cannot be trained; train the original model")


def optimize_for_inference(model: nn.Module, channels_last: bool | None = None,
                           fold_bn: bool = True) -> nn.Module:
    """A copy of ``model`` for inference and attacks: eval mode, parameters frozen, BatchNorm folded
    (``fold_bn``), channels-last weights (``channels_last``; None = on a CPU). ``model`` is not modified.
    The copy keeps the original's stochastic layers and raises if run in training mode. Gradients with
    respect to the input are those of the same function, so attacks run on it as on the original."""
    fast = copy.deepcopy(model).eval()
    if fold_bn:
        fold_batchnorm(fast)
    if channels_last is None:
        p = next(fast.parameters(), None)
        channels_last = p is None or p.device.type == "cpu"
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    fast.register_forward_pre_hook(_refuse_training)
    fast.inference_optimized = True
    return fast


def trace_for_inference(model: nn.Module, example: torch.Tensor, fused: bool = False) -> torch.jit.ScriptModule:
    """:func:`optimize_for_inference` of ``model`` (unless it already is one) traced with TorchScript on
    ``example`` (pixels in [0, 1], any batch size: the graph keeps the batch dimension symbolic) and
    frozen: the fastest form for plain predictions, at batch 1 especially.

    ``fused``: the LWTA layers run the fused CPU kernel (:mod:`honestbench.nets.fast.lwta_ext`, compiled on first
    use; ``RuntimeError`` saying why where it cannot be built): the same random draws, one operation per layer.

    Inference only: tracing records the current branch of every Python ``if``, so the traced graph is the
    eval-mode, non-surrogate forward pass; training, surrogate (adaptive-attack) mode and hooks are gone.
    Stochastic layers stay stochastic (their random draws are recorded as operations, fresh at each call).
    Attacks use :func:`optimize_for_inference` or the model itself, never this."""
    if any(isinstance(m, StochasticLayer) and m.in_surrogate for m in model.modules()):
        raise ValueError("trace_for_inference: the model is in surrogate mode; trace the inference model")
    fast = model if getattr(model, "inference_optimized", False) else optimize_for_inference(model)
    if fused:
        fast = copy.deepcopy(fast) if fast is model else fast  # the caller's model keeps its flags
        use_fused_kernel(fast)
    p = next(fast.parameters(), None)
    if p is not None:
        example = example.to(p.device)
    with warnings.catch_warnings(), torch.no_grad():
        # torch.jit's deprecation notices, and the shape checks read as Python booleans at trace time
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.freeze(torch.jit.trace(fast, example, check_trace=False).eval())
    traced.inference_optimized = True
    return traced
