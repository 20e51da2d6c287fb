"""``bench check``: re-measure committed results; exit 1 with a diff table when robust accuracy drifts (flags
defined in :mod:`honestbench.cli.main`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(args: argparse.Namespace) -> int:
    """Run :func:`honestbench.pipeline.check.check` on ``--results`` (default results/ci) and print the verdict."""
    # imported here: keeps `bench --help` from loading torch
    from honestbench.pipeline.check import DEFAULT_RESULTS, check, format_rows

    results = Path(args.results) if args.results else DEFAULT_RESULTS
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    rows = check(results, models=models, device=args.device, progress=getattr(args, "progress", False))
    compared = [r for r in rows if r["model"] != "*"]
    failures = [r for r in rows if not r["ok"]]
    for r in rows:
        if r["model"] == "*":
            print(f"note: {r['note']}")
    if failures:
        print(f"bench check: {len(failures)} of {len(compared)} rows drifted from {results}:")
        print(format_rows(rows))
        return 1
    n_models = len({r["model"] for r in compared})
    print(f"bench check: OK: {len(compared)} rows of {n_models} models match {results}")
    return 0
