"""``bench report DIR``: redraw the leaderboard and figures of a results directory from its records alone
(flags defined in :mod:`honestbench.cli.main`)."""

from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
    """Rewrite the leaderboard and figures of ``args.dir`` (:func:`honestbench.report.write_report`) and print the
    leaderboard."""
    # imported here: keeps `bench --help` from loading torch
    from honestbench.report import write_report

    path = write_report(args.dir, sort=getattr(args, "sort", None))
    print(path.read_text())
    return 0
