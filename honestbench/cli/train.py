"""``bench train NAME``: train a model card's checkpoint (flags defined in :mod:`honestbench.cli.main`)."""

from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
    """Run :func:`honestbench.train.train` with the parsed flags; exit status 0 when the schedule finished, 3 when it
    stopped early (``--max-minutes``; continue with ``--resume``)."""
    from honestbench.train import train  # imported here: keeps `bench --help` from loading torch

    res = train(args.name, epochs=args.epochs, resume=args.resume, out=args.out, update_card=args.update_card,
                max_minutes=args.max_minutes, fit_minutes=getattr(args, "fit_minutes", None),
                batch_size=args.batch_size, dataset=getattr(args, "dataset", None),
                source=getattr(args, "data", "npz") or "npz", device=getattr(args, "device", "auto"),
                seed=getattr(args, "seed_override", getattr(args, "seed", None)),
                max_batches=getattr(args, "max_batches", None),
                progress=not getattr(args, "no_progress", False), scale_lr=getattr(args, "scale_lr", False))
    return 0 if res.finished else 3
