"""One training run's state and its iteration: model, data, optimiser, schedule, training attacks, the
resumable checkpoint (``runs/NAME/last.pt``). Pixels in [0, 1]; budgets in the same units.

Device flags (each tested on the CPU with digits): ``resident`` keeps the uint8 training set on the training
device and indexes + augments batches there; ``amp`` runs forward passes and attacks under bf16 autocast;
``channels_last`` stores the model and batches in NHWC. ``amp`` and ``channels_last`` default to on for CUDA
only. ``scale_lr`` applies the linear scaling rule when the batch differs from the recipe's.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from honestbench.attacks.base import project_linf
from honestbench.core.errors import BenchError
from honestbench.core.io import atomic_path
from honestbench.core.rng import seed_everything
from honestbench.core.threads import resolve_device
from honestbench.data import load_train
from honestbench.nets.layers.elbo import model_kl
from honestbench.train.augment import augment
from honestbench.train.certified import CertifiedLoss
from honestbench.train.optim import make_optimizer, make_scheduler
from honestbench.train.recipe import MixedSchedule, Recipe, scaled_lr, training_attacks
from honestbench.zoo import Card, build_model

RUNS_DIR = Path("runs")  # relative to the working folder


def with_data(card: Card, dataset: str) -> Card:
    """``card`` trained / evaluated on another dataset (the digits variants of the tests)."""
    return card if dataset == card.data else dataclasses.replace(card, data=dataset)


class Trainer:
    """Holds the model, data, optimiser and schedule of one training run (see :func:`honestbench.train.train`)."""

    def __init__(self, card: Card, *, epochs: int | None = None, batch_size: int | None = None,
                 dataset: str | None = None, source: str = "npz", device: str = "auto",
                 seed: int | None = None, max_batches: int | None = None, progress: bool = True,
                 run_dir: Path | None = None, resident: bool = True, amp: bool | None = None,
                 channels_last: bool | None = None, scale_lr: bool = False):
        self.card, self.recipe = card, Recipe.from_card(card)
        self.dataset = dataset or card.data
        self.device = resolve_device(device)
        self.cuda = self.device.type == "cuda"
        self.seed = card.seed if seed is None else seed
        self.epochs = int(epochs or card.epochs)
        self.progress, self.max_batches = progress, max_batches
        self.run_dir = run_dir or RUNS_DIR / (card.name if self.dataset == card.data
                                              else f"{card.name}-{self.dataset}")
        seed_everything(self.seed)
        self._load_data(source, resident, batch_size)
        self.augment = self.recipe.augment and self.dataset != "digits"  # 8x8 digits: no crop / flip
        self.amp = (self.cuda and self.recipe.amp) if amp is None else bool(amp)
        self.channels_last = self.cuda if channels_last is None else bool(channels_last)
        self.model = build_model(with_data(card, self.dataset)).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        r = self.recipe
        self.lr = scaled_lr(r, self.batch_size) if scale_lr else r.lr
        self.opt = make_optimizer(self.model, r, self.lr)
        self.sched = make_scheduler(self.opt, r, self.epochs * self.steps_per_epoch)
        self.schedule = (MixedSchedule(r.pool, r.slots, r.clean_slots, self.seed) if r.kind == "adversarial"
                         else MixedSchedule([], 1, 1))
        self.attacks = training_attacks(r) if r.kind == "adversarial" else {}
        self.certified = CertifiedLoss(self.model, r, self.steps_per_epoch) if r.kind == "certified" else None
        self.attack_gen = torch.Generator(device=self.device).manual_seed(self.seed + 104729)
        self.epoch, self.elapsed, self.history = 0, 0.0, []

    def _load_data(self, source: str, resident: bool, batch_size: int | None) -> None:
        """The uint8 NCHW training set, on the training device when ``resident`` (else in host memory, pinned
        for CUDA, and copied batch by batch)."""
        ts = load_train(self.dataset, source=source, progress=self.progress)
        self.n_train = len(ts.y)
        x = np.require(ts.x, requirements=["C", "W"])  # a read-only (memory-mapped) cache is copied
        self.data_device = self.device if resident else torch.device("cpu")
        self.x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(self.data_device)
        self.y = torch.from_numpy(np.asarray(ts.y, dtype=np.int64)).to(self.data_device)
        if self.cuda and not resident:
            self.x, self.y = self.x.pin_memory(), self.y.pin_memory()
        bs = int(batch_size or self.recipe.batch_size)
        self.batch_size = max(1, min(bs, self.n_train // 10)) if self.n_train < 10 * bs else bs
        self.steps_per_epoch = self.n_train // self.batch_size
        if self.max_batches:
            self.steps_per_epoch = min(self.steps_per_epoch, self.max_batches)

    # -- one iteration (no host synchronisation: losses and counts stay on the device)
    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb = self.x[idx].to(self.device, non_blocking=True).float().div_(255.0)
        if self.augment:
            xb = augment(xb)
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, self.y[idx].to(self.device, non_blocking=True)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def adversarial(self, name: str | None, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if name is None:
            return xb
        atk = self.attacks[name]
        with self.autocast():
            x_adv = atk(self.model, xb, yb, generator=self.attack_gen)
        if getattr(atk, "norm", "linf") != "linf" or getattr(atk, "eps", self.recipe.eps) > self.recipe.eps:
            x_adv = project_linf(x_adv, xb, self.recipe.eps)  # the training budget is L-inf eps
        return x_adv.detach()

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns the loss and the number of correct predictions as device tensors."""
        self.model.train()
        with self.autocast():
            logits = self.model(xb)
            if self.certified is not None:
                loss = self.certified(logits, xb, yb, self.sched.last_epoch)
            else:
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
        t0 = time.perf_counter()
        perm = torch.randperm(self.n_train, device=self.data_device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        counts: dict[str, int] = {}
        bar = tqdm(range(self.steps_per_epoch), desc=f"{self.card.name} epoch {self.epoch + 1}/{self.epochs}",
                   disable=not self.progress, leave=False, unit="it", file=sys.stderr)
        for it in bar:
            xb, yb = self.batch(perm[it * self.batch_size:(it + 1) * self.batch_size])
            name = self.schedule.draw()
            counts[name or "clean"] = counts.get(name or "clean", 0) + 1
            loss, corr = self.step(self.adversarial(name, xb, yb), yb)
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
        saved = (self.model, self.opt, self.sched)
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(self.device) if self.cuda else None
        self.model = copy.deepcopy(saved[0])
        self.opt = make_optimizer(self.model, self.recipe, self.lr)
        self.sched = make_scheduler(self.opt, self.recipe, 10 ** 6)
        try:
            xb, yb = self.batch(torch.arange(self.batch_size, device=self.data_device))
            cost = {kind: self._time_step(kind, xb, yb, reps) for kind in [None, *self.attacks]}
        finally:
            self.model, self.opt, self.sched = saved
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, self.device)
        r = self.recipe
        per_it = cost[None]
        if r.kind == "adversarial":
            p_clean = r.clean_slots / r.slots
            per_it = p_clean * cost[None] + (1 - p_clean) * sum(cost[k] for k in self.attacks) / len(self.attacks)
        return per_it * self.steps_per_epoch * 1.1  # + data indexing, bookkeeping, epoch checkpoint

    def _time_step(self, kind: str | None, xb: torch.Tensor, yb: torch.Tensor, reps: int) -> float:
        """Median seconds of one iteration of ``kind`` (the first of ``reps + 1`` is a warm-up)."""
        ts = []
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            self.step(self.adversarial(kind, xb, yb), yb)
            if self.cuda:
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts[1:]))
