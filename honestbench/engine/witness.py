"""Choosing each broken image's witness (:mod:`honestbench.results.witnesses`): the coarsest quantised copy of the
attack's adversarial example that the model still misclassifies, else the example itself, exactly.

Deterministic model: a candidate counts when one eval-mode forward pass misclassifies it. Stochastic model
(``passes`` > 0): the exact example and every candidate are classified in ``passes`` seeded passes with the
same seed (common random numbers); a candidate counts when it is misclassified in at least as many passes as
the exact example, and the exact example is kept when it was misclassified in none of them. Images are float32
NCHW with pixels in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from honestbench.attacks.base import frozen_eval
from honestbench.core.rng import seeded_rng
from honestbench.engine.cells import AttackCell
from honestbench.results.witnesses import EXACT, LEVELS, Witnesses, encode, quantised

#: seeded passes per candidate on a stochastic model
STOCHASTIC_PASSES = 4


def _fooled_count(model: nn.Module, x: np.ndarray, y: torch.Tensor, passes: int, seed: int,
                  device: torch.device) -> np.ndarray:
    """How many of ``max(passes, 1)`` passes (seeded with ``seed``) misclassify each image of ``x``."""
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    with seeded_rng(seed, device), frozen_eval(model), torch.inference_mode():
        wrong = [(model(xt).argmax(1) != y) for _ in range(max(passes, 1))]
    return torch.stack(wrong, 0).sum(0).cpu().numpy()


def add_witnesses(store: Witnesses, model: nn.Module, ids: np.ndarray, x: torch.Tensor, x_adv: torch.Tensor,
                  y: torch.Tensor, stochastic: bool, seed: int) -> None:
    """Append to ``store`` one witness for each image ``ids[i]`` (clean ``x[i]``, adversarial ``x_adv[i]``,
    label ``y[i]``): the coarsest level of :data:`~honestbench.results.witnesses.LEVELS` still fooling the
    model (module docstring), else the exact example."""
    if len(ids) == 0:
        return
    device = x_adv.device
    xc = x.detach().float().cpu().numpy()
    xa = x_adv.detach().float().cpu().numpy()
    passes = STOCHASTIC_PASSES if stochastic else 1
    need = _fooled_count(model, xa, y, passes, seed, device) if stochastic else np.ones(len(ids), np.int64)
    chosen = np.full(len(ids), EXACT, np.int64)
    payload: list[bytes | None] = [None] * len(ids)
    todo = np.nonzero(need > 0)[0]
    for level in LEVELS:
        if len(todo) == 0:
            break
        q, xw = quantised(xc[todo], xa[todo], level)
        hits = _fooled_count(model, xw, y[torch.from_numpy(todo).to(y.device)], passes, seed, device)
        for j, pos in enumerate(todo):
            if hits[j] >= need[pos]:
                chosen[pos] = level
                payload[pos] = encode(xc[pos], xw[j], level, q[j])
        todo = todo[chosen[todo] == EXACT]
    for pos, image_id in enumerate(ids):
        store.add(int(image_id), int(chosen[pos]), payload[pos] or encode(xc[pos], xa[pos], EXACT))


def witnesses_cover(witnessed: np.ndarray, index: np.ndarray, cell: AttackCell) -> bool:
    """True when a finished cell keeps a witness for every image it fooled that no earlier column
    (``witnessed``, a boolean mask by position) keeps one for; False for a cell written before witnesses
    existed or after the earlier columns changed (it is then recomputed)."""
    if cell.witnesses is None:
        return False
    fooled = np.asarray(cell.robust) == 0
    want = set(np.asarray(index)[fooled & ~np.asarray(witnessed, bool)].tolist())
    return want <= set(cell.witnesses.index)
