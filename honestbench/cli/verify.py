"""``bench verify`` (re-check every claimed break of a results directory, or a RobustBench adversarial tensor)
and ``bench export-adv`` (write a model's adversarial examples as that tensor). Flags are defined here and
registered by :mod:`honestbench.cli.main`; exit status 1 when a claim is unproven or an image lies outside
its budget."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(sub) -> None:
    """Register ``verify`` and ``export-adv`` on the subcommand parser ``sub``."""
    p = sub.add_parser("verify", help="re-check every claimed break from its stored adversarial example "
                                      "(exit 1 listing unproven claims)")
    p.add_argument("dir", nargs="?", default=None, help="a results directory written by `bench run`")
    p.add_argument("--models", default=None, help="restrict to these models (comma-separated)")
    p.add_argument("--passes", type=int, default=10, metavar="K",
                   help="stochastic models: seeded passes per image; the fraction fooled is reported (default 10)")
    p.add_argument("--strict", action="store_true",
                   help="also fail on stochastic models' examples that no fresh pass misclassified")
    p.add_argument("--adv", default=None, metavar="FILE",
                   help="check a RobustBench tensor of adversarial images (.pt / .pth) instead of DIR")
    p.add_argument("--model", default=None, help="with --adv: the zoo model or model spec the tensor attacks")
    p.add_argument("--norm", default="linf", choices=["linf", "l2"], help="with --adv: the threat model's norm")
    p.add_argument("--eps", default="8/255", help="with --adv: the budget in pixel units of [0, 1] (8/255)")
    p.add_argument("--data", dest="adv_data", default="cifar10", choices=["cifar10", "digits"],
                   help="with --adv: the test set")
    p.add_argument("--json", dest="json_path", default=None, help="also write what was checked to this file")
    p.add_argument("--device", default="cpu")
    p.set_defaults(handler=main_verify)

    p = sub.add_parser("export-adv", help="write a model's adversarial examples as RobustBench's tensor "
                                          "(first N test images)")
    p.add_argument("dir", help="a results directory written by `bench run`")
    p.add_argument("--model", required=True, help="the model's name in DIR")
    p.add_argument("--out", default=None, help="output file (default DIR/adv/<model>.pt)")
    p.add_argument("--norm", default="linf", choices=["linf", "l2"],
                   help="the threat model: examples of the columns of this norm (default linf)")
    p.set_defaults(handler=main_export)


def main_verify(args: argparse.Namespace) -> int:
    """``bench verify DIR`` or ``bench verify --adv FILE --model M``."""
    # imported here: keeps `bench --help` from loading torch
    from honestbench.core.errors import BenchError

    if args.adv:
        return _verify_adv(args)
    if not args.dir:
        raise BenchError("give a results directory (bench verify DIR) or a tensor (bench verify --adv FILE "
                         "--model M)")
    from honestbench.core.io import atomic_path
    from honestbench.pipeline.verify import failures, proofs_json, summary, verify_results

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    proofs = verify_results(args.dir, models=models, device=args.device, passes=args.passes)
    print(summary(proofs, args.dir, args.strict))
    if args.json_path:
        with atomic_path(args.json_path) as f:
            f.write(proofs_json(proofs))
    return 1 if failures(proofs, args.strict) else 0


def _verify_adv(args: argparse.Namespace) -> int:
    from honestbench.core.errors import BenchError
    from honestbench.core.threads import resolve_device
    from honestbench.pipeline.adv_file import check_adv_file
    from honestbench.pipeline.models import resolve_model_specs
    from honestbench.pipeline.proof import Budget
    from honestbench.suites.user import parse_number

    if not args.model:
        raise BenchError("--adv needs --model: the zoo model or model spec the tensor was made for")
    device = resolve_device(args.device)
    specs = resolve_model_specs(args.model, (), args.adv_data, device)
    if len(specs) != 1:
        raise BenchError(f"--model {args.model!r}: name exactly one model")
    budget = Budget(args.norm, parse_number(args.eps))
    result = check_adv_file(args.adv, specs[0].load(), budget, args.adv_data, "npz", device)
    print(result.text(args.adv, specs[0].name))
    return 1 if result.invalid else 0


def main_export(args: argparse.Namespace) -> int:
    """``bench export-adv DIR --model M [--out F]``."""
    from honestbench.pipeline.adv_file import default_adv_path, export_adv

    path = Path(args.out) if args.out else default_adv_path(args.dir, args.model)
    n, written, eps = export_adv(args.dir, args.model, path, args.norm)
    print(f"bench export-adv: wrote {path}: float32 ({n}, C, H, W) pixels in [0, 1], the first {n} test images; "
          f"{written} adversarial within {args.norm} {eps:.6g}, {n - written} clean (robust, or broken only in "
          f"another norm); check it with `bench verify --adv {path} --model {args.model} --norm {args.norm} "
          f"--eps {eps:.6g}`")
    return 0
