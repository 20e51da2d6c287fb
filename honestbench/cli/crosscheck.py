"""``bench crosscheck``: our attack kernels against torchattacks and ART on one model; prints the comparison
table, writes it as JSON when asked, exits 1 when a verdict fails."""

from __future__ import annotations

import argparse
import sys


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    """Run :func:`honestbench.devtools.crosscheck.run_crosscheck` with the command's flags; 0 when every verdict
    holds."""
    # imported here: keeps `bench --help` from loading torch
    from honestbench.core.io import write_json_atomic
    from honestbench.core.threads import resolve_device
    from honestbench.devtools.crosscheck import REFERENCES, format_table, run_crosscheck
    from honestbench.devtools.crosscheck.driver import resolve_rows

    resolve_rows(getattr(args, "attacks", "all"))  # a bad attack name or parameter fails before the model loads
    references = tuple(r for r in REFERENCES if not (r == "art" and getattr(args, "no_art", False)))
    result = run_crosscheck(
        args.model, device=resolve_device(getattr(args, "device", "auto")), dataset=getattr(args, "dataset", None),
        n=getattr(args, "n", 128), source=getattr(args, "data", "npz"), seed=getattr(args, "seed", 0),
        attacks=getattr(args, "attacks", "all"), random_seeds=getattr(args, "seeds", 8), references=references,
        log=_stderr,
    )
    print(f"clean accuracy {result['clean_accuracy']:.2f} % on {result['n']} images; robust accuracy in %")
    print(format_table(result))
    if getattr(args, "json_path", None):
        write_json_atomic(args.json_path, result)
        print(f"wrote {args.json_path}")
    return 0 if result["all_ok"] else 1
