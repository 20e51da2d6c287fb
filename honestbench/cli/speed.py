"""``bench speed``: time our kernels against torchattacks, ART and the hardware limit; prints one table per
section and the headline ratios, writes the figures as JSON when asked."""

from __future__ import annotations

import argparse
import sys


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    """Run :func:`honestbench.devtools.speed.run_speed` (``--quick``: the light sections only; ``--archs``: these
    ``pgd-cost`` sections; ``--precision``: fp32 and/or bf16) with the command's flags."""
    # imported here: keeps `bench --help` from loading torch
    from honestbench.core.io import write_json_atomic
    from honestbench.core.threads import resolve_device
    from honestbench.devtools.optional import import_art
    from honestbench.devtools.speed import ARCHS, PRECISIONS, SpeedOptions, headline_text, parse_words, run_speed

    archs = parse_words(getattr(args, "archs", None), tuple(ARCHS), "--archs")
    precisions = parse_words(getattr(args, "precision", None), PRECISIONS, "--precision") or ("fp32",)
    opts = SpeedOptions(
        batch=getattr(args, "batch", 256), repeats=getattr(args, "repeats", 3), quick=getattr(args, "quick", False),
        dataset=getattr(args, "dataset", None) or "cifar10", source=getattr(args, "data", "npz"),
        n=getattr(args, "n", None), seed=getattr(args, "seed", 0), art=not getattr(args, "no_art", False),
        archs=archs, precisions=precisions, precision_model=getattr(args, "precision_model", None) or "pgd-at",
    )
    if opts.art:
        import_art()  # ART missing: one line naming the extra (or --no-art), before any timing
    result = run_speed(opts, resolve_device(getattr(args, "device", "auto")), log=_stderr, show=print)
    print(headline_text(result))
    if getattr(args, "json_path", None):
        write_json_atomic(args.json_path, result)
        print(f"wrote {args.json_path}")
    return 0
