"""Training recipes of the model zoo (``bench train NAME``): resumable, seeded, CPU or CUDA.

Recipes (``[recipe]`` of a card):
  * ``natural``: cross-entropy (``label_smoothing`` > 0 gives the label-smoothing defence);
    Gaussian-noise smoothing comes from the card's defence (the model adds N(0, sigma^2) in train mode);
  * ``adversarial``: the report's mixed adversarial training. Per iteration ``r`` is drawn uniformly from
    ``0 .. slots-1`` (default 8 slots); ``r < clean_slots`` (default 4) keeps the clean batch, otherwise the
    batch is replaced by one attack's output: with a pool of ``slots - clean_slots`` attacks slot ``r``
    picks ``pool[r - clean_slots]`` (full pool: r = 4, 5, 6, 7 -> PGD, FGSM, CW, noise), a smaller pool is
    drawn with equal probability. ``slots = 1, clean_slots = 0, pool = ['pgd-linf']`` is Madry PGD-AT;
  * ``elbo = true``: loss = cross-entropy + KL / N_train (stochastic LWTA / IBP layers), with any of the
    above.
Training attacks are our own kernels (:func:`bench.attacks.registry.create_attack`) with the training budget
(``eps``, default L-inf 8/255; L2 attacks such as CW are projected into that L-inf ball afterwards). They
craft on the model in ``eval()`` mode (BatchNorm running statistics, frozen parameters; the Attack base
class does this), which keeps BatchNorm statistics free of adversarial-only batches and is the usual
choice of PGD-AT code.
Optimiser: SGD (momentum 0.9, weight decay 5e-4 except on noise scales / temperatures / IBP parameters),
one-cycle or cosine schedule stepped per iteration; random crop (pad 4) + horizontal flip on the batch on
the training device. Each epoch writes ``runs/NAME/last.pt`` (model, optimizer, scheduler, RNG states);
``--resume`` continues from it. The final weights-only state dict goes to the card's checkpoint.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.errors import BenchError, ModelCardError
from bench.core.io import REPO_ROOT, atomic_path, sha256_file
from bench.core.rng import seed_everything
from bench.core.threads import resolve_device
from bench.zoo import Card, build_model, clean_accuracy, get_card

RUNS_DIR = REPO_ROOT / "runs"
NO_DECAY = ("a", "temp", "conc1", "conc0", "t_pi")  # parameter names exempt from weight decay
RECIPES = ("natural", "adversarial")


def parse_number(v: object) -> float:
    """``0.03``, ``8`` or ``'8/255'`` -> float."""
    if isinstance(v, str) and "/" in v:
        a, b = v.split("/", 1)
        return float(a) / float(b)
    return float(v)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- recipe
@dataclass
class Recipe:
    """A card's ``[recipe]`` table with defaults; budgets in [0, 1] pixel units."""

    kind: str = "natural"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    batch_size: int = 256
    schedule: str = "onecycle"  # onecycle | cosine
    pct_start: float = 0.25
    label_smoothing: float = 0.0
    augment: bool = True
    elbo: bool = False
    eps: float = 8 / 255
    pool: list = field(default_factory=list)
    slots: int = 8
    clean_slots: int = 4
    attacks: dict = field(default_factory=dict)  # per-attack parameters for create_attack
    amp: bool = True  # bf16 autocast on CUDA only
    grad_clip: float = 0.0

    @classmethod
    def from_card(cls, card: Card) -> Recipe:
        raw = dict(card.recipe)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ModelCardError(f"model card {card.name!r}: unknown recipe key {unknown[0]!r}")
        if "eps" in raw:
            raw["eps"] = parse_number(raw["eps"])
        r = cls(**raw)
        if r.kind not in RECIPES:
            raise ModelCardError(f"model card {card.name!r}: recipe kind must be one of {RECIPES}")
        if r.kind == "adversarial" and (not r.pool or r.clean_slots >= r.slots):
            raise ModelCardError(
                f"model card {card.name!r}: adversarial recipe needs a pool and clean_slots < slots")
        if r.schedule not in ("onecycle", "cosine"):
            raise ModelCardError(f"model card {card.name!r}: schedule must be onecycle or cosine")
        return r


