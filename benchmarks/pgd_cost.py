"""PGD-10 cost on the small CNN, batch 256: our kernel vs 10 x (forward + input gradient), torchattacks and ART,
measured side by side in one run (``bench speed`` runs the same section plus the heavier ones).

    .venv/bin/python benchmarks/pgd_cost.py [--repeats 5] [--batch 256] [--json results/speed/pgd_cost.json]

Prints a table of median times (ms) and the ratios ``pgd_over_limit``, ``pgd_over_torchattacks`` and
``art_over_pgd``.
"""

from __future__ import annotations

import argparse
import sys

import torch

from honestbench.cli.speed import main as speed_command


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
    ap.add_argument("--full", action="store_true", help="also the heavy sections (WRN-34-1, the suite; minutes)")
    ap.add_argument("--no-art", action="store_true", help="skip ART's PGD")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.quick = not args.full
    return speed_command(args)


if __name__ == "__main__":
    sys.exit(main())
