"""The leaderboard's ground-truth table, for runs with bound columns (``--certify``, the ``certified`` suite;
:mod:`honestbench.engine.certified`): per model ``certified`` (a lower bound of the true robust accuracy),
``exact`` (the MILP's answer), the attacks' ``worst case`` (an upper bound), ``attack gap`` = worst case -
certified and, where the MILP settled every image, ``attack miss`` = worst case - exact. Accuracies in % of
the evaluated images with 95 % Wilson intervals; the gap and the miss are fractions of images too (those the
attacks left standing that the bound did not prove, or that the MILP broke), with their own intervals.
"""

from __future__ import annotations

import json

from tabulate import tabulate

from honestbench.results import wilson_interval

BOUND_LABELS = ("certified", "exact")


def _pct(count: int, n: int) -> str:
    lo, hi = wilson_interval(count, n)
    return f"{100 * count / n:.2f} ({count}) [{100 * lo:.1f}, {100 * hi:.1f}]"


def _cell(row: dict | None) -> str:
    if row is None:
        return "-"
    if row.get("accuracy") is None or row["accuracy"] != row["accuracy"]:
        return "refused"
    if row["exact"]:
        return _pct(int(row["count"]), int(row["n"]))
    return (f"{100 * row['count'] / row['n']:.2f} to {100 * row['count_hi'] / row['n']:.2f} "
            f"({int(row['count_hi'] - row['count'])} unsettled)")


def _difference(worst: dict | None, bound: dict | None) -> str:
    """worst - bound in % with the Wilson interval of that many images, where both are numbers (settled)."""
    if worst is None or bound is None or bound.get("accuracy") is None or not bound["exact"] \
            or bound["accuracy"] != bound["accuracy"]:
        return "-"
    return _pct(int(worst["count"]) - int(bound["count"]), int(worst["n"]))


def _note(row: dict | None) -> str:
    """The column's note (fallback, unsettled images, refusal) from its ``params``."""
    return json.loads(row.get("params") or "{}").get("note", "") if row is not None else ""


def certified_section(df) -> list[str]:
    """The markdown section (empty when no model has a bound column)."""
    if not df["attack"].isin(BOUND_LABELS).any():
        return []
    rows, notes = [], []
    for model, g in df.groupby("model", sort=False):
        by = {r["attack"]: r for r in g.to_dict("records")}
        cert, exact, worst = by.get("certified"), by.get("exact"), by.get("worst-case")
        rows.append([model, _cell(by.get("clean")), _cell(cert), _cell(exact), _cell(worst),
                     _difference(worst, cert), _difference(worst, exact),
                     " / ".join(r["kernel"] for r in (cert, exact) if r is not None)])
        notes += [f"{model}: {note}" for note in (_note(r) for r in (cert, exact)) if note]
    eps = df.loc[df["attack"].isin(BOUND_LABELS), "eps"].dropna().unique()
    budget = ", ".join(f"{e:.4g}" for e in eps)
    table = tabulate(rows, headers=["Model", "Natural", "certified", "exact", "Worst case", "attack gap",
                                    "attack miss", "method"], tablefmt="github", disable_numparse=True)
    return ["## Ground truth: certified, exact and the attacks", "",
            f"At L-inf {budget} (pixels in [0, 1]): `certified <= true robust accuracy <= worst case`. "
            "certified: a sound lower bound of every margin over the ball is > 0 (CROWN, or the method named); "
            "exact: the MILP's answer (a range where it left images unsettled); attack gap = worst case - "
            "certified (what the attacks may miss, loose where the bound is loose); attack miss = worst case - "
            "exact, only where every image is settled (what the attacks do miss). Every image proved robust "
            "was checked against every attack of at most that budget; a contradiction stops the run.", "",
            table, ""] + [f"- {n}" for n in notes] + ([""] if notes else [])
