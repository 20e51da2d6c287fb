"""The bad-input catalogue (issue 20), part 3: every number and list flag of every subcommand at its limits (0,
negative, huge, nan, inf, 1e400, a fraction over 0, a fraction where a whole number belongs) and empty list
items (``--models a,,b``, ``--models ,,,``, ``--model ''``). Each is a one-line usage error at parse time (exit
2, before any folder is made: :func:`catalogue.expect` checks ``--out`` stays empty) naming the flag, the value
and what to give instead; the limits are :data:`honestbench.cli.args.TYPES`. The named cases go into
docs/reliability.md's table; :func:`test_every_flag_refuses_its_limits` tries the same values on every flag
the parser has, so a new flag cannot slip through.
"""

from __future__ import annotations

import argparse

import pytest
from catalogue import bad_run, expect, run, tmp_zoo, use_zoo  # noqa: F401 (fixtures)

from honestbench.cli import args as flags
from honestbench.cli.main import build_parser

HUGE = "99999999999999999999999"


@pytest.mark.parametrize("case, flag_args, needles", [
    ("--seed huge", ["--seed", HUGE], ["argument --seed", "too large", "from 0 to 4294967295"]),
    ("--seed negative", ["--seed=-1"], ["argument --seed: '-1' is too small", "from 0 to 4294967295"]),
    ("--n huge", ["--n", HUGE], ["argument --n", "too large", "from 1 to 1000000000"]),
    ("--n in scientific notation", ["--n", "1e3"], ["argument --n", "expected a whole number", "'1e3'"]),
    ("--batch-size a fraction", ["--batch-size", "8.5"], ["argument --batch-size", "expected a whole number"]),
    ("--batch-size huge", ["--batch-size", HUGE], ["argument --batch-size", "too large"]),
    ("--passes huge", ["--passes", HUGE], ["argument --passes", "too large"]),
    ("--workers 0", ["--workers", "0"], ["argument --workers: '0' is too small", "from 1 to 256"]),
    ("--workers huge", ["--workers", "100000"], ["argument --workers", "too large", "from 1 to 256"]),
    ("--eps 1e400", ["--eps", "1e400"], ["argument --eps: '1e400'", "too large for a float"]),
    ("--eps nan", ["--eps", "nan"], ["argument --eps: 'nan'", "not a finite number", "8/255"]),
    ("--eps inf", ["--eps", "inf"], ["argument --eps: 'inf'", "not a finite number"]),
    ("--eps 8/0", ["--eps", "8/0"], ["argument --eps: '8/0'", "a fraction over 0", "8/255"]),
    ("--eps negative", ["--eps=-1/255"], ["argument --eps: '-1/255' is negative", "budget >= 0"]),
    ("--eps not a number", ["--eps", "eight"], ["argument --eps: 'eight'", "a number or a fraction"]),
    ("--models only commas", ["--models", ",,,"], ["argument --models: ',,,': only commas", "single commas"]),
    ("--models with an empty item", ["--models", "dig,,dig"], ["'dig,,dig': item 2 of 3 is empty"]),
    ("--models with a trailing comma", ["--models", "dig,"], ["'dig,': item 2 of 2 is empty"]),
    ("--models '' without --model", ["--models", ""], ["argument --models: '' names no model", "--model SPEC"]),
    ("--model ''", ["--model", ""], ["argument --model: empty value"]),
    ("--out ''", ["--out", ""], ["argument --out: empty value", "leave the flag out"]),
    ("--suite ''", ["--suite", ""], ["argument --suite: empty value"]),
])
def test_bad_run_flags(capsys, tmp_path, case, flag_args, needles):
    bad_run(capsys, tmp_path, case, flag_args, *needles)


