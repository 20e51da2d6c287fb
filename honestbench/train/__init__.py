"""Training recipes of the model zoo (``bench train NAME``): resumable, seeded, CPU or CUDA. Pixels in [0, 1];
budgets (``eps``) in the same units.

Recipes (``[recipe]`` of a card, :mod:`honestbench.train.recipe`):
  * ``natural``: cross-entropy (``label_smoothing`` > 0 gives the label-smoothing defence);
    Gaussian-noise smoothing comes from the card's defence (the model adds N(0, sigma^2) in train mode);
  * ``adversarial``: the report's mixed adversarial training. Per iteration ``r`` is drawn uniformly from
    ``0 .. slots-1`` (default 8 slots); ``r < clean_slots`` (default 4) keeps the clean batch, otherwise the
    batch is replaced by one attack's output: with a pool of ``slots - clean_slots`` attacks slot ``r``
    picks ``pool[r - clean_slots]`` (full pool: r = 4, 5, 6, 7 -> PGD, FGSM, CW, noise), a smaller pool is
    drawn with equal probability. ``slots = 1, clean_slots = 0, pool = ['pgd-linf']`` is Madry PGD-AT;
  * ``elbo = true``: loss = cross-entropy + KL / N_train (stochastic LWTA / IBP layers), with any of the
    above.
Training attacks are our own kernels (:func:`honestbench.attacks.registry.create_attack`) with the training budget
(``eps``, default L-inf :data:`honestbench.core.budgets.EPS_LINF`; L2 attacks such as CW are projected into that L-inf
ball afterwards). They craft on the model in ``eval()`` mode (BatchNorm running statistics, frozen parameters;
the Attack base class does this), which keeps BatchNorm statistics free of adversarial-only batches and is the
usual choice of PGD-AT code.
Optimiser (:mod:`honestbench.train.optim`): SGD (momentum 0.9, weight decay 5e-4 except on noise scales /
temperatures / IBP parameters), one-cycle or cosine schedule stepped per iteration; random crop (pad 4) +
horizontal flip on the batch on the training device (:mod:`honestbench.train.augment`). Each epoch writes
``runs/NAME/last.pt`` (model, optimizer, scheduler, RNG states; :mod:`honestbench.train.trainer`); ``--resume``
continues from it. The final weights-only state dict goes to the card's checkpoint (:mod:`honestbench.train.loop`).
"""

from __future__ import annotations

from honestbench.train.augment import augment
from honestbench.train.loop import TrainResult, card_result, machine_string, train
from honestbench.train.optim import NO_DECAY, LRShape, make_optimizer, make_scheduler, set_total_epochs
from honestbench.train.recipe import RECIPES, MixedSchedule, Recipe, parse_number, scaled_lr, training_attacks
from honestbench.train.trainer import RUNS_DIR, Trainer, with_data
from honestbench.zoo.writing import toml_value, write_result

__all__ = [
    "NO_DECAY", "RECIPES", "RUNS_DIR", "LRShape", "MixedSchedule", "Recipe", "TrainResult", "Trainer", "augment",
    "card_result", "machine_string", "make_optimizer", "make_scheduler", "parse_number", "scaled_lr",
    "set_total_epochs", "toml_value", "train", "training_attacks", "with_data", "write_result",
]
