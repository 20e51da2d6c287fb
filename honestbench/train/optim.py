"""The optimiser and learning-rate schedule of every recipe: SGD with weight decay except on noise scales,
temperatures and IBP parameters; a one-cycle or cosine multiplier stepped once per iteration."""

from __future__ import annotations

import math

import torch
from torch import nn

from honestbench.train.recipe import Recipe

NO_DECAY = ("a", "temp", "conc1", "conc0", "t_pi")  # parameter names exempt from weight decay


def make_optimizer(model: nn.Module, r: Recipe, lr: float | None = None) -> torch.optim.Optimizer:
    """SGD (or Adam: ``optimizer = "adam"``) over ``model``'s trainable parameters at ``lr`` (default: the
    recipe's)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.rsplit(".", 1)[-1] in NO_DECAY else decay).append(p)
    groups = [{"params": decay, "weight_decay": r.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if r.optimizer == "adam":
        return torch.optim.Adam(groups, lr=r.lr if lr is None else lr)
    return torch.optim.SGD(groups, lr=r.lr if lr is None else lr, momentum=r.momentum,
                           nesterov=r.nesterov and r.momentum > 0)


class LRShape:
    """Learning-rate multiplier per optimiser step: linear one-cycle (warm-up from lr/25 over ``pct_start``
    of the steps, then linear decay to lr/25e3) or cosine. ``total`` can be lowered mid-run (time-fitted
    training) and is saved with the scheduler's state."""

    def __init__(self, kind: str, total: int, pct_start: float = 0.25, div: float = 25.0,
                 final_div: float = 1e3):
        self.kind, self.total, self.pct_start = kind, max(int(total), 1), pct_start
        self.div, self.final_div = div, final_div

    def __call__(self, step: int) -> float:
        p = min(step, self.total) / self.total
        if self.kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * p))
        start, end = 1 / self.div, 1 / (self.div * self.final_div)
        if p < self.pct_start:
            return start + (1 - start) * p / self.pct_start
        return max(end, 1 - (1 - end) * (p - self.pct_start) / max(1 - self.pct_start, 1e-9))


def make_scheduler(opt: torch.optim.Optimizer, r: Recipe, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(opt, LRShape(r.schedule, total_steps, r.pct_start))


def set_total_epochs(tr, epochs: int) -> None:
    """Shorten (or lengthen) the planned schedule of a running :class:`honestbench.train.trainer.Trainer`."""
    tr.epochs = int(epochs)
    for f in tr.sched.lr_lambdas:
        f.total = max(tr.epochs * tr.steps_per_epoch, 1)