class MixedSchedule:
    """The report's per-iteration draw: ``r ~ U{0..slots-1}``; clean when ``r < clean_slots``, else an attack.

    :meth:`draw` returns None (clean batch) or the attack name. Its own CPU generator (state saved in the
    resumable checkpoint) makes the sequence reproducible and independent of everything else.
    """

    def __init__(self, pool: list[str], slots: int = 8, clean_slots: int = 4, seed: int = 0):
        if not pool and clean_slots < slots:
            raise ValueError("an empty pool needs clean_slots == slots")
        self.pool, self.slots, self.clean_slots = list(pool), slots, clean_slots
        self.gen = torch.Generator().manual_seed(int(seed) + 7919)

    def shares(self) -> dict[str, float]:
        """The expected share of batches of each kind ``'clean'`` or an attack name (sums to 1): what
        :meth:`draw` returns in the long run."""
        if not self.pool:
            return {"clean": 1.0}
        p_clean = self.clean_slots / self.slots
        out = {"clean": p_clean} if p_clean > 0 else {}
        for name in self.pool:
            out[name] = out.get(name, 0.0) + (1.0 - p_clean) / len(self.pool)
        return out

    def draw(self) -> str | None:
        if not self.pool:
            return None
        r = int(torch.randint(self.slots, (1,), generator=self.gen))
        if r < self.clean_slots:
            return None
        if len(self.pool) == self.slots - self.clean_slots:
            return self.pool[r - self.clean_slots]
        return self.pool[int(torch.randint(len(self.pool), (1,), generator=self.gen))]


def training_attacks(recipe: Recipe) -> dict[str, object]:
    """Attack objects of the recipe's pool, each with the training budget unless its params say otherwise."""
    from bench.attacks.registry import attack_defaults, create_attack

    out = {}
    for name in recipe.pool:
        params = {k: (None if v == "none" else parse_number(v) if k in ("eps", "alpha") else v)
                  for k, v in recipe.attacks.get(name, {}).items()}
        if "eps" in attack_defaults(name) and name != "cw-l2":
            params.setdefault("eps", recipe.eps)
        out[name] = create_attack(name, **params)
    return out


