"""Measure a zoo model's clean accuracy on the 1,017 exact CIFAR-10 test images (mean over R stochastic
passes) and, with --update-card, write it into the card's [result] table (keeping the other fields).

    python scripts/measure_clean.py slwta-wrn34-1-panousis2021 --passes 10 --update-card
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--passes", type=int, default=None, help="default: 10 for stochastic models, else 1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--update-card", action="store_true")
    args = ap.parse_args()

    import torch

    from honestbench.data import load_eval
    from honestbench.nets import is_stochastic
    from honestbench.zoo import clean_accuracy, get_card, load_card_model
    from honestbench.zoo.writing import write_result

    card = get_card(args.name)
    model = load_card_model(card, device=args.device)
    passes = args.passes or (10 if is_stochastic(model) else 1)
    ev = load_eval(card.data)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    mean, std = clean_accuracy(model, ev.x, ev.y, passes=passes, batch_size=256)
    dt = time.perf_counter() - t0
    print(f"{card.name}: clean accuracy {mean:.4f} +- {std:.4f} (std over {passes} passes) on {len(ev.y)} "
          f"{card.data} test images, {dt:.0f}s on {args.device}")
    if args.update_card:
        result = dict(card.result)
        result.update({"clean_accuracy": round(mean, 4), "clean_accuracy_std": round(std, 4),
                       "clean_accuracy_passes": passes, "clean_accuracy_device": args.device,
                       "clean_accuracy_command": f"python scripts/measure_clean.py {card.name} "
                                                 f"--passes {passes} --seed {args.seed} --update-card"})
        write_result(card.path, result)
        print(f"{card.name}: wrote {card.path.name} [result]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
