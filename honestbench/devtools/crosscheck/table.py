"""The cross-check result as a text table: robust accuracy in % per library, max pixel difference, tolerance and
verdict per row, then the rows' notes."""

from __future__ import annotations

from tabulate import tabulate


def _cell(d: dict, key: str, fmt: str) -> str:
    v = d.get(key)
    return "-" if v is None else format(v, fmt)


def tolerance_text(tol: dict) -> str:
    """A row's tolerance in a few characters (``-`` for a row with no reference)."""
    if not tol:
        return "-"
    if "max_abs_diff_vs_torchattacks" in tol:
        return f"px<={tol['max_abs_diff_vs_torchattacks']:g} TA, {tol['robust_acc_pp_vs_art']:g}pp ART"
    if "robust_acc_pp_vs_both" in tol:
        return f"{tol['robust_acc_pp_vs_both']:g}pp both"
    if "robust_acc_pp_vs_art" in tol:
        return f"{tol['robust_acc_pp_vs_art']:g}pp ART @L2<={tol.get('l2_threshold')}"
    return "noise >= PGD"


def format_table(result: dict) -> str:
    """The comparison as a text table (tabulate, GitHub style) followed by the notes."""
    table = [
        [r["attack"], *(_cell(r["robust_accuracy"], k, ".2f") for k in ("ours", "torchattacks", "art")),
         *(_cell(r["max_abs_diff"], k, ".1e") for k in ("torchattacks", "art")),
         tolerance_text(r["tolerance"]), r["verdict"]]
        for r in result["rows"]
    ]
    head = ["attack", "ours %", "torchattacks %", "ART %", "max|d| TA", "max|d| ART", "tolerance", "verdict"]
    notes = [f"  {r['attack']}: {r['note']}" for r in result["rows"] if r["note"]]
    text = tabulate(table, headers=head, tablefmt="github")
    return text + ("\nnotes:\n" + "\n".join(notes) if notes else "")
