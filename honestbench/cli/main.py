"""Command line: ``bench list | crosscheck | speed | train | run | report | check | verify | export-adv``.

Each subcommand parses its flags here and delegates to ``main(args)`` of its own thin module in
:mod:`honestbench.cli`, which imports the heavy modules only when it runs (``bench --help`` loads no torch). A
:class:`honestbench.core.errors.BenchError` (or any other exception: a run error) becomes one line on stderr and
exit status 2; exit statuses are listed in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import sys

from honestbench.cli import check, crosscheck, listing, report, run, speed, train, verify
from honestbench.cli.args import check as check_flags
from honestbench.cli.args import install as install_types
from honestbench.core import __version__
from honestbench.core.datawords import DATA_CHOICES
from honestbench.core.errors import BenchError


def _split_data_flag(args: argparse.Namespace) -> None:
    if not hasattr(args, "data"):
        return
    if args.data is None:  # `bench train` without --data: the card's own dataset
        args.data = "npz"
        return
    dataset, source = DATA_CHOICES[args.data]
    args.dataset = args.dataset or dataset
    args.data = source


def _add_data_flags(p: argparse.ArgumentParser, default: str | None = "cifar10") -> None:
    p.add_argument("--data", default=default, choices=list(DATA_CHOICES),
                   help="cifar10: the shipped CIFAR-10 files in $BENCH_DATA_DIR (default; `bench train`: the card's "
                        "data); torchvision: torchvision's CIFAR10 files; digits: scikit-learn's 8x8 digits")
    p.add_argument("--dataset", default=None, help=argparse.SUPPRESS)  # older spelling of --data
    p.add_argument("--n", type=int, default=None, help="evaluate the first N images in canonical order")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")


#: honestbench.engine.stochastic.R_DEFAULT, written here so that `bench --help` does not import torch (a test keeps
#: them equal)
PASSES_DEFAULT = 10


def _add_sort_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sort", default=None, metavar="KEY",
                   help="order the leaderboard's rows: zoo (default), model (name), or a column such as "
                        "worst-case or PGD (its accuracy, highest first)")


def _add_run_parser(sub) -> None:
    """``bench run``'s flags."""
    p = sub.add_parser("run", help="evaluate models under an attack suite and write records + leaderboard")
    p.add_argument("--models", default=None,
                   help="all (default without --model), comma-separated zoo names, globs ('smoothing*') and card "
                        "files (./cards/mine.toml), mixed freely")
    p.add_argument("--model", action="append", default=None, metavar="SPEC",
                   help="your own model (repeatable): [NAME=]FILE.py:builder[@weights.pt], pkg.module:builder"
                        "[@weights.pt], a TorchScript .pt or a torch.export .pt2 file")
    p.add_argument("--models-dir", default=None, metavar="DIR",
                   help="a folder of your own model cards, used next to the zoo's (or set BENCH_MODELS_DIR)")
    p.add_argument("--normalize", default=None, metavar="STATS",
                   help="put (x - mean) / std in front of each --model: cifar10, digits, 255 (a model taking "
                        "pixels in [0, 255]) or M,M,M/S,S,S (a card says normalize = {mean, std} instead)")
    p.add_argument("--threat-model", default=None, metavar="Linf|L2",
                   help="keep the suite's attacks of this norm (with --eps: at that budget)")
    p.add_argument("--eps", default=None, metavar="EPS",
                   help="the suite's budget in pixel units of [0, 1], fractions accepted (8/255); step sizes "
                        "scale with it")
    p.add_argument("--suite", default=None, help="attack suite (see `bench list suites`) or a suite file (.toml)")
    p.add_argument("--certify", default=None, metavar="METHOD[,exact=S]",
                   help="add the certified column (crown, ibp or crown-ibp lower bound at the suite's L-inf "
                        "budget) and with exact=S the exact column (MILP, S seconds per image)")
    p.add_argument("--out", default=None, help="output directory (default runs/latest, git-ignored)")
    p.add_argument("--full-matrix", action="store_true", help="attack every clean-correct sample with every attack")
    p.add_argument("--diagnose", action="store_true", help="run the gradient-masking diagnostics")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--passes", type=int, default=None, metavar="R",
                   help="stochastic models: also classify each clean and adversarial image in R further seeded "
                        f"passes (the mean-over-R accuracy and its spread; >= 1; default {PASSES_DEFAULT}); "
                        "deterministic models take none")
    p.add_argument("--workers", type=int, default=None, help="launch N local torchrun processes")
    p.add_argument("--no-report", action="store_true", help="write records only")
    p.add_argument("--print", dest="print_all", action="store_true",
                   help="print the whole leaderboard markdown (default: a short summary per model)")
    _add_sort_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_data_flags(p)
    p.set_defaults(handler=run.main)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="bench", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"bench {__version__}")
    ap.set_defaults(uses_torch=True)  # `bench report` reads files only: no torch, no thread setup
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list attacks, models or suites")
    p.add_argument("what", choices=["attacks", "models", "suites"])
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'pgd*'")
    p.set_defaults(handler=listing.main)

    crosscheck.add_parser(sub, _add_data_flags)
    speed.add_parser(sub, _add_data_flags)

    p = sub.add_parser("train", help="train a model card's checkpoint (resumable)")
    p.add_argument("name", help="model card name (see `bench list models`)")
    p.add_argument("--epochs", type=int, default=None, help="override the card's epochs")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    p.add_argument("--out", default=None, help="checkpoint path (default: the card's)")
    p.add_argument("--update-card", action="store_true", help="write sha256, time and accuracy into the card")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that passes this")
    p.add_argument("--scale-lr", action="store_true",
                   help="scale the learning rate linearly with --batch-size against the recipe's batch size")
    p.add_argument("--batch-size", type=int, default=None)
    _add_data_flags(p, default=None)
    p.set_defaults(handler=train.main)

    _add_run_parser(sub)

    p = sub.add_parser("report", help="redraw leaderboard and figures from records (runs no attack)")
    p.add_argument("dir", help="a results directory written by `bench run`")
    _add_sort_flag(p)
    p.set_defaults(handler=report.main, uses_torch=False)

    p = sub.add_parser("check", help="re-measure committed results; exit 1 when robust accuracy drifts")
    p.add_argument("--results", default=None,
                   help="committed results directory (default ./results/ci, relative to the working folder: run it "
                        "from a checkout's root)")
    p.add_argument("--models", default=None, help="restrict to these models")
    p.add_argument("--device", default="cpu")
    p.set_defaults(handler=check.main)
    verify.add_parsers(sub)  # bench verify, bench export-adv
    install_types(ap)  # every number and list flag's limits (honestbench/cli/args.py)
    return ap


