"""``bench list attacks|models|suites [PATTERN]``: what the registry, the zoo and the suites hold."""

from __future__ import annotations

import argparse
import fnmatch

from tabulate import tabulate

from honestbench.core.errors import BenchError


def _fmt(v: object) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def attack_rows(pattern: str = "*") -> list[list[str]]:
    """One row per registered attack: name, norm, parameters with defaults, description."""
    # imported here: keeps `bench --help` from loading torch
    from honestbench.attacks.registry import _lookup, attack_defaults, attack_names

    rows = []
    for name in attack_names(pattern):
        cls, _ = _lookup(name)
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in attack_defaults(name).items())
        rows.append([name, cls.norm, params, cls.description])
    return rows


def model_rows(pattern: str = "*") -> list[list[str]]:
    """One row per model card: name, backbone, defence, clean accuracy, trained."""
    # imported here: keeps `bench --help` from loading torch
    from honestbench.zoo import list_cards

    rows = []
    for c in list_cards(pattern):
        acc = "untrained" if not c.trained else (
            f"{100 * c.clean_accuracy:.2f} %" if c.clean_accuracy is not None else "?")
        defence = ", ".join(f"{k}={_fmt(v)}" for k, v in (c.defence or {}).items()) or "-"
        rows.append([c.display_name, c.architecture, defence, acc, "yes" if c.stochastic else "no", c.description])
    return rows


def suite_rows(pattern: str = "*") -> list[list[str]]:
    """One row per (suite, attack): suite, column label, attack spec."""
    # imported here: keeps `bench --help` from loading torch
    from honestbench.suites import describe_suites

    rows = []
    for s in describe_suites():
        if not fnmatch.fnmatch(s["name"], pattern):
            continue
        for i, a in enumerate(s["attacks"]):
            rows.append([s["name"] if i == 0 else "", a["column"], a["spec"]])
    return rows


def main(args: argparse.Namespace) -> int:
    """Print the table for ``args.what`` filtered by ``args.pattern``."""
    if args.what == "attacks":
        rows, headers = attack_rows(args.pattern), ["attack", "norm", "parameters (defaults)", "what"]
    elif args.what == "models":
        rows, headers = model_rows(args.pattern), ["model", "backbone", "defence", "clean acc", "stochastic", "what"]
    else:
        rows, headers = suite_rows(args.pattern), ["suite", "column", "attack"]
    if not rows:
        raise BenchError(f"no {args.what} match {args.pattern!r}; try `bench list {args.what}`")
    print(tabulate(rows, headers=headers, tablefmt="github"))
    return 0
