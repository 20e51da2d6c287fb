"""``bench run``: evaluate zoo models under an attack suite and write records + leaderboard (flags defined in
:mod:`bench.commands.cli`)."""

from __future__ import annotations

import argparse
import shlex
import sys


def main(args: argparse.Namespace) -> int:
    """Run :func:`bench.tools.run.run_bench` with the command's flags; ``--workers N`` launches torchrun."""
    # imported here: keeps `bench --help` from loading torch
    from bench.core.threads import resolve_device
    from bench.eval.launch import launch_local
    from bench.eval.options import EvalOptions
    from bench.eval.stochastic import R_DEFAULT
    from bench.tools.run import run_bench

    if getattr(args, "workers", None) and args.workers > 1:  # launch torchrun with the same arguments
        return launch_local(args.workers)
    options = EvalOptions(full_matrix=args.full_matrix, batch_size=args.batch_size, seed=args.seed,
                          device=resolve_device(args.device), passes=getattr(args, "passes", None) or R_DEFAULT,
                          progress=not getattr(args, "quiet", False))
    command = "bench " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["run"] else "bench run"
    return run_bench(args.models, args.suite, options, n=args.n, out=args.out, dataset=args.dataset,
                     data_source=args.data, diagnose=bool(getattr(args, "diagnose", False)),
                     write_report=not args.no_report, command=command)
