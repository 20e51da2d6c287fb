"""Estimate a zoo card's training time on the CPU (the 2-core figure of the cards) from a few timed batches.

THIS IS AN EXTRAPOLATION FROM K TIMED BATCHES, NOT A FULL TRAINING RUN. For each card it builds the card's real
training run (:class:`honestbench.train.trainer.Trainer`: the card's model, recipe, optimiser, schedule and training
attacks, on the shipped CIFAR-10 training images) on the CPU and runs training iterations through the trainer's own
loop (:meth:`honestbench.train.trainer.Trainer.run_epoch`, one batch per call: data indexing + augmentation, the
mixed-schedule draw, the training attack, forward, backward, optimiser and LR step): ``W`` warm-up batches (not
timed), then ``K`` timed batches at the card's recipe batch size ``B``. Loading the training set (the one-off JPEG
decode and its cache) and building the model happen in ``Trainer(...)``, before the first batch: they are not timed.

Units: seconds per batch, seconds per epoch, hours per planned training run.

* per batch (s): the mean time of the timed batches of each kind (clean, or one attack of the recipe's pool),
  weighted by the recipe's expected share of that kind (``clean_slots / slots`` clean, the rest split evenly
  over the pool), so a short run whose random draws over- or under-sample an expensive attack does not skew the
  estimate. A kind the K random draws missed gets one extra timed batch of that kind (same loop, the draw fixed)
  so that every kind is measured; ``kinds`` in the output lists the per-kind means and counts.
* per epoch (s) = per batch x batches per epoch, where batches per epoch = 50,000 // B (the trainer drops the
  last partial batch); epoch-end checkpoint writing is not included (a fraction of a second).
* training (h) = per epoch x the card's planned ``epochs`` / 3600.

Timing uses ``BENCH_THREADS`` torch threads (set ``BENCH_THREADS=2`` for the cards' 2-core figure) and the CLI's
OpenMP wait policy (PASSIVE when the 1-minute load average is >= 0.5 at start). The machine is shared: the
1-minute load average before and after is recorded with the figure. No checkpoint is written; the trainer's run
directory is a temporary directory. ``--write-log`` writes ``cpu_2core_s_per_batch``, ``cpu_2core_s_per_epoch``,
``cpu_2core_train_h`` and ``cpu_2core_measured`` under the command into ``results/training/NAME.md`` (a
measurement log: the card keeps its recipe and result).

    BENCH_THREADS=2 flock /tmp/bench-cpu.lock .venv/bin/python scripts/cpu_train_time.py --all --write-log
    BENCH_THREADS=2 .venv/bin/python scripts/cpu_train_time.py pgd-at --timed 10 --warmup 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: timed batches per card where the default K would take minutes (WRN-34-1 with PGD-20 per batch)
DEFAULT_TIMED = 10
SLOW_BACKBONE_TIMED = {"wrn-34-1": 3}
SLOW_BACKBONE_WARMUP = {"wrn-34-1": 1}


class _FixedDraw:
    """Stands in for :class:`honestbench.train.recipe.MixedSchedule` for one batch: always draws ``kind``."""

    def __init__(self, kind: str | None):
        self.kind = kind

    def draw(self) -> str | None:
        return self.kind


def expected_shares(recipe: Any) -> dict[str, float]:
    """The recipe's expected share of batches of each kind (``'clean'`` or an attack name); sums to 1: the
    trainer's own schedule (:meth:`honestbench.train.recipe.MixedSchedule.shares`)."""
    from honestbench.train import MixedSchedule

    if recipe.kind != "adversarial":
        return {"clean": 1.0}
    return MixedSchedule(recipe.pool, recipe.slots, recipe.clean_slots).shares()


