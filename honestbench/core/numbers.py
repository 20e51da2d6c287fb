"""Numbers a user types (flags, suite files, suite parameters): budgets as decimals or fractions (``8/255``) and
whole numbers with limits, each with a reason when refused (a :class:`ValueError` whose message says what is
wrong, or a one-line :class:`honestbench.core.errors.BenchError` naming the field). Torch-free: the command-line
parser uses it before anything heavy loads."""

from __future__ import annotations

import math
from fractions import Fraction

from honestbench.core.errors import BenchError


def number_value(text: str | float | int) -> float:
    """``"8/255"``, ``"0.5"``, ``"1e-3"`` or a number -> a finite float; :class:`ValueError` with the reason
    (not a number, a fraction over 0, too large for a float, nan or inf) otherwise."""
    if isinstance(text, bool):
        raise ValueError("expected a number or a fraction such as 8/255, not a true/false value")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip()
        try:
            value = float(Fraction(s))
        except ZeroDivisionError:
            raise ValueError("a fraction over 0 is no number: give e.g. 8/255") from None
        except OverflowError:
            raise ValueError("too large for a float (at most about 1.8e308)") from None
        except ValueError:
            word = s.lower().lstrip("+-")
            if word in ("nan", "inf", "infinity"):
                raise ValueError("not a finite number: give a number or a fraction such as 8/255") from None
            raise ValueError("expected a number or a fraction such as 8/255") from None
    if not math.isfinite(value):
        raise ValueError("not a finite number: give a number or a fraction such as 8/255")
    return value


def parse_number(text: str | float | int, what: str = "eps") -> float:
    """``"8/255"``, ``"0.5"`` or a number -> a finite float >= 0 (budgets, step sizes: pixel units of [0, 1]);
    a one-line :class:`BenchError` naming ``what`` otherwise."""
    try:
        value = number_value(text)
    except ValueError as e:
        raise BenchError(f"{what} {text!r}: {e}") from None
    if not value >= 0:
        raise BenchError(f"{what} {text!r}: must be >= 0")
    return value


def whole_value(text: str | int, lo: int, hi: int) -> int:
    """``text`` as a whole number in ``[lo, hi]``; :class:`ValueError` saying the allowed range otherwise."""
    span = f"a whole number from {lo} to {hi}"
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"expected {span}, got {text!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{text!r} is {'too small' if value < lo else 'too large'}: give {span}")
    return value
