"""Inference-only forms of a model, each computing the same function (up to float rounding) with fewer,
faster operations; stochastic layers keep their random variables and distributions.

* :func:`optimize_for_inference` (:mod:`.inference`): a frozen copy with BatchNorm folded into the
  preceding convolutions (:func:`fold_batchnorm`, :mod:`.folding`) and channels-last weights on a CPU;
  attacks run on it as on the original (same input gradients);
* :func:`trace_for_inference`: that copy as one frozen TorchScript graph, for plain predictions only;
* :mod:`.lwta_ext`: the optional fused C++ kernel of U = 2 LWTA inference (``csrc/lwta_pair.cpp``),
  compiled on first use, switched on per model by :func:`use_fused_kernel`.
"""

from honestbench.nets.fast import lwta_ext
from honestbench.nets.fast.folding import fold_batchnorm
from honestbench.nets.fast.inference import INFERENCE_COPY, optimize_for_inference, trace_for_inference
from honestbench.nets.fast.lwta_ext import use_fused_kernel

__all__ = ["INFERENCE_COPY", "fold_batchnorm", "lwta_ext", "optimize_for_inference", "trace_for_inference",
           "use_fused_kernel"]