def load_avg() -> float:
    """The 1-minute load average (nan where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def time_batches(tr: Any, shares: dict[str, float], timed: int,
                 warmup: int) -> tuple[list[float], list[str], float]:
    """``warmup`` untimed then ``timed`` timed batches through ``tr.run_epoch()`` (one batch each), plus one
    batch of each kind the random draws missed. Returns each batch's seconds, its kind, and the plain mean of
    the ``timed`` draws."""
    for _ in range(warmup):
        tr.run_epoch()
    times: list[float] = []
    kinds: list[str] = []

    def one_batch() -> None:
        t0 = time.perf_counter()
        rec = tr.run_epoch()  # one batch: max_batches=1
        times.append(time.perf_counter() - t0)
        (kind,) = rec["batches"]
        kinds.append(kind)

    for _ in range(timed):
        one_batch()
    raw_mean = sum(times) / len(times)
    schedule = tr.schedule
    for kind in shares:  # a kind the random draws missed: one batch of it, through the same loop
        if kind not in kinds:
            tr.schedule = _FixedDraw(None if kind == "clean" else kind)
            try:
                one_batch()
            finally:
                tr.schedule = schedule
    return times, kinds, raw_mean


def measure_card(card: Any, *, timed: int = DEFAULT_TIMED, warmup: int = 2, dataset: str | None = None,
                 batch_size: int | None = None, runs_dir: str | Path | None = None,
                 log: Any = print) -> dict[str, Any]:
    """Time ``warmup`` + ``timed`` training batches of ``card`` on the CPU through the trainer's own loop and
    extrapolate to one epoch and to the card's planned epochs (module docstring). Times in seconds.

    Returns ``{'card', 'dataset', 'batch_size', 'batches_per_epoch', 'n_train', 'epochs', 'timed', 'warmup',
    'batch_s' (each timed batch), 'batch_kinds', 'kinds' ({kind: {'share', 'mean_s', 'count'}}),
    's_per_batch', 's_per_batch_raw_mean', 's_per_epoch', 'train_s', 'train_h', 'threads', 'omp_wait_policy',
    'load_before', 'load_after', 'setup_s', 'date'}``.
    """
    import torch

    from honestbench.train import Trainer

    if timed < 1 or warmup < 0:
        raise ValueError("need timed >= 1 and warmup >= 0")
    tmp = None
    if runs_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="cpu_train_time_")
        runs_dir = tmp.name
    try:
        t_setup = time.perf_counter()
        # max_batches=1: every run_epoch() call is one training iteration (timed one by one); data loading,
        # model building and attack construction happen here, outside the timed part
        tr = Trainer(card, epochs=card.epochs, batch_size=batch_size, dataset=dataset, device="cpu",
                     max_batches=1, progress=False, run_dir=Path(runs_dir) / card.name)
        setup_s = time.perf_counter() - t_setup
        shares = expected_shares(tr.recipe)
        load_before = load_avg()
        times, kinds, raw_mean = time_batches(tr, shares, timed, warmup)
        load_after = load_avg()
    finally:
        if tmp is not None:
            tmp.cleanup()
    per_kind = {}
    for kind, share in shares.items():
        ts = [t for t, k in zip(times, kinds, strict=True) if k == kind]
        per_kind[kind] = {"share": share, "mean_s": sum(ts) / len(ts), "count": len(ts)}
    s_per_batch = sum(v["share"] * v["mean_s"] for v in per_kind.values())
    batches_per_epoch = tr.n_train // tr.batch_size
    s_per_epoch = s_per_batch * batches_per_epoch
    train_s = s_per_epoch * tr.epochs
    out = {
        "card": card.name, "dataset": tr.dataset, "batch_size": tr.batch_size,
        "batches_per_epoch": batches_per_epoch, "n_train": tr.n_train, "epochs": tr.epochs,
        "timed": timed, "warmup": warmup, "batch_s": times, "batch_kinds": kinds, "kinds": per_kind,
        "s_per_batch": s_per_batch, "s_per_batch_raw_mean": raw_mean, "s_per_epoch": s_per_epoch,
        "train_s": train_s, "train_h": train_s / 3600.0, "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "load_before": load_before, "load_after": load_after, "setup_s": setup_s,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    mix = ", ".join(f"{k} {v['count']} x {v['mean_s']:.3f}s" for k, v in per_kind.items())
    log(f"{card.name}: {len(times)} timed batches of {tr.batch_size} after {warmup} warm-up "
        f"({mix}); "
        f"{s_per_batch:.3f} s/batch x {batches_per_epoch} = {s_per_epoch:.0f} s/epoch; {tr.epochs} epochs "
        f"= {out['train_h']:.2f} h on {out['threads']} threads (load {load_before:.2f} -> {load_after:.2f})")
    return out


def card_result(m: dict[str, Any], command: str) -> dict[str, Any]:
    """The fields ``--write-log`` writes (and the command that measured them, ``cpu_2core_command``)."""
    return {
        "cpu_2core_s_per_batch": round(m["s_per_batch"], 3),
        "cpu_2core_s_per_epoch": round(m["s_per_epoch"], 1),
        "cpu_2core_train_h": round(m["train_h"], 2),
        "cpu_2core_measured": (
            f"extrapolated from {m['timed']} batches of {m['batch_size']} after {m['warmup']} warm-up "
            f"({sum(v['count'] for v in m['kinds'].values())} timed in all), {m['threads']} threads, "
            f"OMP_WAIT_POLICY {m['omp_wait_policy']}, 1-min load avg {m['load_before']:.2f}-"
            f"{m['load_after']:.2f}, {m['date']}"),
        "cpu_2core_command": command,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="model card names")
    ap.add_argument("--all", action="store_true", help="every card with a [recipe] (not external checkpoints)")
    ap.add_argument("--timed", type=int, default=None,
                    help=f"timed batches K (default {DEFAULT_TIMED}; {SLOW_BACKBONE_TIMED} per backbone)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed warm-up batches W (default 2; 1 for WRN)")
    ap.add_argument("--json", dest="json_path", default=None, help="write every measurement to this JSON file")
    ap.add_argument("--write-log", "--update-card", dest="write_log", action="store_true",
                    help="write the estimate under its command into results/training/NAME.md")
    args = ap.parse_args(argv)

    from honestbench.cli.main import set_omp_wait_policy

    set_omp_wait_policy()  # as the bench CLI does, before torch loads
    from honestbench.core.io import write_json_atomic
    from honestbench.core.threads import configure_threads

    configure_threads()  # BENCH_THREADS
    from honestbench.zoo import get_card, list_cards
    from honestbench.zoo.writing import write_training_log

    if args.all:
        cards = [c for c in list_cards() if c.recipe and not c.external]
    elif args.names:
        cards = [get_card(n) for n in args.names]
    else:
        ap.error("name a card or pass --all")
    results = []
    for card in cards:
        timed = args.timed or SLOW_BACKBONE_TIMED.get(card.backbone, DEFAULT_TIMED)
        warmup = args.warmup if args.warmup is not None else SLOW_BACKBONE_WARMUP.get(card.backbone, 2)
        m = measure_card(card, timed=timed, warmup=warmup)
        results.append(m)
        if args.write_log:
            command = (f"BENCH_THREADS={m['threads']} python scripts/cpu_train_time.py {card.name} "
                       f"--timed {timed} --warmup {warmup} --write-log")
            fields = card_result(m, command)
            path = write_training_log(card.name, "CPU training time, 2 cores (extrapolated)",
                                      {k: v for k, v in fields.items() if k != "cpu_2core_command"}, command)
            print(f"{card.name}: wrote {path}")
    if args.json_path:
        write_json_atomic(args.json_path, results)
        print(f"wrote {args.json_path}")
    print(json.dumps([{k: m[k] for k in ("card", "batch_size", "s_per_batch", "s_per_epoch", "train_h")}
                      for m in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
