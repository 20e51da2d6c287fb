"""PGD-10 cost on the small CNN, batch 256, CPU: our kernel vs 10 x (forward + input gradient), torchattacks
and ART, measured side by side in one run (issue 3's acceptance benchmark; ``bench speed`` runs the same
section plus the heavier ones).

    .venv/bin/python benchmarks/pgd_cost.py [--repeats 5] [--batch 256] [--json results/speed/pgd_cost.json]

Prints a table of median times and the ratios ``pgd_over_limit`` (target <= 1.05), ``pgd_over_torchattacks``
(target <= 1.0) and ``art_over_pgd``.
"""

from __future__ import annotations

import argparse
import sys

import torch

from bench.tools.speed import speed_command


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds; the median is reported")
    ap.add_argument("--json", dest="json_path", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data", default="npz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--full", action="store_true", help="also WRN-34-1 (minutes)")
    ap.add_argument("--no-art", action="store_true", help="skip ART (its run costs ~1.5x ours)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.quick = not args.full
    return speed_command(args)


if __name__ == "__main__":
    sys.exit(main())
