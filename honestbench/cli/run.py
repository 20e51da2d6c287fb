"""``bench run``: evaluate zoo models under an attack suite and write records + leaderboard (flags defined in
:mod:`honestbench.cli.main`)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys


def main(args: argparse.Namespace) -> int:
    """Run :func:`honestbench.pipeline.run.run_bench` with the command's flags; ``--workers N`` launches torchrun."""
    # imported here: keeps `bench --help` from loading torch
    from honestbench.core.threads import resolve_device
    from honestbench.engine.launch import launch_local
    from honestbench.engine.options import EvalOptions
    from honestbench.engine.stochastic import R_DEFAULT
    from honestbench.pipeline.models import parse_normalize
    from honestbench.pipeline.run import run_bench
    from honestbench.suites.user import resolve_suite

    if getattr(args, "workers", None) and args.workers > 1:  # launch torchrun with the same arguments
        return launch_local(args.workers)
    options = EvalOptions(full_matrix=args.full_matrix, batch_size=args.batch_size, seed=args.seed,
                          device=resolve_device(args.device), passes=getattr(args, "passes", None) or R_DEFAULT,
                          progress=not getattr(args, "quiet", False))
    command = "bench " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["run"] else "bench run"
    if getattr(args, "models_dir", None) and not os.path.isdir(args.models_dir):  # cards next to the zoo's
        from honestbench.core.errors import BenchError

        raise BenchError(f"--models-dir {args.models_dir}: no such folder; give the folder that holds your "
                         "model cards (*.toml)")
    own = getattr(args, "model", None) or []
    models = args.models if args.models is not None else ("" if own else "all")
    suite = args.suite
    if (suite or "").endswith(".toml") or getattr(args, "threat_model", None) or getattr(args, "eps", None):
        suite = resolve_suite(suite, args.threat_model, args.eps)  # the Suite itself, scaled
    if getattr(args, "certify", None):  # the bound columns beside the attacks
        import dataclasses

        from honestbench.suites import CertifySpec

        suite = suite if not isinstance(suite, str | None) else resolve_suite(suite)
        suite = dataclasses.replace(suite, certify=CertifySpec.parse(args.certify))
    return run_bench(models, suite, options, n=args.n, out=args.out, dataset=args.dataset,
                     data_source=args.data, diagnose=bool(getattr(args, "diagnose", False)),
                     write_report=not args.no_report, command=command,
                     print_all=bool(getattr(args, "print_all", False)), sort=getattr(args, "sort", None),
                     extra_models=own, normalize=parse_normalize(getattr(args, "normalize", None), args.dataset),
                     models_dir=getattr(args, "models_dir", None))
