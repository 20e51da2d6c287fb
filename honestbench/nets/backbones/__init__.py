"""The zoo's backbones, one file each, registered by name with :func:`honestbench.nets.registry.register_backbone`
(``small-cnn``, ``preact-resnet18``, the ``wrn-D-W`` family, ``slwta-wrn34-1-published``) and built with
:func:`honestbench.nets.registry.build_backbone`. Every module here is imported on import (discovery).

A backbone takes images with pixels in [0, 1] (normalisation is its first module) and returns logits; its
activation and conv / linear layers are pluggable factories (``act``, ``conv``, ``linear``), through which
the defence layers of :mod:`honestbench.nets.layers` go in.
"""

from honestbench.nets.registry import import_submodules

import_submodules(__name__)
