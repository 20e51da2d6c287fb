"""bench: adversarial-robustness benchmark harness for image classifiers.

Conventions (see docs/methods.md in the shared docs): images are float32 NCHW tensors with pixels in
[0, 1]; every budget (eps, alpha) is in the same [0, 1] units; normalisation lives inside the model.
"""

from bench.core import __version__

__all__ = ["__version__"]
