"""What the checks read from and write into record rows (``honestbench.results`` rows: a list of dicts or a
DataFrame): one :class:`Row` per model x attack, the comparisons between two rows, and :func:`apply_warnings`.
Torch-free. Accuracies are fractions; eps in pixel units of [0, 1] images.

Reading early-exit records (``honestbench.engine.cascade``, the default): attacks run as a cascade, cheapest first, and
a
later attack's column is only an upper bound. Two accuracies are compared directly only when both rows are
exact; otherwise "S beats R" is read from ``fooled`` of S when S ran after R (S broke that many samples which
survived R and everything before it; the cascade position is inferred from ``evaluated``, which can only
shrink along the cascade).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from honestbench.diagnostics.flags import margin, pct


@dataclass
class Row:
    """The fields of one record row that the checks read."""

    model: str
    label: str
    kernel: str
    params: dict
    norm: str | None
    eps: float | None
    eps_effective: float | None
    acc: float
    n: int
    exact: bool
    evaluated: int
    fooled: int
    stochastic: bool
    unbounded_success: float | None

    @property
    def eot(self) -> int:
        return int(self.params.get("eot", 1) or 1)

    @property
    def full_budget(self) -> bool:
        return self.eps is not None and (self.eps_effective is None
                                         or math.isclose(self.eps_effective, self.eps, rel_tol=1e-6))


def _num(v, default=None):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return default
    return v


def as_dicts(records) -> list[dict]:
    """Record rows as a list of dicts (from a list of mappings, a DataFrame or None)."""
    if records is None:
        return []
    if hasattr(records, "to_dict"):
        return records.to_dict("records")
    return [dict(r) for r in records]


def _params(r: Mapping) -> dict:
    params = r.get("params") or {}
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError:
            params = {}
    return dict(params)


def rows_of(records: Iterable[dict]) -> list[Row]:
    """The attack rows of ``records`` (clean and aggregate rows left out) as :class:`Row`."""
    out = []
    for r in records:
        kernel = str(r.get("kernel") or "")
        if kernel in ("", "clean", "aggregate"):
            continue
        n = int(_num(r.get("n"), 0))
        out.append(Row(
            model=str(r.get("model")), label=str(r.get("attack")), kernel=kernel, params=_params(r),
            norm=r.get("norm"), eps=_num(r.get("eps")), eps_effective=_num(r.get("eps_effective")),
            acc=float(_num(r.get("accuracy"), float("nan"))), n=n, exact=bool(_num(r.get("exact"), True)),
            evaluated=int(_num(r.get("evaluated"), n)), fooled=int(_num(r.get("fooled"), 0)),
            stochastic=bool(_num(r.get("stochastic"), False)),
            unbounded_success=_num(r.get("unbounded_success"))))
    return out


def same_budget(a: Row, b: Row) -> bool:
    """Both rows at their full nominal budget, the same norm and eps."""
    return (a.norm == b.norm and a.full_budget and b.full_budget
            and math.isclose(float(a.eps), float(b.eps), rel_tol=1e-6, abs_tol=1e-9))


def _ran_before(r: Row, s: Row) -> bool:
    """In an early-exit cascade ``evaluated`` can only shrink: ``r`` ran before ``s`` when it evaluated more
    samples, or as many while ``s`` fooled some (had ``s`` run first, ``r`` would have seen fewer)."""
    return r.evaluated > s.evaluated or (r.evaluated == s.evaluated and s.fooled > 0)


def beats(ref: Row, sus: Row, tol: float) -> str | None:
    """Evidence that ``sus`` is stronger than ``ref`` by more than ``tol``, as a phrase with the two numbers;
    None when there is none or the records cannot tell (``sus`` ran first in an early-exit cascade)."""
    m = margin(tol, ref.n)
    if ref.exact and sus.exact:
        if sus.acc < ref.acc - m:
            return f"{sus.label} {pct(sus.acc)} < {ref.label} {pct(ref.acc)}"
        return None
    if ref.n and _ran_before(ref, sus) and sus.fooled / ref.n > m:
        bound = "" if ref.exact else "<= "
        return (f"{sus.label} fooled a further {pct(sus.fooled / ref.n)} of the images that survived "
                f"{ref.label} ({bound}{pct(ref.acc)})")
    return None


def doubled(a: dict, b: dict) -> str | None:
    """'steps x2' / 'restarts x2' when ``b`` is ``a`` with twice the steps or twice the restarts."""
    for key in ("steps", "restarts"):
        va, vb = a.get(key, 1), b.get(key, 1)
        rest_a = {k: v for k, v in a.items() if k not in (key, "alpha")}
        rest_b = {k: v for k, v in b.items() if k not in (key, "alpha")}
        if va and vb == 2 * va and rest_a == rest_b:
            return f"{key} {va} -> {vb}"
    return None


def apply_warnings(records, flags: Mapping[tuple[str, str], list[str]]):
    """Write ``flags`` into the ``warnings`` column of ``records`` (list of dicts, changed in place and
    returned, or a DataFrame, copied): existing warnings are kept, new ones appended, joined with ``"; "``
    (flags never contain ``;``). Flags of a (model, column) without a row are ignored."""
    def merged(old, new: list[str]) -> str:
        have = [w.strip() for w in str(old or "").split(";") if w.strip()]
        return "; ".join(dict.fromkeys(have + [f.replace(";", ",") for f in new]))

    if hasattr(records, "to_dict"):
        df = records.copy()
        if "warnings" not in df.columns:
            df["warnings"] = ""
        for i, r in df.iterrows():
            new = flags.get((str(r["model"]), str(r["attack"])), [])
            if new:
                df.at[i, "warnings"] = merged(r["warnings"], new)
        return df
    for r in records:
        new = flags.get((str(r.get("model")), str(r.get("attack"))), [])
        if new:
            r["warnings"] = merged(r.get("warnings"), new)
    return records
