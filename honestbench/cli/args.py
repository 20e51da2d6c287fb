"""Types of bench's flags: the limits of every number and list option in one table (:data:`TYPES`), installed on
every subcommand by :func:`install`, so that a bad value is a one-line usage error at parse time (exit 2, before
any folder is made or model loaded): ``bench run: error: argument --seed: '-1' is too small: give a whole number
from 0 to 4294967295; see `bench run --help```. :func:`check` holds the rules that join two flags.

Limits: counts (``--n``, ``--batch-size``, ``--passes``, ...) from 1 to :data:`MAX_COUNT`; ``--seed`` from 0 to
:data:`SEED_MAX`; ``--workers`` up to :data:`MAX_WORKERS`; budgets (``--eps``) finite and >= 0 (decimals or
fractions, pixel units of [0, 1]); minutes finite and > 0; a list (``a,b,c``) has no empty item; a text value
is not empty. An int or float option not in the table gets the count or budget rule (:func:`install`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from honestbench.core.numbers import number_value, whole_value

#: the largest count a flag takes: more images, passes or repetitions than any run here could use
MAX_COUNT = 10**9
#: seeds are 32 bits: numpy's global seed (honestbench.core.rng.seed_everything) takes no more
SEED_MAX = 2**32 - 1
#: local torchrun processes of ``bench run --workers``
MAX_WORKERS = 256


def whole(lo: int, hi: int = MAX_COUNT) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[lo, hi]``."""

    def parse(text: str) -> int:
        try:
            return whole_value(text, lo, hi)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = "whole number"
    return parse


def budget(text: str) -> str:
    """An argparse type: a budget in pixel units of [0, 1], a decimal or a fraction (``8/255``), finite, >= 0;
    the text itself (stripped), parsed again where it is used (:func:`honestbench.suites.user.resolve_suite`)."""
    try:
        value = number_value(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative: give a budget >= 0, e.g. 8/255")
    return text.strip()


def minutes(text: str) -> float:
    """An argparse type: minutes, finite and > 0."""
    try:
        value = number_value(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of minutes > 0, e.g. 30 (or leave the flag out)")
    return value


def word_list(text: str) -> str:
    """An argparse type: comma-separated items, none of them empty (``""``, ``a,,b``, ``a,`` and ``,`` are
    refused: an empty filter must not mean "everything"); the text itself, stripped."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty value: give one or more names separated by commas, e.g. a,b")
    return model_list(text)


def model_list(text: str) -> str:
    """An argparse type: :func:`word_list` for ``--models``, where ``""`` passes (``bench run --models ''
    --model SPEC``: no zoo model, only your own; :func:`check` refuses it otherwise)."""
    items = [p.strip() for p in text.split(",")]
    if text.strip() and not all(items):
        where = "only commas" if not any(items) else f"item {items.index('') + 1} of {len(items)} is empty"
        raise argparse.ArgumentTypeError(f"{text!r}: {where}: separate names with single commas, e.g. a,b")
    return text.strip()


def text_value(text: str) -> str:
    """An argparse type (options): any text but an empty one."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty value: give one, or leave the flag out for its default")
    return text


def required_text(text: str) -> str:
    """An argparse type (positional arguments): any text but an empty one."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty value: give one")
    return text


#: option string (or a positional's dest) -> its type, for every subcommand that has the option
TYPES: dict[str, Callable[[str], object]] = {
    "--n": whole(1), "--batch-size": whole(1), "--batch": whole(1), "--passes": whole(1), "--repeats": whole(1),
    "--seeds": whole(1), "--epochs": whole(1), "--workers": whole(1, MAX_WORKERS), "--seed": whole(0, SEED_MAX),
    "--eps": budget, "--max-minutes": minutes,
    "--models": model_list, "--attacks": word_list, "--archs": word_list, "--precision": word_list,
    "pattern": word_list,
}


def _actions(parser: argparse.ArgumentParser):
    """Every action of ``parser`` and of its subcommands' parsers."""
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _actions(sub)


def install(parser: argparse.ArgumentParser) -> None:
    """Give each value-taking action of ``parser`` (and its subcommands) its type from :data:`TYPES`; an int
    option not listed counts from 1, a float one is a finite budget, any other text must not be empty."""
    for action in _actions(parser):
        if action.nargs == 0 or isinstance(action, argparse._SubParsersAction) or action.choices is not None:
            continue
        key = action.option_strings[-1] if action.option_strings else action.dest
        if key in TYPES:
            action.type = TYPES[key]
        elif action.type is int:
            action.type = whole(1)
        elif action.type is float:
            action.type = budget
        elif action.type is None:
            action.type = text_value if action.option_strings else required_text


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Rules that join flags: an empty ``--models ''`` only next to ``--model SPEC`` (``bench run``)."""
    if getattr(args, "models", None) == "" and not getattr(args, "model", None):
        sub = f"bench {args.command}"
        parser.exit(2, f"{sub}: error: argument --models: '' names no model: give zoo names or all (see `bench "
                       f"list models`){', or your own with --model SPEC' if args.command == 'run' else ''}; see "
                       f"`{sub} --help`\n")
