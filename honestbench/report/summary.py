"""The terminal summary ``bench run`` prints when it finishes: one short table (per model: clean accuracy,
worst case with its 95 % Wilson interval, the diagnostic flags raised), then where the full leaderboard is
and, after a quick evaluation, the command of the full one. Read from the records only (torch-free);
accuracies in % of the evaluated images. The whole markdown goes to stdout only with ``bench run --print``.
"""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from honestbench.core.errors import BenchError
from honestbench.diagnostics.flags import flag_name
from honestbench.report import sort_models
from honestbench.report.tables import SORT_KEYS, model_label
from honestbench.results import load
from honestbench.suites.model import SURROGATE_LABEL
from honestbench.zoo.cards import finish_hint


def _acc(row: dict | None, interval: bool = False) -> str:
    if row is None:
        return "-"
    text = f"{100 * float(row['accuracy']):.1f}"
    if not bool(row["exact"]):
        return "<= " + text
    lo, hi = row.get("ci_lo"), row.get("ci_hi")
    if interval and lo is not None and lo == lo:
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text


def summary_table(out: str | Path, sort: str | None = None) -> str:
    """A plain-text table of ``out``'s records: model (marked ``(stochastic)``), clean %, worst case % with
    its 95 % interval, and the names of the flags raised on any of its columns (``none`` otherwise)."""
    df = sort_models(load(out), sort)
    rows = []
    for model, g in df.groupby("model", sort=False):
        by = {r["attack"]: r for r in g.to_dict("records")}
        names = dict.fromkeys(flag_name(w) for r in by.values()
                              for w in str(r.get("warnings") or "").split(";") if w.strip())
        stoch = " (stochastic)" if g["stochastic"].astype(bool).any() else ""
        rows.append([model_label(model, g) + stoch, _acc(by.get("clean")), _acc(by.get("worst-case"), interval=True),
                     ", ".join(names) or "none"])
    return tabulate(rows, headers=["model", "clean %", "worst case % [95 % CI]", "flags"], tablefmt="simple",
                    disable_numparse=True)


def finish_lines(out: str | Path) -> list[str]:
    """One line per model of ``out`` trained for fewer epochs than its recipe: how to finish it."""
    df = load(out)
    marks = df.drop_duplicates("model").set_index("model")["training"] if "training" in df else {}
    return [finish_hint(m, t) for m, t in dict(marks).items() if isinstance(t, str) and t]


def summary_text(out: str | Path, *, sort: str | None = None, seconds: float | None = None,
                 report_written: bool = True, hint: str | None = None) -> str:
    """The whole summary: :func:`summary_table`, one line saying where the records and the leaderboard
    (markdown and HTML) are and how long the run took (``seconds``), and ``hint`` when given."""
    out = Path(out)
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    where = (f"full leaderboard: {out / 'leaderboard.md'} (and leaderboard.html); flags are explained there"
             if report_written else f"records in {out} (no leaderboard: `bench report {out}` draws it)")
    lines = [summary_table(out, sort), *finish_lines(out), "", f"wrote {out}{took}; {where}"]
    return "\n".join(lines + ([hint] if hint else []))


def check_sort(sort: str | None, suite) -> None:
    """Refuse, before anything runs, a ``--sort`` key that cannot name a column of ``suite``'s leaderboard
    (one-line :class:`~honestbench.core.errors.BenchError`); see :func:`honestbench.report.sort_models`."""
    keys = [*SORT_KEYS, "clean", *suite.labels, *suite.aggregates, SURROGATE_LABEL, "worst-case"]
    if sort not in (None, "", *keys):
        raise BenchError(f"--sort {sort!r}: not a column of suite {suite.name}; choose one of {', '.join(keys)}")
