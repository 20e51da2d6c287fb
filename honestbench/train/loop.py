"""``train()``: a whole training run of one model card (resume, time-fitted schedule, checkpoint, card
update) and its :class:`TrainResult`. Times in seconds; accuracies as fractions in [0, 1]."""

from __future__ import annotations

import datetime
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from honestbench.core.errors import BenchError
from honestbench.core.io import atomic_path, sha256_file
from honestbench.data import load_eval
from honestbench.nets import is_stochastic
from honestbench.train.optim import set_total_epochs
from honestbench.train.trainer import RUNS_DIR, Trainer, with_data
from honestbench.zoo import Card, build_model, clean_accuracy, freeze, get_card
from honestbench.zoo.writing import write_result


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


def machine_string(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU {os.cpu_count()} cores ({platform.processor() or platform.machine()}), " \
           f"{torch.get_num_threads()} threads, torch {torch.__version__}"


def train(card: Card | str, *, epochs: int | None = None, resume: bool = False, out: str | None = None,
          update_card: bool = False, max_minutes: float | None = None, fit_minutes: float | None = None,
          batch_size: int | None = None, dataset: str | None = None, source: str = "npz",
          device: str = "auto", seed: int | None = None, max_batches: int | None = None,
          progress: bool = True, eval_passes: int | None = None, runs_dir: str | Path | None = None,
          log=print, **flags) -> TrainResult:
    """Train ``card`` (see :mod:`honestbench.train`). ``fit_minutes`` first times a few batches and lowers the
    number of epochs so the whole schedule fits in that many minutes; ``max_minutes`` stops cleanly after
    the epoch that passes it (resume later with ``resume=True``). ``flags``: the :class:`Trainer` device flags
    (``resident``, ``amp``, ``channels_last``, ``scale_lr``)."""
    card = get_card(card) if isinstance(card, str) else card
    dataset = dataset or card.data
    if card.external:
        raise BenchError(f"model {card.name!r} is an external checkpoint; it is not trained by bench")
    if update_card and dataset != card.data:
        raise BenchError(f"--update-card needs the card's own data ({card.data}), not {dataset}")
    t_start = time.perf_counter()
    run_dir = Path(runs_dir or RUNS_DIR) / (card.name if dataset == card.data else f"{card.name}-{dataset}")
    kw = dict(batch_size=batch_size, dataset=dataset, source=source, device=device, seed=seed,
              max_batches=max_batches, progress=progress, run_dir=run_dir, **flags)
    tr = _start(card, Trainer(card, epochs=epochs, **kw), kw, resume, fit_minutes, log)
    log(f"{card.name}: {tr.recipe.kind} recipe{' + ELBO' if tr.recipe.elbo else ''}, {tr.dataset} "
        f"({tr.n_train} images, batch {tr.batch_size} x {tr.steps_per_epoch} steps, lr {tr.lr:g}), "
        f"{tr.epochs} epochs on {tr.device}{' (bf16 autocast)' if tr.amp else ''}")
    _run_epochs(tr, t_start, fit_minutes, max_minutes, log)
    ckpt = _save_weights(tr, card, dataset, out)
    res = TrainResult(card.name, ckpt, tr.epoch, tr.epochs, tr.elapsed, tr.epoch >= tr.epochs, tr.history,
                      sha256=sha256_file(ckpt))
    log(f"{card.name}: wrote {_rel(ckpt)} ({ckpt.stat().st_size / 1e6:.2f} MB, sha256 {res.sha256[:12]}...)"
        + ("" if res.finished else " (partial: the schedule is not finished)"))
    if update_card or eval_passes:
        passes = _measure_clean(res, card, dataset, eval_passes, log)
    if update_card:
        if ckpt.resolve() != card.checkpoint_path().resolve():
            raise BenchError(f"--update-card needs the card's checkpoint path, not {ckpt}")
        write_result(card.path, card_result(tr, res, passes))
        log(f"{card.name}: updated {_rel(card.path)} [result]")
    log(f"{card.name}: done in {time.perf_counter() - t_start:.0f}s wall ({tr.elapsed:.0f}s training)")
    return res


def _start(card: Card, tr: Trainer, kw: dict, resume: bool, fit_minutes: float | None, log) -> Trainer:
    """Resume from ``last.pt`` (its saved schedule fixes the epochs), or fit the schedule to ``fit_minutes``."""
    last = tr.run_dir / "last.pt"
    if resume and last.is_file():
        if fit_minutes:
            s = torch.load(last, map_location="cpu", weights_only=True)
            if s.get("epochs") != tr.epochs:
                tr = Trainer(card, epochs=int(s["epochs"]), **kw)
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
    return tr


def _run_epochs(tr: Trainer, t_start: float, fit_minutes: float | None, max_minutes: float | None, log) -> None:
    """Epochs until the schedule ends, the fitted time runs out or ``max_minutes`` passes; a checkpoint each."""
    name = tr.card.name
    session_t0 = time.perf_counter()
    while tr.epoch < tr.epochs:
        rec = tr.run_epoch()
        tr.save_state()
        mix = ", ".join(f"{k} {v}" for k, v in sorted(rec["batches"].items()))
        log(f"{name}: epoch {rec['epoch']}/{tr.epochs} loss {rec['loss']:.4f} train-acc "
            f"{rec['train_acc']:.4f} {rec['time_s']:.1f}s [{mix}]")
        if fit_minutes and tr.epoch < tr.epochs:  # re-fit the schedule to the time actually measured
            can = int((fit_minutes * 60 - (time.perf_counter() - t_start)) / (rec["time_s"] * 1.05))
            if tr.epoch + can < tr.epochs:
                if can <= 0:
                    log(f"{name}: out of time after epoch {tr.epoch}/{tr.epochs} (--fit-minutes)")
                    return
                log(f"{name}: epochs take {rec['time_s']:.1f}s; schedule shortened to {tr.epoch + can} epochs")
                set_total_epochs(tr, tr.epoch + can)
        if max_minutes is not None and tr.epoch < tr.epochs and \
                time.perf_counter() - session_t0 > max_minutes * 60:
            log(f"{name}: stopping after epoch {tr.epoch}/{tr.epochs} (--max-minutes {max_minutes:g}); "
                f"continue with `bench train {name} --resume`")
            return


def _save_weights(tr: Trainer, card: Card, dataset: str, out: str | None) -> Path:
    """The weights-only float32 CPU state dict, at ``out``, the card's checkpoint or ``run_dir/model.pt``."""
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
    return ckpt


def _measure_clean(res: TrainResult, card: Card, dataset: str, eval_passes: int | None, log) -> int:
    """Clean accuracy of the saved checkpoint into ``res``; returns the number of passes."""
    ev = load_eval(dataset)
    # the card's figure is measured on the CPU, from the saved checkpoint: GPU kernels round differently
    # and can flip a borderline image, and `bench check` / the acceptance re-measure on the CPU
    model = freeze(build_model(with_data(card, dataset)))
    model.load_state_dict(torch.load(res.checkpoint, map_location="cpu", weights_only=True))
    passes = eval_passes or (5 if is_stochastic(model) else 1)
    acc, std = clean_accuracy(model, ev.x, ev.y, passes=passes, device="cpu")
    res.clean_accuracy, res.clean_accuracy_std = acc, std
    log(f"{card.name}: clean accuracy {acc:.4f} (+- {std:.4f}, {passes} passes) on {len(ev.y)} "
        f"{dataset} test images")
    return passes


def card_result(tr: Trainer, res: TrainResult, passes: int) -> dict:
    """The card's ``[result]`` table after training (``bench train NAME --update-card``)."""
    scale = " --scale-lr" if tr.lr != tr.recipe.lr else ""
    return {
        "sha256": res.sha256, "clean_accuracy": round(res.clean_accuracy, 4),
        "clean_accuracy_std": round(res.clean_accuracy_std, 4), "clean_accuracy_passes": passes,
        "clean_accuracy_device": "cpu",
        "epochs_done": tr.epoch, "epochs_planned": tr.epochs, "train_time_s": round(tr.elapsed, 1),
        "s_per_epoch": round(tr.elapsed / max(tr.epoch, 1), 2), "batch_size": tr.batch_size,
        **({"lr": tr.lr} if scale else {}),
        "machine": machine_string(tr.device),
        "trained_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": f"bench train {tr.card.name} --epochs {tr.epochs} --batch-size {tr.batch_size}{scale} "
                   "--update-card",
    }


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)
