"""``bench crosscheck``: our attack kernels against torchattacks (and ART with ``--art``) on one model; prints a
progress bar per (attack, library), the comparison table, writes it as JSON when asked, exits 1 when a verdict
fails."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

#: paired seeds per randomised row by default (random start, noise, a stochastic model)
DEFAULT_SEEDS = 2
#: ``--full``: every row, ART and this many paired seeds (the complete check: tens of minutes on 2 cores)
FULL_SEEDS = 8


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    """Run :func:`honestbench.devtools.crosscheck.run_crosscheck` with the command's flags; 0 when every verdict
    holds."""
    # imported here: keeps `bench --help` from loading torch
    from honestbench.core.io import write_json_atomic
    from honestbench.core.threads import resolve_device
    from honestbench.devtools.crosscheck import format_table, run_crosscheck
    from honestbench.devtools.crosscheck.driver import default_rows, resolve_rows
    from honestbench.pipeline.models import parse_normalize

    full = getattr(args, "full", False)
    art = (getattr(args, "art", False) or full) and not getattr(args, "no_art", False)
    references = ("torchattacks", "art") if art else ("torchattacks",)
    seeds = getattr(args, "seeds", None)
    seeds = (FULL_SEEDS if full else DEFAULT_SEEDS) if seeds is None else seeds
    attacks = getattr(args, "attacks", None) or "default"
    if attacks == "default":
        attacks = "all" if full else default_rows(references)
    resolve_rows(attacks)  # a bad attack name or parameter fails before the model loads
    dataset = getattr(args, "dataset", None)
    normalize = parse_normalize(getattr(args, "normalize", None), dataset or "cifar10")
    result = run_crosscheck(
        args.model, device=resolve_device(getattr(args, "device", "auto")), dataset=dataset,
        n=getattr(args, "n", 128), source=getattr(args, "data", "npz"), seed=getattr(args, "seed", 0),
        attacks=attacks, random_seeds=seeds, references=references, normalize=normalize, log=_stderr,
        progress=not getattr(args, "quiet", False),
    )
    print(f"clean accuracy {result['clean_accuracy']:.2f} % on {result['n']} images; robust accuracy in %")
    print(format_table(result))
    print(f"{result['seconds']:.0f} s for the comparisons")
    if getattr(args, "json_path", None):
        write_json_atomic(args.json_path, result)
        print(f"wrote {args.json_path}")
    return 0 if result["all_ok"] else 1


def add_parser(sub: argparse._SubParsersAction, data_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """``bench crosscheck``'s flags (defaults sized to finish in minutes on 2 CPU cores; ``--full`` for the rest)."""
    p = sub.add_parser(
        "crosscheck", help="compare our kernels with torchattacks (and ART) on one model",
        description="Compare our attack kernels with torchattacks (and ART with --art) on one model and the same "
                    "images. Default: the FGSM, PGD, noise and EOT rows (EOT rows at 2 passes instead of the "
                    "registered 20), torchattacks only, 2 paired seeds per randomised row, --n 128: a few "
                    "minutes on 2 CPU cores for a small CNN (zoo 'regular'). The expensive references run when "
                    "asked: --art (ART, and the cw-l2 row it checks), --seeds N, --attacks all (the registered "
                    "defaults), or --full for all of them.")
    p.add_argument("--model", default="tiny-digits",
                   help="as bench run takes it: a zoo name, a card file, [NAME=]FILE.py:builder[@weights.pt], "
                        "pkg.module:builder[@weights.pt], a TorchScript .pt or torch.export .pt2 file; or "
                        "tiny-digits (trained on the fly; the default)")
    p.add_argument("--attacks", default="default",
                   help="default (every row but cw-l2, which only ART checks, EOT rows at 2 passes; with --art also "
                        "cw-l2), all (every row at the registered defaults), or names with :key=value parameters "
                        "(pgd-linf:eps=0.1:steps=20), comma-separated")
    p.add_argument("--json", dest="json_path", default=None, help="write the comparison to this JSON file")
    p.add_argument("--seeds", type=int, default=None,
                   help="paired seeds per randomised row (random start, noise, stochastic model; default 2, 8 with "
                        "--full)")
    p.add_argument("--art", action="store_true", help="also compare with ART (pip install "
                   "'honestbench[crosscheck]'), including its CW-L2: slow (ART's CW takes minutes)")
    p.add_argument("--full", action="store_true",
                   help="the complete check: --attacks all, --art and 8 seeds (tens of minutes on 2 cores)")
    p.add_argument("--no-art", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    p.add_argument("--normalize", default=None, metavar="STATS", help="as bench run: (x - mean) / std in front of "
                   "--model: cifar10, digits, 255 or M,M,M/S,S,S")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    data_flags(p)  # --data, --n, --device, --seed: as every command (honestbench.cli.main)
    p.set_defaults(handler=main, n=128)