# ----------------------------------------------------------------------------------------------- data
def augment(x: torch.Tensor, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip of a float NCHW batch, per sample, on its
    device (global torch RNG)."""
    n, c, h, w = x.shape
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
        dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (n, h, 1)
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (n, 1, w)
        x = xp.permute(0, 2, 3, 1)[torch.arange(n, device=x.device)[:, None, None], rows, cols]  # (n,h,w,c)
        x = x.permute(0, 3, 1, 2)
    if flip:
        f = torch.rand(n, device=x.device) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def machine_string(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU {os.cpu_count()} cores ({platform.processor() or platform.machine()}), " \
           f"{torch.get_num_threads()} threads, torch {torch.__version__}"


# ----------------------------------------------------------------------------------------------- optimiser
def make_optimizer(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.rsplit(".", 1)[-1] in NO_DECAY else decay).append(p)
    groups = [{"params": decay, "weight_decay": r.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum, nesterov=r.nesterov and r.momentum > 0)


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


def set_total_epochs(tr: Trainer, epochs: int) -> None:
    """Shorten (or lengthen) the planned schedule of a running trainer to ``epochs``."""
    tr.epochs = int(epochs)
    for f in tr.sched.lr_lambdas:
        f.total = max(tr.epochs * tr.steps_per_epoch, 1)


# ----------------------------------------------------------------------------------------------- trainer
@dataclass
class TrainResult:
    card: str
    checkpoint: Path | None
    epochs_done: int
    epochs: int
    train_time_s: float
    finished: bool
    history: list = field(default_factory=list)
    clean_accuracy: float | None = None
    clean_accuracy_std: float | None = None
    sha256: str | None = None


class Trainer:
    """Holds the model, data, optimiser and schedule of one training run (see :func:`train`)."""

    def __init__(self, card: Card, *, epochs: int | None = None, batch_size: int | None = None,
                 dataset: str | None = None, source: str = "npz", device: str = "auto",
                 seed: int | None = None, max_batches: int | None = None, progress: bool = True,
                 run_dir: Path | None = None):
        from bench.data import load_train

        self.card, self.recipe = card, Recipe.from_card(card)
        self.dataset = dataset or card.data
        self.device = resolve_device(device)
        self.seed = card.seed if seed is None else seed
        self.epochs = int(epochs or card.epochs)
        self.progress, self.max_batches = progress, max_batches
        self.run_dir = run_dir or RUNS_DIR / (card.name if self.dataset == card.data
                                              else f"{card.name}-{self.dataset}")
        seed_everything(self.seed)
        ts = load_train(self.dataset, source=source, progress=progress)
        self.n_train = len(ts.y)
        x = np.require(ts.x, requirements=["C", "W"])  # a read-only (memory-mapped) cache is copied
        self.x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.y = torch.from_numpy(np.asarray(ts.y, dtype=np.int64)).to(self.device)
        bs = int(batch_size or self.recipe.batch_size)
        self.batch_size = max(1, min(bs, self.n_train // 10)) if self.n_train < 10 * bs else bs
        self.steps_per_epoch = self.n_train // self.batch_size
        if max_batches:
            self.steps_per_epoch = min(self.steps_per_epoch, max_batches)
        card_for_data = card if self.dataset == card.data else _with_data(card, self.dataset)
        self.model = build_model(card_for_data).to(self.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        self.amp = self.cuda and self.recipe.amp
        self.opt = make_optimizer(self.model, self.recipe)
        self.sched = make_scheduler(self.opt, self.recipe, self.epochs * self.steps_per_epoch)
        r = self.recipe
        self.schedule = (MixedSchedule(r.pool, r.slots, r.clean_slots, self.seed) if r.kind == "adversarial"
                         else MixedSchedule([], 1, 1))
        self.attacks = training_attacks(self.recipe) if self.recipe.kind == "adversarial" else {}
        self.attack_gen = torch.Generator(device=self.device).manual_seed(self.seed + 104729)
        self.epoch, self.elapsed, self.history = 0, 0.0, []

    # -- one iteration
    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb = self.x[idx].float().div_(255.0)
        if self.recipe.augment and self.dataset != "digits":
            xb = augment(xb)
        if self.cuda:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, self.y[idx]

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp)

    def adversarial(self, name: str | None, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if name is None:
            return xb
        from bench.attacks.base import project_linf

        atk = self.attacks[name]
        with self.autocast():
            x_adv = atk(self.model, xb, yb, generator=self.attack_gen)
        if getattr(atk, "norm", "linf") != "linf" or getattr(atk, "eps", self.recipe.eps) > self.recipe.eps:
            x_adv = project_linf(x_adv, xb, self.recipe.eps)  # the training budget is L-inf eps
        return x_adv.detach()

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[float, float]:
        from bench.nets.lwta import model_kl

        self.model.train()
        with self.autocast():
            logits = self.model(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=self.recipe.label_smoothing)
            if self.recipe.elbo:
                loss = loss + model_kl(self.model) / self.n_train
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.recipe.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        self.opt.step()
        self.sched.step()
        return loss.detach(), (logits.argmax(1) == yb).sum()

    def run_epoch(self) -> dict[str, float]:
        from tqdm import tqdm

        t0 = time.perf_counter()
        perm = torch.randperm(self.n_train, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        counts: dict[str, int] = {}
        bar = tqdm(range(self.steps_per_epoch), desc=f"{self.card.name} epoch {self.epoch + 1}/{self.epochs}",
                   disable=not self.progress, leave=False, unit="it", file=sys.stderr)
        for it in bar:
            xb, yb = self.batch(perm[it * self.batch_size:(it + 1) * self.batch_size])
            name = self.schedule.draw()
            counts[name or "clean"] = counts.get(name or "clean", 0) + 1
            xb = self.adversarial(name, xb, yb)
            loss, corr = self.step(xb, yb)
            loss_sum += loss
            correct += corr
            if self.progress and it % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{self.sched.get_last_lr()[0]:.3g}")
        n = self.steps_per_epoch * self.batch_size
        if self.cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        self.epoch += 1
        self.elapsed += dt
        rec = {"epoch": self.epoch, "loss": loss_sum.item() / max(self.steps_per_epoch, 1),
               "train_acc": correct.item() / max(n, 1), "time_s": round(dt, 2), "batches": counts}
        self.history.append(rec)
        return rec

    # -- resumable state
    def state(self) -> dict:
        s = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
             "scheduler": self.sched.state_dict(), "epoch": self.epoch, "epochs": self.epochs,
             "elapsed": self.elapsed, "history": [{k: v for k, v in h.items() if k != "batches"}
                                                  for h in self.history],
             "rng_cpu": torch.get_rng_state(), "rng_schedule": self.schedule.gen.get_state(),
             "rng_attack": self.attack_gen.get_state(), "card": self.card.name, "dataset": self.dataset,
             "batch_size": self.batch_size, "steps_per_epoch": self.steps_per_epoch}
        if self.cuda:
            s["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return s

    def save_state(self) -> Path:
        path = self.run_dir / "last.pt"
        with atomic_path(path, "wb") as f:
            torch.save(self.state(), f)
        return path

    def load_state(self, path: Path) -> None:
        try:
            s = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:
            raise BenchError(
                f"cannot resume from {path} ({type(e).__name__}); delete it to start afresh") from None
        if s.get("card") != self.card.name or s.get("dataset") != self.dataset:
            raise BenchError(f"{path} belongs to {s.get('card')!r} on {s.get('dataset')!r}, not this run")
        if (s["epochs"], s["batch_size"], s["steps_per_epoch"]) != (self.epochs, self.batch_size,
                                                                    self.steps_per_epoch):
            raise BenchError(
                f"{path} was written for {s['epochs']} epochs, batch {s['batch_size']} x "
                f"{s['steps_per_epoch']} steps; rerun with the same --epochs/--batch-size "
                "(or delete it to start afresh)")
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["optimizer"])
        self.sched.load_state_dict(s["scheduler"])
        self.epoch, self.elapsed, self.history = int(s["epoch"]), float(s["elapsed"]), list(s["history"])
        torch.set_rng_state(s["rng_cpu"].cpu())
        self.schedule.gen.set_state(s["rng_schedule"].cpu())
        self.attack_gen.set_state(s["rng_attack"].cpu())
        if self.cuda and "rng_cuda" in s:
            torch.cuda.set_rng_state(s["rng_cuda"].cpu(), self.device)

    # -- timing probe
    def estimate_epoch_s(self, reps: int = 3) -> float:
        """Seconds per epoch, measured on a few batches of each kind (clean + each attack) on a copy."""
        import copy

        saved = (self.model, self.opt, self.sched)
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.cuda else None
        self.model = copy.deepcopy(saved[0])
        self.opt = make_optimizer(self.model, self.recipe)
        self.sched = make_scheduler(self.opt, self.recipe, 10 ** 6)
        try:
            idx = torch.arange(self.batch_size, device=self.device)
            xb, yb = self.batch(idx)
            cost = {}
            for kind in [None, *self.attacks]:
                ts = []
                for _ in range(reps + 1):
                    t0 = time.perf_counter()
                    self.step(self.adversarial(kind, xb, yb), yb)
                    if self.cuda:
                        torch.cuda.synchronize()
                    ts.append(time.perf_counter() - t0)
                cost[kind] = float(np.median(ts[1:]))
        finally:
            self.model, self.opt, self.sched = saved
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, self.device)
        r = self.recipe
        if r.kind == "adversarial":
            p_clean = r.clean_slots / r.slots
            adv = sum(cost[k] for k in self.attacks) / len(self.attacks)
            per_it = p_clean * cost[None] + (1 - p_clean) * adv
        else:
            per_it = cost[None]
        return per_it * self.steps_per_epoch * 1.1  # + data indexing, bookkeeping, epoch checkpoint


def _with_data(card: Card, dataset: str) -> Card:
    import dataclasses

    return dataclasses.replace(card, data=dataset)


def train(card: Card | str, *, epochs: int | None = None, resume: bool = False, out: str | None = None,
          update_card: bool = False, max_minutes: float | None = None, fit_minutes: float | None = None,
          batch_size: int | None = None, dataset: str | None = None, source: str = "npz",
          device: str = "auto", seed: int | None = None, max_batches: int | None = None,
          progress: bool = True, eval_passes: int | None = None, runs_dir: str | Path | None = None,
          log=print) -> TrainResult:
    """Train ``card`` (see the module docstring). ``fit_minutes`` first times a few batches and lowers the
    number of epochs so the whole schedule fits in that many minutes; ``max_minutes`` stops cleanly after
    the epoch that passes it (resume later with ``resume=True``)."""
    card = get_card(card) if isinstance(card, str) else card
    dataset = dataset or card.data
    if card.external:
        raise BenchError(f"model {card.name!r} is an external checkpoint; it is not trained by bench")
    if update_card and dataset != card.data:
        raise BenchError(f"--update-card needs the card's own data ({card.data}), not {dataset}")
    t_start = time.perf_counter()
    run_dir = Path(runs_dir or RUNS_DIR) / (card.name if dataset == card.data else f"{card.name}-{dataset}")
    tr = Trainer(card, epochs=epochs, batch_size=batch_size, dataset=dataset, source=source, device=device,
                 seed=seed, max_batches=max_batches, progress=progress, run_dir=run_dir)
    last = tr.run_dir / "last.pt"
    if resume and last.is_file():
        if fit_minutes:  # the saved schedule fixes the epochs
            s = torch.load(last, map_location="cpu", weights_only=True)
            if s.get("epochs") != tr.epochs:
                tr = Trainer(card, epochs=int(s["epochs"]), batch_size=batch_size, dataset=dataset,
                             source=source, device=device, seed=seed, max_batches=max_batches,
                             progress=progress, run_dir=run_dir)
        tr.load_state(last)
        log(f"{card.name}: resumed from {last} after epoch {tr.epoch}/{tr.epochs}")
    elif fit_minutes:
        per_epoch = tr.estimate_epoch_s()
        fit = max(1, min(tr.epochs, int(fit_minutes * 60 / per_epoch)))
        log(f"{card.name}: ~{per_epoch:.1f} s/epoch on {tr.device}; {fit} of {tr.epochs} epochs fit in "
            f"{fit_minutes:g} min")
        if fit != tr.epochs:
            set_total_epochs(tr, fit)
    elif resume:
        log(f"{card.name}: no checkpoint at {last}; starting afresh")
    log(f"{card.name}: {tr.recipe.kind} recipe{' + ELBO' if tr.recipe.elbo else ''}, {tr.dataset} "
        f"({tr.n_train} images, batch {tr.batch_size} x {tr.steps_per_epoch} steps), {tr.epochs} epochs on "
        f"{tr.device}{' (bf16 autocast)' if tr.amp else ''}")
    session_t0 = time.perf_counter()
    while tr.epoch < tr.epochs:
        rec = tr.run_epoch()
        tr.save_state()
        mix = ", ".join(f"{k} {v}" for k, v in sorted(rec["batches"].items()))
        log(f"{card.name}: epoch {rec['epoch']}/{tr.epochs} loss {rec['loss']:.4f} train-acc "
            f"{rec['train_acc']:.4f} {rec['time_s']:.1f}s [{mix}]")
        if fit_minutes and tr.epoch < tr.epochs:  # re-fit the schedule to the time actually measured
            left = fit_minutes * 60 - (time.perf_counter() - t_start)
            can = int(left / (rec["time_s"] * 1.05))
            if tr.epoch + can < tr.epochs:
                if can <= 0:
                    log(f"{card.name}: out of time after epoch {tr.epoch}/{tr.epochs} (--fit-minutes)")
                    break
                log(f"{card.name}: epochs take {rec['time_s']:.1f}s; schedule shortened to "
                    f"{tr.epoch + can} epochs")
                set_total_epochs(tr, tr.epoch + can)
        if max_minutes is not None and tr.epoch < tr.epochs and \
                time.perf_counter() - session_t0 > max_minutes * 60:
            log(f"{card.name}: stopping after epoch {tr.epoch}/{tr.epochs} (--max-minutes {max_minutes:g}); "
                f"continue with `bench train {card.name} --resume`")
            break
    finished = tr.epoch >= tr.epochs
    if out:
        ckpt = Path(out)
    elif dataset == card.data and card.checkpoint:
        ckpt = card.checkpoint_path()
    else:
        ckpt = tr.run_dir / "model.pt"
    ckpt = ckpt if ckpt.is_absolute() else (Path.cwd() / ckpt)
    state = {k: v.detach().float().cpu() if v.is_floating_point() else v.detach().cpu()
             for k, v in tr.model.state_dict().items()}
    with atomic_path(ckpt, "wb") as f:
        torch.save(state, f)
    res = TrainResult(card.name, ckpt, tr.epoch, tr.epochs, tr.elapsed, finished, tr.history,
                      sha256=sha256_file(ckpt))
    log(f"{card.name}: wrote {_rel(ckpt)} ({ckpt.stat().st_size / 1e6:.2f} MB, sha256 {res.sha256[:12]}...)"
        + ("" if finished else " (partial: the schedule is not finished)"))
    if update_card or eval_passes:
        from bench.data import load_eval
        from bench.nets import is_stochastic
        from bench.zoo import freeze

        ev = load_eval(dataset)
        # the card's figure is measured on the CPU, from the saved checkpoint: GPU kernels round differently
        # and can flip a borderline image, and `bench check` / the acceptance re-measure on the CPU
        model = freeze(build_model(card if dataset == card.data else _with_data(card, dataset)))
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        passes = eval_passes or (5 if is_stochastic(model) else 1)
        acc, std = clean_accuracy(model, ev.x, ev.y, passes=passes, device="cpu")
        res.clean_accuracy, res.clean_accuracy_std = acc, std
        log(f"{card.name}: clean accuracy {acc:.4f} (+- {std:.4f}, {passes} passes) on {len(ev.y)} "
            f"{dataset} test images")
    if update_card:
        result = {
            "sha256": res.sha256, "clean_accuracy": round(res.clean_accuracy, 4),
            "clean_accuracy_std": round(res.clean_accuracy_std, 4), "clean_accuracy_passes": passes,
            "clean_accuracy_device": "cpu",
            "epochs_done": tr.epoch, "epochs_planned": tr.epochs, "train_time_s": round(tr.elapsed, 1),
            "s_per_epoch": round(tr.elapsed / max(tr.epoch, 1), 2), "batch_size": tr.batch_size,
            "machine": machine_string(tr.device),
            "trained_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": f"bench train {card.name} --epochs {tr.epochs} --batch-size {tr.batch_size} "
                       "--update-card",
        }
        if ckpt.resolve() != card.checkpoint_path().resolve():
            raise BenchError(f"--update-card needs the card's checkpoint path, not {ckpt}")
        write_result(card.path, result)
        log(f"{card.name}: updated {_rel(card.path)} [result]")
    log(f"{card.name}: done in {time.perf_counter() - t_start:.0f}s wall ({tr.elapsed:.0f}s training)")
    return res


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(p)


# ----------------------------------------------------------------------------------------------- card writer
def toml_value(v: object) -> str:
    """A TOML literal for a scalar or a list of scalars (tomllib only reads)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("TOML writer: nan/inf not supported")
        return repr(v)
    if isinstance(v, str):
        import json

        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"TOML writer: unsupported value {type(v).__name__}")


