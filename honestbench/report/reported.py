"""The authors' claims beside ours: for every model whose card states ``reported`` accuracies (with ``paper`` and
``venue``), a table of each claimed figure next to what this run measured for the same column (the record of that
attack label, matched case-insensitively; ``clean`` is the natural accuracy) and the run's worst case. Accuracies
are in %; a claim written as a fraction (0.82) is shown as 82.00. Read from ``cells/<model>/model.json`` (no
model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

from tabulate import tabulate

from honestbench.results.layout import model_info_path


def _pct(v: object) -> str:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return f"{100 * x:.2f}" if x <= 1 else f"{x:.2f}"


def _claims(out: Path, model: str) -> dict | None:
    path = model_info_path(out, model)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info.get("reported"), dict) and info["reported"] else None


def reported_section(out: str | Path, df) -> list[str]:
    """Markdown lines of the 'Reported by the authors' section (empty when no model states a claim)."""
    out = Path(out)
    rows = []
    for model, own in df.groupby("model", sort=False):
        info = _claims(out, model)
        if info is None:
            continue
        ours = {str(a).lower(): r for a, r in zip(own["attack"], own["accuracy"], strict=True)}
        source = " ".join(str(info[k]) for k in ("paper", "venue") if info.get(k)) or "-"
        for column, claim in info["reported"].items():
            got = ours.get(str(column).lower())
            rows.append([model, column, _pct(claim), "-" if got is None else f"{100 * got:.2f}",
                         f"{100 * ours['worst-case']:.2f}" if "worst-case" in ours else "-", source])
    if not rows:
        return []
    table = tabulate(rows, headers=["Model", "Column", "Reported", "Ours", "Our worst case", "Source"],
                     tablefmt="github", disable_numparse=True)
    return ["## Reported by the authors", "",
            "Accuracy in % that the model's card says its authors report (`reported`), beside this run's measure "
            "of the same column and its worst case over the suite.", "", table, ""]
