"""Layers of the zoo's networks: normalisation, the stochastic-layer base class and model-wide surrogate
mode, the shared pre-activation block, and the defence layers (PNI, LWTA, IBP, Gaussian smoothing).

Every module here is imported on import (:func:`honestbench.nets.registry.import_submodules`), so a defence layer
registers itself with :func:`honestbench.nets.registry.register_layer` in its own file.
"""

from honestbench.nets.registry import import_submodules

import_submodules(__name__)