#: 1-minute load average from which the machine counts as busy (see honestbench.core.threads.default_threads)
BUSY_LOAD = 0.5


def set_omp_wait_policy() -> str | None:
    """``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep at once) when the machine is busy at start
    (1-minute load average >= :data:`BUSY_LOAD`), else libgomp's default (spin a while, then sleep); a
    value the user set wins. Must run before torch is imported. Returns the value set, None if left alone."""
    if "OMP_WAIT_POLICY" in os.environ or not hasattr(os, "getloadavg"):
        return None
    if os.getloadavg()[0] < BUSY_LOAD:
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (``bench run: error: ...; see `bench run --help```), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _check_device(args: argparse.Namespace) -> None:
    """``--device``: a device torch knows and this machine has; :class:`BenchError` naming the fix otherwise."""
    import torch  # torch is loaded already when this runs (commands that take --device use it)

    name = getattr(args, "device", None)
    if name in (None, "auto"):
        return
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise BenchError(f"--device {name}: not a device name: use auto, cpu or cuda (cuda:N for GPU N)") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BenchError(f"--device {name}: this machine has no usable CUDA GPU (torch {torch.__version__}): "
                             "use --device cpu (or auto)")
        if dev.index is not None and dev.index >= count:
            raise BenchError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise BenchError(f"--device {name}: MPS is not available here: use --device cpu (or auto)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise BenchError(f"--device {name}: bench runs on cpu, cuda or mps: use --device cpu (or auto)")


def _check_out(args: argparse.Namespace) -> None:
    """``bench run --out DIR``: DIR must be a folder or not exist yet (nothing is written when it is a file)."""
    out = getattr(args, "out", None)
    if args.command != "run" or not out:
        return
    path = os.path.abspath(out)
    while path and not os.path.exists(path):
        path = os.path.dirname(path) if os.path.dirname(path) != path else ""
    if path and not os.path.isdir(path):
        raise BenchError(f"--out {out}: {path} is a file, not a folder: choose a folder (new or written by bench run)")


def _run(args: argparse.Namespace) -> int:
    """Thread setup, input checks and the subcommand's handler (errors propagate to :func:`main`)."""
    set_omp_wait_policy()  # before torch loads (honestbench.core.threads imports it)
    _check_out(args)
    if args.uses_torch:
        # imported here: keeps `bench --help` (and `bench report`) from loading torch
        from honestbench.core.threads import configure_threads

        configure_threads()  # one place for every command (honestbench.core.threads.default_threads: how many, and why)
        _check_device(args)
    return int(args.handler(args) or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bench`` console script. Exit status: 0 ok, 1 ``bench check`` found a drift, 2 bad
    input or a run error (one line on stderr; ``BENCH_DEBUG=1`` re-raises for the traceback), 130 interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_flags(args, parser)
    _split_data_flag(args)
    say = f"bench {args.command}: "
    try:
        return _run(args)
    except BenchError as e:
        print(f"{say}error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{say}interrupted; finished work is kept, rerun the same command to continue", file=sys.stderr)
        return 130
    except Exception as e:  # a run error: one line, never a traceback from deep inside torch
        if os.environ.get("BENCH_DEBUG"):
            raise
        print(f"{say}error: {_describe(e)}", file=sys.stderr)
    return 2


def _describe(e: Exception) -> str:
    """One line for an unexpected exception: an OSError names the path and the fix; anything else its type."""
    if isinstance(e, OSError) and e.strerror:
        where = f" {e.filename}" if e.filename else ""
        return (f"cannot use{where}: {e.strerror}: check the path, its permissions and the free space "
                "(BENCH_DEBUG=1 shows the traceback)")
    text = " ".join(str(e).split())[:300] or "(no message)"
    return (f"unexpected {type(e).__name__}: {text} (a bug or an environment problem: rerun with BENCH_DEBUG=1 "
            "for the traceback and report it)")


if __name__ == "__main__":
    sys.exit(main())
