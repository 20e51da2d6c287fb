"""Train zoo cards in one process within a wall-clock budget (the training driver of scripts/gpu_job.sh).

Each card gets a share of the budget (weights below, scaled to --total-minutes). Without --epochs,
`honestbench.train` times a few batches first and shortens the card's schedule so it fits its share (`fit_minutes`);
with --epochs the schedule is fixed and training stops after the epoch that passes the share (`max_minutes`),
to be continued with --resume (the epoch checkpoints live in --runs-dir). Cards train with `--update-card`
(not with --max-batches or another --dataset). A failing card is reported and skipped; the others go on.
After every card the checkpoints, cards and a JSON log are copied to --copy-to so a timeout keeps what is done.
Usage: python scripts/train_zoo.py [--total-minutes 8] [--cards a,b] [--epochs N] [--resume] [--copy-to DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# (card, share weight, batch size on the GPU): AT cards cost more than a natural epoch, the WRN the most.
PLAN = [
    ("regular", 0.5, 512),
    ("pgd-at", 1.0, 512),
    ("slwta", 1.0, 512),
    ("smoothing", 0.4, 512),
    ("pni", 0.4, 512),
    ("gaussian-smoothing", 0.4, 512),
    ("smoothing-pgd", 0.6, 512),
    ("smoothing-pgd-fgsm", 0.6, 512),
    ("smoothing-pgd-fgsm-cw", 0.7, 512),
    ("smoothing-pgd-fgsm-cw-pni", 0.7, 512),
    ("slwta-wrn34-1", 2.6, 256),
]
FIXED_OVERHEAD_MIN = 0.12  # per card: data load, probe, final evaluation


def copy_out(dest: Path | None, log: list, cards: list[str]) -> None:
    """The JSON log and, for cards written by --update-card, their card and checkpoint (nothing else: ``dest``
    travels back and forth with the GPU job)."""
    if dest is None:
        return
    zoo = REPO / "honestbench" / "zoo" / "models"  # the zoo's package data (cards and small checkpoints)
    (dest / zoo.relative_to(REPO) / "ckpt").mkdir(parents=True, exist_ok=True)
    for name in cards:
        for src in (zoo / f"{name}.toml", zoo / "ckpt" / f"{name}.pt"):
            if src.is_file():
                shutil.copy2(src, dest / src.relative_to(REPO))
    (dest / "train_zoo_log.json").write_text(json.dumps(log, indent=2, default=str))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--total-minutes", type=float, default=8.0)
    ap.add_argument("--cards", default=None, help="comma-separated subset (default: all in PLAN order)")
    ap.add_argument("--copy-to", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-batches", type=int, default=None, help="smoke test: batches per epoch")
    ap.add_argument("--batch-size", type=int, default=None, help="override the plan's batch sizes")
    ap.add_argument("--epochs", type=int, default=None, help="a fixed schedule of N epochs (no time fitting)")
    ap.add_argument("--resume", action="store_true", help="continue from --runs-dir/NAME/last.pt")
    ap.add_argument("--runs-dir", default=None, help="epoch checkpoints (default runs/)")
    ap.add_argument("--dataset", default=None, help="train on another dataset (digits: dry runs)")
    ap.add_argument("--scale-lr", action="store_true", help="linear LR scaling for batches above the recipe's")
    ap.add_argument("--out-dir", default=None, help="write checkpoints here instead of the cards' (no update)")
    return ap.parse_args()


def is_smoke(args: argparse.Namespace) -> bool:
    """A smoke / dry run: its checkpoints go to --out-dir (or /tmp), no card is updated."""
    return args.max_batches is not None or args.dataset is not None or args.out_dir is not None


def train_card(name: str, bs: int, share: float, args: argparse.Namespace):
    """One card's training run within ``share`` minutes."""
    from honestbench.train import train

    smoke = is_smoke(args)
    out = None
    if smoke:
        out_dir = Path(args.out_dir or "/tmp")
        out_dir.mkdir(parents=True, exist_ok=True)
        out = str(out_dir / f"train_zoo_smoke_{name}.pt")
    return train(name, update_card=not smoke, fit_minutes=None if args.epochs else share,
                 max_minutes=share if args.epochs else share * 1.3, epochs=args.epochs, resume=args.resume,
                 batch_size=args.batch_size or bs, device=args.device, progress=False,
                 max_batches=args.max_batches, dataset=args.dataset, runs_dir=args.runs_dir, out=out,
                 eval_passes=1 if smoke else None, scale_lr=args.scale_lr, log=lambda m: print(m, flush=True))


def main() -> int:
    args = parse_args()
    import torch

    t0 = time.perf_counter()
    deadline = t0 + args.total_minutes * 60
    plan = [p for p in PLAN if args.cards is None or p[0] in args.cards.split(",")]
    dest = Path(args.copy_to) if args.copy_to else None
    log: list[dict] = []
    print(f"train_zoo: {len(plan)} cards, {args.total_minutes:g} min, device "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}", flush=True)
    for i, (name, weight, bs) in enumerate(plan):
        left_min = (deadline - time.perf_counter()) / 60
        share = left_min * weight / sum(w for _, w, _ in plan[i:]) - FIXED_OVERHEAD_MIN
        if share < 0.05:
            print(f"train_zoo: [{name}] skipped: no time left ({left_min:.2f} min)", flush=True)
            log.append({"card": name, "status": "skipped", "reason": "no time left"})
            continue
        print(f"train_zoo: [{name}] budget {share:.2f} min (elapsed {(time.perf_counter() - t0) / 60:.2f} min)",
              flush=True)
        ts = time.perf_counter()
        try:
            res = train_card(name, bs, share, args)
            log.append({"card": name, "status": "ok" if res.finished else "partial",
                        "epochs_done": res.epochs_done, "epochs": res.epochs,
                        "clean_accuracy": res.clean_accuracy, "train_time_s": round(res.train_time_s, 1),
                        "wall_s": round(time.perf_counter() - ts, 1), "history": res.history})
        except Exception as e:  # one card failing must not stop the others
            traceback.print_exc()
            print(f"train_zoo: [{name}] FAILED: {type(e).__name__}: {e}", flush=True)
            log.append({"card": name, "status": "failed", "error": f"{type(e).__name__}: {e}"})
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        copy_out(dest, log, [] if is_smoke(args) else [r["card"] for r in log if "epochs_done" in r])
    print("train_zoo: summary", flush=True)
    for r in log:
        print(f"  {r['card']:28s} {r['status']:8s} epochs {r.get('epochs_done', '-')}/{r.get('epochs', '-')} "
              f"clean {r.get('clean_accuracy')} train {r.get('train_time_s', '-')}s", flush=True)
    print(f"train_zoo: done in {(time.perf_counter() - t0) / 60:.2f} min", flush=True)
    # 0: every card finished; 3: some stopped at the time limit (resume); 1: some failed or were skipped
    status = {r["status"] for r in log}
    return 0 if status <= {"ok"} else 3 if status <= {"ok", "partial"} else 1


if __name__ == "__main__":
    sys.exit(main())
