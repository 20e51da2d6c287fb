"""``bench report DIR``: the leaderboard (markdown and the HTML board) and figures of a results directory,
redrawn from its records, matrices and cells alone: no model is loaded and no attack runs.

:mod:`~honestbench.report.tables` draws the markdown tables, :mod:`~honestbench.report.leaderboard` puts them together
with the provenance, warnings and figure links, :mod:`~honestbench.report.board` draws the HTML board,
:mod:`~honestbench.report.figures` and :mod:`~honestbench.report.model_figures` draw the figures;
:func:`write_report` writes them all into the directory.
"""

from __future__ import annotations

from pathlib import Path

from honestbench.core.io import atomic_path
from honestbench.report import figures, model_figures
from honestbench.report.board import board_html
from honestbench.report.board_model import figure_name
from honestbench.report.html import markdown_to_html
from honestbench.report.leaderboard import METHODS, checks_ran, flag_explanations, leaderboard_markdown
from honestbench.report.tables import (
    HEADERS,
    TABLE1_FIRST,
    TABLE2,
    budget_table,
    norm_table,
    passes_table,
    sort_models,
    table1,
    table2,
    timing_table,
)
from honestbench.results import Matrix, load, matrix_path, read_records

__all__ = ["HEADERS", "METHODS", "TABLE1_FIRST", "TABLE2", "budget_table", "flag_explanations",
           "leaderboard_markdown", "load", "markdown_to_html", "norm_table", "passes_table", "sort_models",
           "table1", "table2", "timing_table", "write_report"]


def write_report(out: str | Path, sort: str | None = None) -> Path:
    """Redraw ``DIR/leaderboard.md``, the board ``DIR/leaderboard.html`` (:mod:`honestbench.report.board`) and
    ``DIR/figures/*.png`` from the saved records, matrices and cells; rows ordered by ``sort``
    (:func:`sort_models`, checked before anything is written). Returns the markdown's path."""
    out = Path(out)
    run, _ = read_records(out)
    df = sort_models(load(out), sort)
    fig_dir = out / "figures"
    matrices: dict[str, Matrix] = {}
    for model in dict.fromkeys(df["model"]):
        path = matrix_path(out, model)
        if path.is_file():
            matrices[model] = Matrix.load(path)
    classes = list(run.get("classes") or [])
    for model in dict.fromkeys(df["model"]):
        model_figures.bars_figure(df, model, fig_dir / figure_name("bars", model))
    for model, m in matrices.items():
        figures.examples_figure(out, model, m, classes, fig_dir / figure_name("examples", model))
        model_figures.model_confidence_figure(model, m, fig_dir / figure_name("confidence", model))
    figures.confidence_figure(matrices, fig_dir / "confidence.png")
    eps_path, eps_note = figures.eps_figure(df, fig_dir / "accuracy_vs_eps.png")
    if eps_path is None:
        (fig_dir / "accuracy_vs_eps.png").unlink(missing_ok=True)  # drawn by an older bench: no longer fits
    text = leaderboard_markdown(out, figures=True, figure_notes={"eps": eps_note}, sort=sort)
    path = out / "leaderboard.md"
    with atomic_path(path, "w") as f:
        f.write(text)
    ran, records = checks_ran(run.get("diagnostics") or {})
    page = board_html(out, df, run, text, sort, f"Checks: {ran}. {records}", eps_path)
    with atomic_path(out / "leaderboard.html", "w") as f:
        f.write(page)
    return path
