"""Inference-only model transforms: BatchNorm folded into the preceding convolution, channels-last weights.

:func:`optimize_for_inference` returns a copy of an ``eval()``-mode model that computes the same function
(up to float rounding: max |logit difference| ~1e-6 on the zoo's deterministic models) with fewer and
faster operations. Gradients with respect to the input are those of the same function, so attacks run on
it as on the original; stochastic layers are untouched (same random variables, same distributions).

What it does, and what it measured (CPU, 1 thread, CPU time per image, batch 256; ``bench speed``'s
inference section has the current figures):
  * **BN folding**: an eval-mode ``BatchNorm2d`` that directly follows a plain ``nn.Conv2d`` (nothing else
    reads the conv's output) becomes the conv's scale and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``)
    and is replaced by ``nn.Identity``. Patterns: consecutive children of an ``nn.Sequential`` (the small
    CNN's conv-BN-act), and the ``conv1 -> bn2`` pair of the pre-activation blocks (:func:`_fold_pairs`).
    Layers with their own forward (PNI, IBP convs) are left alone. The BN before each activation at a
    block's input follows a residual sum, not a conv, and stays. Forward+input-gradient: small CNN
    1.90 -> 1.35 ms/image, WRN-34-1 LWTA 6.0 -> 5.3 ms/image.
  * **channels-last** (CPU default): 4-d parameters in NHWC, so oneDNN's convolutions run without layout
    reorders. On top of folding: small CNN forward 0.72 -> 0.49, forward+gradient 1.35 -> 1.14 ms/image;
    WRN-34-1 forward 2.94 -> 2.63, forward+gradient 5.3 -> 4.7 ms/image; no gain at batch 1.
  * not used: ``torch.compile`` (inductor, freezing, static shapes) took 109 s to compile WRN-34-1 for
    batch 1 and 85 s for batch 256 on the shared 2-core box, and its code ran slower (10.0 and 10.4
    ms/image CPU against 6.1 and 3.1 eager); batch-1 convolutions stay on ATen's native kernel (oneDNN
    was no faster there: ~90 us per 3x3 conv either way).
  * **TorchScript trace + freeze** (:func:`trace_for_inference`, inference only): the optimised copy run
    as one frozen graph, without Python's per-module and per-operation overhead, which at batch 1 is a
    quarter of the time (WRN-34-1 LWTA: ~360 small operations per image). Measured here (quiet 2-core box,
    median wall ms/image): batch 1, 1 thread 5.95 -> 4.37, 2 threads 4.76 -> 3.22; batch 256, 2 threads
    2.01 -> 1.73. ``torch.jit.optimize_for_inference`` on top (oneDNN layouts) was slower (5.7 at batch 1:
    layout conversions around every LWTA layer).
  * **fused LWTA kernel** (``trace_for_inference(..., fused=True)``, :mod:`bench.nets.lwta_ext`): each U = 2
    LWTA layer as one vectorised C++ operation on the same uniforms instead of seven ATen operations on
    strided views (with LWTA replaced by the identity the traced WRN-34-1 takes 2.56 ms at batch 1, one
    thread: the layers themselves cost 1.7 ms, of which 0.46 ms is drawing random numbers).

Note on stochastic layers: ``rand_like`` fills a channels-last tensor in memory order, so under the same
seed the channels-last copy draws the same random numbers for different units than the original model
(same distributions, different draws); the traced copy draws exactly what the channels-last copy draws.

The copy refuses to run in training mode (its BN statistics are gone): train the original model.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _fold_pairs() -> dict[type, tuple[tuple[str, str], ...]]:
    """Block classes -> ``(conv attribute, bn attribute)`` pairs whose forward is ``bn(conv(.))`` with
    the conv's output read by nothing else."""
    from bench.nets.preact_resnet import PreActBlock
    from bench.nets.slwta_published import PublishedBlock
    from bench.nets.wideresnet import WideBlock

    return {WideBlock: (("conv1", "bn2"),), PublishedBlock: (("conv1", "bn2"),),
            PreActBlock: (("conv1", "bn2"),)}


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
            and bn.running_mean is not None and conv.out_channels == bn.num_features)


def fold_batchnorm(model: nn.Module) -> int:
    """In place: fold every foldable eval-mode BatchNorm2d into its conv (module docstring); returns how
    many were folded. ``model`` must be in eval mode."""
    if model.training:
        raise ValueError("fold_batchnorm needs an eval() model (it uses the BN running statistics)")
    pairs = _fold_pairs()
    folded = 0
    for m in model.modules():
        for conv_name, bn_name in pairs.get(type(m), ()):
            conv, bn = getattr(m, conv_name), getattr(m, bn_name)
            if _foldable(conv, bn):
                setattr(m, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(m, bn_name, nn.Identity())
                folded += 1
        if isinstance(m, nn.Sequential):
            children = list(m)
            for i in range(len(children) - 1):
                if _foldable(children[i], children[i + 1]):
                    m[i] = fuse_conv_bn_eval(children[i], children[i + 1])
                    m[i + 1] = nn.Identity()
                    children[i + 1] = m[i + 1]
                    folded += 1
    return folded


def _refuse_training(module: nn.Module, args: tuple) -> None:
    if module.training:
        raise RuntimeError("this model was optimised for inference (BatchNorm folded into the convs): "
                           "it cannot be trained; train the original model")


def optimize_for_inference(model: nn.Module, channels_last: bool | None = None,
                           fold_bn: bool = True) -> nn.Module:
    """A copy of ``model`` for inference and attacks: eval mode, parameters frozen, BatchNorm folded
    (``fold_bn``), channels-last weights (``channels_last``; None = on a CPU). ``model`` is not modified.
    The copy keeps the original's stochastic layers and raises if run in training mode."""
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
    frozen: the fastest form for plain predictions, at batch 1 especially (module docstring).

    ``fused``: the LWTA layers run the fused CPU kernel (:mod:`bench.nets.lwta_ext`, compiled on first use;
    ``RuntimeError`` saying why where it cannot be built): the same random draws, one operation per layer.

    Inference only: tracing records the current branch of every Python ``if``, so the traced graph is the
    eval-mode, non-surrogate forward pass; training, surrogate (adaptive-attack) mode and hooks are gone.
    Stochastic layers stay stochastic (their random draws are recorded as operations, fresh at each call).
    Attacks use :func:`optimize_for_inference` or the model itself, never this."""
    from bench.nets.common import StochasticLayer

    if any(isinstance(m, StochasticLayer) and m.in_surrogate for m in model.modules()):
        raise ValueError("trace_for_inference: the model is in surrogate mode; trace the inference model")
    fast = model if getattr(model, "inference_optimized", False) else optimize_for_inference(model)
    if fused:
        from bench.nets.lwta import use_fused_kernel

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
