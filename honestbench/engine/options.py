"""How one evaluation runs: batch size, seed, device, mode, stochastic passes, progress bars."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from honestbench.core.errors import BenchError
from honestbench.engine.stochastic import R_DEFAULT


@dataclass(frozen=True)
class EvalOptions:
    """The settings of :func:`honestbench.engine.cascade.evaluate` (and of every model of a ``bench run``).

    ``full_matrix``: attack every clean-correct sample with every attack (default: early-exit cascade).
    ``batch_size``: images per batch, also the seeding block (:mod:`honestbench.engine.cells`). ``seed``: the seed of
    every random choice. ``device``: a torch device or its name ('cpu', 'cuda', 'cuda:1'). ``passes``: R, the
    further seeded passes per image of a stochastic model (mean-over-R accuracy; 0: none; deterministic
    models take none). ``progress``: tqdm bars.
    """

    full_matrix: bool = False
    batch_size: int = 256
    seed: int = 0
    device: torch.device | str = "cpu"
    passes: int = R_DEFAULT
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise BenchError(f"batch size must be >= 1, got {self.batch_size}: use --batch-size 1 or more")
        object.__setattr__(self, "device", torch.device(self.device))