@pytest.mark.parametrize("case, argv, needles", [
    ("bench train --epochs 0", ["train", "dig", "--epochs", "0"], ["argument --epochs: '0' is too small"]),
    ("bench train --max-minutes nan", ["train", "dig", "--max-minutes", "nan"], ["--max-minutes: 'nan'", "finite"]),
    ("bench train --max-minutes 0", ["train", "dig", "--max-minutes", "0"], ["minutes > 0"]),
    ("bench train --max-minutes 1e400", ["train", "dig", "--max-minutes", "1e400"], ["too large for a float"]),
    ("bench train ''", ["train", ""], ["argument name: empty value"]),
    ("bench crosscheck --seeds 0", ["crosscheck", "--seeds", "0"], ["argument --seeds: '0' is too small"]),
    ("bench crosscheck --n huge", ["crosscheck", "--n", HUGE], ["argument --n", "too large"]),
    ("bench crosscheck --attacks with an empty item", ["crosscheck", "--attacks", "fgsm,,pgd-linf"],
     ["argument --attacks", "item 2 of 3 is empty"]),
    ("bench speed --batch 0", ["speed", "--batch", "0"], ["argument --batch: '0' is too small"]),
    ("bench speed --repeats huge", ["speed", "--repeats", HUGE], ["argument --repeats", "too large"]),
    ("bench speed --archs with a trailing comma", ["speed", "--archs", "small,"], ["item 2 of 2 is empty"]),
    ("bench check --models ''", ["check", "--models", ""], ["argument --models: '' names no model"]),
    ("bench check --models only commas", ["check", "--models", ","], ["argument --models", "only commas"]),
    ("bench report ''", ["report", ""], ["argument dir: empty value"]),
    ("bench list models with an empty pattern item", ["list", "models", "dig,,x"], ["item 2 of 3 is empty"]),
    ("bench list models ''", ["list", "models", ""], ["argument pattern: empty value", "e.g. a,b"]),
    ("bench crosscheck --attacks ''", ["crosscheck", "--attacks", ""], ["argument --attacks: empty value"]),
])
def test_bad_flags_of_other_commands(capsys, case, argv, needles):
    rc, err = run(capsys, argv)
    expect(case, rc, err, 2, f"bench {argv[0]}: error: argument", *needles)


#: what each subcommand needs besides the flag under test
BASE = {"list": ["list", "models"], "train": ["train", "dig"], "report": ["report", "x"]}
#: values every flag of a kind must refuse (whole numbers, budgets and minutes, lists, texts)
BAD = {"whole number": ["-1", HUGE, "nan", "inf", "1e400", "8/0", "1.5", ""],
       "number": ["-1", "nan", "inf", "-inf", "1e400", "8/0", "x", ""],
       "list": ["", ",", ",,,", "a,,b", "a,", ",a"], "text": ["", "  "]}


def _flags():
    """(subcommand, action) for every value-taking flag or positional of every subcommand."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for a in sub._actions:
                    if a.nargs != 0 and a.choices is None and a.dest != "help":
                        yield name, a


def _kind(action) -> str:
    t = action.type
    if getattr(t, "__name__", "") == "whole number":
        return "whole number"
    if t in (flags.budget, flags.minutes):
        return "number"
    return "list" if t in (flags.word_list, flags.model_list) else "text"


def test_every_flag_has_a_checked_type():
    for name, a in _flags():
        assert a.type not in (None, int, float, str), f"bench {name} {a.option_strings or a.dest}: unchecked type"


@pytest.mark.parametrize("kind", list(BAD))
def test_every_flag_refuses_its_limits(capsys, tmp_path, kind):
    """Each bad value of its kind on every flag: exit 2 at parse time, one line naming the flag."""
    tried = 0
    for name, a in _flags():
        if _kind(a) != kind:
            continue
        for value in BAD[kind]:
            if a.option_strings:
                argv = [*BASE.get(name, [name]), f"{a.option_strings[-1]}={value}"]
            else:
                argv = [name, value] if name != "list" else ["list", "models", value]
            rc, err = run(capsys, [*argv, *(["--out", str(tmp_path / "o")] if name == "run" else [])])
            label = a.option_strings[-1] if a.option_strings else a.dest
            assert rc == 2 and err.count("\n") == 1 and f"argument {label}" in err, (argv, rc, err)
            tried += 1
    assert tried > 0
    assert not (tmp_path / "o").exists()
