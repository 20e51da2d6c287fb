"""The settings every ``bench speed`` section reads, and the per-run context the sections share (the device and
the batch of evaluation images, pixels in [0, 1], loaded once)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from honestbench.data import load_eval


@dataclass(frozen=True)
class SpeedOptions:
    """``batch``: images per timed batch; ``repeats``: timed rounds (median reported); ``quick``: skip the heavy
    sections; ``dataset`` / ``source``: as :func:`honestbench.data.load_eval`; ``n``: images of the suite section and
    of the
    precision check (None: all); ``seed``: of the untrained weights and the attacks; ``art``: time ART's
    PGD too; ``archs``: the ``pgd-cost`` sections to run (None: ``small`` and, unless ``quick``, ``wrn-34-1``);
    ``precisions``: ``fp32`` and/or ``bf16`` (each ``pgd-cost`` section runs once per precision; with both, the
    precision check runs too); ``precision_model``: the trained zoo model of the precision check."""

    batch: int = 256
    repeats: int = 3
    quick: bool = False
    dataset: str = "cifar10"
    source: str = "npz"
    n: int | None = None
    seed: int = 0
    art: bool = True
    archs: tuple[str, ...] | None = None
    precisions: tuple[str, ...] = ("fp32",)
    precision_model: str = "pgd-at"


@dataclass
class Context:
    """What the sections of one run share: the device and the evaluation batch (loaded by the first that asks)."""

    device: torch.device
    _batch: torch.Tensor | None = None

    def batch(self, opts: SpeedOptions) -> torch.Tensor:
        """The first ``opts.batch`` evaluation images of ``opts.dataset`` on the device."""
        if self._batch is None:
            data = load_eval(opts.dataset, n=opts.batch, source=opts.source)
            self._batch = data.x.to(self.device)
        return self._batch
