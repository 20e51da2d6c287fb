"""``bench speed``: time our kernels against torchattacks, ART and the hardware limit; prints one table per
section and the headline ratios, writes the figures as JSON when asked."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


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


def add_parser(sub: argparse._SubParsersAction, data_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """``bench speed``'s flags."""
    p = sub.add_parser("speed", help="time our kernels against torchattacks, ART and the hardware limit")
    p.add_argument("--json", dest="json_path", default=None, help="write the timings to this JSON file")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3,
                   help="timed rounds, interleaved and rotated (the tables give median, fastest and CPU-time ratios)")
    p.add_argument("--quick", action="store_true", help="small CNN only (skip WRN and suite timings)")
    p.add_argument("--archs", default=None,
                   help="pgd-cost sections to run, comma-separated: small, wrn-34-1, wrn-34-10 (default: small and, "
                        "unless --quick, wrn-34-1; wrn-34-10 is for a GPU)")
    p.add_argument("--precision", default="fp32",
                   help="fp32, bf16 or fp32,bf16: each pgd-cost section once per precision (bf16 autocast); with "
                        "both, robust accuracy of --precision-model under each against the 0.5 pp bar")
    p.add_argument("--precision-model", default="pgd-at", help="trained zoo model of the precision check")
    p.add_argument("--no-art", action="store_true", help="do not time ART's PGD")
    data_flags(p)  # --data, --n, --device, --seed: as every command (honestbench.cli.main)
    p.set_defaults(handler=main)
