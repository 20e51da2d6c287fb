"""``bench crosscheck``: our attack kernels against torchattacks (and ART with ``--art``) on one model; prints a
progress bar per (attack, library), the comparison table, writes it as JSON when asked, exits 1 when a verdict
fails."""

from __future__ import annotations

import argparse
import sys

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