def write_result(card_path: Path, result: dict) -> None:
    """Replace the card's trailing ``[result]`` table (kept last in every card) with ``result``."""
    text = Path(card_path).read_text()
    lines = text.splitlines()
    cut = next((i for i, ln in enumerate(lines) if ln.strip() == "[result]"), len(lines))
    head = "\n".join(lines[:cut]).rstrip() + "\n\n"
    body = "[result]\n# written by `bench train NAME --update-card` or scripts/measure_clean.py\n"
    body += "".join(f"{k} = {toml_value(v)}\n" for k, v in result.items())
    with atomic_path(card_path, "w") as f:
        f.write(head + body)


# ----------------------------------------------------------------------------------------------- CLI
def train_command(args: argparse.Namespace) -> int:
    """``bench train NAME``: the CLI handler (arguments defined in :mod:`bench.commands.cli`)."""
    source = getattr(args, "data", "npz") or "npz"
    res = train(args.name, epochs=args.epochs, resume=args.resume, out=args.out, update_card=args.update_card,
                max_minutes=args.max_minutes, fit_minutes=getattr(args, "fit_minutes", None),
                batch_size=args.batch_size, dataset=getattr(args, "dataset", None), source=source,
                device=getattr(args, "device", "auto"),
                seed=getattr(args, "seed_override", getattr(args, "seed", None)),
                max_batches=getattr(args, "max_batches", None),
                progress=not getattr(args, "no_progress", False))
    return 0 if res.finished else 3


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.train NAME ...``: ``bench train`` plus ``--fit-minutes`` and ``--max-batches``."""
    ap = argparse.ArgumentParser(prog="python -m bench.train")
    ap.add_argument("name")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--update-card", action="store_true")
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--fit-minutes", type=float, default=None,
                    help="time a few batches, then lower --epochs so the schedule fits in this many minutes")
    ap.add_argument("--max-batches", type=int, default=None, help="at most N batches per epoch (smoke)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--data", default="npz")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", dest="seed_override", type=int, default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        return train_command(args)
    except BenchError as e:
        print(f"bench train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
