"""Train every zoo card in one process within a wall-clock budget (the GPU job behind train_zoo_gpu.sh).

Each card gets a share of the budget (weights below, scaled to --total-minutes); `bench.train` times a few
batches first and shortens the card's schedule so it fits its share (`fit_minutes`), then trains with
`--update-card`. A failing card is reported and skipped; the others go on. After every card the
checkpoints, cards and a JSON log are copied to --copy-to (the device machine's $OUT) so a timeout keeps
what is done. Usage: python scripts/train_zoo.py [--total-minutes 8] [--cards a,b] [--copy-to DIR]
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

# (card, share weight, batch size on the GPU): AT cards cost 4-8x a natural epoch, the WRN the most.
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


def copy_out(dest: Path | None, log: list) -> None:
    if dest is None:
        return
    (dest / "models" / "ckpt").mkdir(parents=True, exist_ok=True)
    for p in (REPO / "models").glob("*.toml"):
        shutil.copy2(p, dest / "models" / p.name)
    for p in (REPO / "models" / "ckpt").glob("*.pt"):
        shutil.copy2(p, dest / "models" / "ckpt" / p.name)
    (dest / "train_zoo_log.json").write_text(json.dumps(log, indent=2, default=str))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--total-minutes", type=float, default=8.0)
    ap.add_argument("--cards", default=None, help="comma-separated subset (default: all in PLAN order)")
    ap.add_argument("--copy-to", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-batches", type=int, default=None, help="smoke test: batches per epoch")
    ap.add_argument("--batch-size", type=int, default=None, help="override the plan's batch sizes")
    args = ap.parse_args()

    import torch

    from bench.train import train

    t0 = time.perf_counter()
    deadline = t0 + args.total_minutes * 60
    plan = [p for p in PLAN if args.cards is None or p[0] in args.cards.split(",")]
    dest = Path(args.copy_to) if args.copy_to else None
    log: list[dict] = []
    print(f"train_zoo: {len(plan)} cards, {args.total_minutes:g} min, device "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}", flush=True)
    for i, (name, weight, bs) in enumerate(plan):
        left_min = (deadline - time.perf_counter()) / 60
        rest_weight = sum(w for _, w, _ in plan[i:])
        share = left_min * weight / rest_weight - FIXED_OVERHEAD_MIN
        if share < 0.05:
            print(f"train_zoo: [{name}] skipped: no time left ({left_min:.2f} min)", flush=True)
            log.append({"card": name, "status": "skipped", "reason": "no time left"})
            continue
        elapsed = (time.perf_counter() - t0) / 60
        print(f"train_zoo: [{name}] budget {share:.2f} min (elapsed {elapsed:.2f} min)", flush=True)
        ts = time.perf_counter()
        try:
            res = train(name, update_card=args.max_batches is None, fit_minutes=share,
                        max_minutes=share * 1.3, batch_size=args.batch_size or bs, device=args.device,
                        progress=False,
                        max_batches=args.max_batches,
                        out=None if args.max_batches is None else f"/tmp/train_zoo_smoke_{name}.pt",
                        eval_passes=None if args.max_batches is None else 1,
                        log=lambda m: print(m, flush=True))
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
        copy_out(dest, log)
    print("train_zoo: summary", flush=True)
    for r in log:
        print(f"  {r['card']:28s} {r['status']:8s} epochs {r.get('epochs_done', '-')}/{r.get('epochs', '-')} "
              f"clean {r.get('clean_accuracy')} train {r.get('train_time_s', '-')}s", flush=True)
    print(f"train_zoo: done in {(time.perf_counter() - t0) / 60:.2f} min", flush=True)
    return 0 if all(r["status"] == "ok" for r in log) else 1


if __name__ == "__main__":
    sys.exit(main())
