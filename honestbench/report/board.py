"""``leaderboard.html``: the leaderboard as a board that leads with the verdict, drawn from the records alone.

First a one-paragraph verdict, then the board: rank (by worst case), model (with the paper and venue its card
states, linked when it gives a link), clean accuracy, worst case with its 95 % Wilson interval, AutoAttack and
certified accuracy (each when the suite has such a column, found by its label or kernel) and the flags (a
flagged row is highlighted, each flag links to its explanation further down). Below it the per-attack matrix,
the accuracy-against-eps curve (only for a suite with several budgets of one attack), the flags, one expandable
section per model (:mod:`honestbench.report.board_model`) and the leaderboard's other sections as the markdown
has them (:func:`honestbench.report.html.markdown_body`).

One file with its style and script inline (:mod:`honestbench.report.board_assets`): no CDN, works offline; the
figures are relative links to the PNGs in ``figures/`` next to it (not embedded: they would make the page
megabytes). Nothing in it depends on the time of drawing: ``bench report DIR`` redraws it byte for byte.
Accuracies in % of the evaluated images.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

from honestbench.diagnostics.flags import explain
from honestbench.report.board_assets import CSS, JS
from honestbench.report.board_model import anchor, figure, model_section
from honestbench.report.figures import _eps_text
from honestbench.report.html import inline, markdown_body
from honestbench.report.tables import WORST, _columns, flag_refs
from honestbench.results import model_info_path
from honestbench.zoo.cards import display_name

_URL = re.compile(r"https?://\S+")
#: optional board columns: (key, header, does a (label, kernel) pair play this role)
ROLES = (("autoattack", "AutoAttack", lambda label, kernel: label.lower() == "autoattack"
          or kernel.startswith("autoattack")),
         ("certified", "Certified", lambda label, kernel: label.lower() == "certified"
          or kernel in ("certified", "crown", "ibp", "crown-ibp")))


@dataclass
class Row:
    """One model on the board: its records by column label, its ``model.json`` and the flags raised on it
    (flag name -> footnote numbers)."""

    model: str
    by: dict[str, dict]
    info: dict
    flags: dict[str, list[int]]
    rank: int | None = None

    @property
    def stochastic(self) -> bool:
        return any(bool(r.get("stochastic")) for r in self.by.values())

    @property
    def label(self) -> str:
        """The model's name with the incomplete-training mark its records carry (``slwta-wrn34-1 (2/30
        epochs)``)."""
        marks = [r.get("training") for r in self.by.values() if isinstance(r.get("training"), str)]
        return display_name(self.model, marks[0] if marks else "")

    def acc(self, label: str) -> float | None:
        r = self.by.get(label)
        return None if r is None else float(r["accuracy"])


def _model_info(out: Path, model: str) -> dict:
    try:
        info = json.loads(model_info_path(out, model).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def board_rows(out: Path, df, notes: list[str]) -> list[Row]:
    """The board's rows in ``df``'s order, ranked by worst case (ties share a rank); fills ``notes``."""
    rows = []
    for model, g in df.groupby("model", sort=False):
        records = g.to_dict("records")
        rows.append(Row(model, {r["attack"]: r for r in records}, _model_info(out, model),
                        flag_refs(model, records, notes)))
    worst = sorted((r.acc(WORST) for r in rows if r.acc(WORST) is not None), reverse=True)
    for r in rows:
        w = r.acc(WORST)
        r.rank = None if w is None else worst.index(w) + 1
    return rows


def _role_labels(df) -> dict[str, str]:
    """key of :data:`ROLES` -> the column label playing it in these records (first match)."""
    found: dict[str, str] = {}
    for label, kernel in zip(df["attack"], df["kernel"], strict=True):
        for key, _, match in ROLES:
            if key not in found and match(str(label), str(kernel)):
                found[key] = str(label)
    return found


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def acc_cell(r: dict | None) -> str:
    """A table cell with an accuracy in % and its Wilson interval below it ('bounded' for early exit)."""
    if r is None:
        return '<td class="num" data-v="">-</td>'
    acc = 100 * float(r["accuracy"])
    if not bool(r["exact"]):
        return (f'<td class="num" data-v="{_num(acc)}" title="early exit: an upper bound">&le; {acc:.2f} *'
                '<span class="ci">bounded</span></td>')
    lo, hi = r.get("ci_lo"), r.get("ci_hi")
    ci = "" if lo is None or lo != lo else f'<span class="ci">[{100 * lo:.1f}, {100 * hi:.1f}]</span>'
    return f'<td class="num" data-v="{_num(acc)}">{acc:.2f}{ci}</td>'


def _paper(info: dict) -> str:
    """The card's paper and venue as a small line, linked when the card gives a link ('link', 'url', or a URL
    in 'paper')."""
    paper, venue = str(info.get("paper") or ""), str(info.get("venue") or "")
    link = next((str(info[k]) for k in ("link", "url") if info.get(k)), "")
    found = _URL.search(paper)
    if found:
        link = link or found.group(0)
        paper = (paper[:found.start()] + paper[found.end():]).strip(" ,;()")
    text = " · ".join(x for x in (paper, venue) if x) or ("paper" if link else "")
    if not text:
        return ""
    inner = html.escape(text)
    if link.startswith(("http://", "https://")):
        inner = f'<a href="{html.escape(link)}">{inner}</a>'
    return f'<span class="paper">{inner}</span>'


def flag_links(row: Row) -> str:
    """The flags of a row as links to their explanations (``#flag-NAME``), 'none' without a flag."""
    if not row.flags:
        return '<span class="none">none</span>'
    return "".join(f'<a class="flag" href="#{anchor("flag", name)}" title="footnotes {", ".join(map(str, nums))}">'
                   f"{html.escape(name)}</a>" for name, nums in row.flags.items())


def _th(key: str, text: str, sub: str = "", first: str = "descending", num: bool = True) -> str:
    cls = ' class="num"' if num else ""
    sub_html = f'<span class="sub">{sub}</span>' if sub else ""
    return (f'<th{cls} data-key="{html.escape(key)}" data-first="{first}" scope="col">'
            f'<button type="button">{html.escape(text)}</button>{sub_html}</th>')


def _model_cell(row: Row) -> str:
    stoch = ' <span class="sub" style="display:inline">(stochastic)</span>' if row.stochastic else ""
    return (f'<td data-v="{html.escape(row.model.lower())}"><a href="#{anchor("model", row.model)}">'
            f"{html.escape(row.label)}</a>{stoch}{_paper(row.info)}</td>")


def _tr(row: Row, cells: str) -> str:
    cls = ' class="flagged"' if row.flags else ""
    return f'<tr{cls} data-model="{html.escape(row.model)}">{cells}</tr>'


def _column_note(df, label: str, header: str) -> str:
    """The small line under a column's header: its label when the header differs, and its budget."""
    r = df[df["attack"] == label].iloc[0]
    budget = "per sample" if r["kernel"] == "aggregate" else _eps_text(r["eps"], r["norm"])
    return budget if label == header else f"{label}, {budget}"


def board_table(df, rows: list[Row], roles: dict[str, str], sort_key: str | None) -> str:
    """The first table: rank, model, clean, worst case, the optional role columns and the flags."""
    heads = [_th("rank", "Rank", "by worst case", first="ascending"),
             _th("model", "Model", "paper · venue", "ascending", False), _th("clean", "Clean"),
             _th("worst", "Worst case", "every attack, per image [95 % CI]")]
    heads += [_th(key, text, html.escape(_column_note(df, roles[key], text))) for key, text, _ in ROLES if key in roles]
    heads.append(_th("flags", "Flags", "click for what they mean", num=False))
    if sort_key:  # the order the rows come in
        way = "ascending" if sort_key in ("rank", "model") else "descending"
        heads = [h.replace(f'data-key="{sort_key}"', f'data-key="{sort_key}" aria-sort="{way}"') for h in heads]
    body = []
    for r in rows:
        cells = [f'<td class="num" data-v="{r.rank or ""}">{r.rank or "-"}</td>', _model_cell(r),
                 acc_cell(r.by.get("clean")), acc_cell(r.by.get(WORST))]
        cells += [acc_cell(r.by.get(roles[key])) for key, _, _ in ROLES if key in roles]
        cells.append(f'<td data-v="{len(r.flags)}">{flag_links(r)}</td>')
        body.append(_tr(r, "".join(cells)))
    return (f'<table id="board" class="sortable board"><thead><tr>{"".join(heads)}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody></table>")


def matrix_table(df, rows: list[Row]) -> str:
    """Every column of every model (the leaderboard's Table 1) with Wilson intervals, sortable."""
    cols = _columns(df)
    heads = [_th("model", "Model", first="ascending", num=False)]
    for c in cols:
        sub = "" if c in ("clean", WORST) else _column_note(df, c, c)
        heads.append(_th(c, "clean" if c == "clean" else "worst case" if c == WORST else c, html.escape(sub)))
    body = [_tr(r, f'<td data-v="{html.escape(r.model.lower())}"><a href="#{anchor("model", r.model)}">'
                   f"{html.escape(r.model)}</a></td>" + "".join(acc_cell(r.by.get(c)) for c in cols)) for r in rows]
    return (f'<table id="matrix" class="sortable matrix"><thead><tr>{"".join(heads)}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody></table>")


def verdict(rows: list[Row], run: dict) -> str:
    """The opening paragraph: the model with the highest worst case (and whether it is flagged), how many rows
    are flagged."""
    ranked = sorted((r for r in rows if r.rank), key=lambda r: r.rank or 0)
    n = next((int(r["n"]) for row in rows for r in row.by.values()), run.get("n"))
    where = f"of {n:,} {html.escape(str(run.get('dataset')))} images"
    if not ranked:
        return f'<p class="verdict">No worst case in these records ({n} images).</p>'
    top = [r for r in ranked if r.rank == 1]
    names = " and ".join(f"<strong>{html.escape(r.model)}</strong>" for r in top)
    w = top[0].by[WORST]
    text = (f"Most robust: {names}. {100 * float(w['accuracy']):.2f} % (95 % CI {100 * w['ci_lo']:.1f} to "
            f"{100 * w['ci_hi']:.1f} %) {where} stay correct under every attack of the suite (worst case, per "
            "image)")
    flagged_top = [r.model for r in top if r.flags]
    if flagged_top:
        text += (f", but {html.escape(', '.join(flagged_top))} raised flags: its number may overstate robustness "
                 "until a stronger attack confirms it")
    flagged = sum(1 for r in rows if r.flags)
    text += (f". {flagged} of {len(rows)} models raised flags (highlighted rows; each flag links to what it means)."
             if flagged else f". No flag was raised on any of the {len(rows)} models.")
    return f'<p class="verdict">{text}</p>'


def flags_section(notes: list[str], diagnostics: str) -> str:
    """Every flag raised, with its explanation and its footnotes (``#flag-NAME``, ``#note-K``)."""
    from honestbench.diagnostics.flags import flag_name

    by_flag: dict[str, list[int]] = {}
    for k, note in enumerate(notes, 1):
        by_flag.setdefault(flag_name(note.split(": ", 1)[1]), []).append(k)
    parts = [f'<section id="flags"><h2>Flags</h2><p>{inline(diagnostics)}</p>']
    if by_flag:
        parts.append('<dl class="flags">')
        for name, nums in by_flag.items():
            items = "".join(f'<li id="note-{k}" value="{k}">{html.escape(notes[k - 1])}</li>' for k in nums)
            parts.append(f'<dt id="{anchor("flag", name)}">{html.escape(name)}</dt><dd>'
                         f'{html.escape(explain(name) or "(no explanation recorded for this flag)")}'
                         f"<ol>{items}</ol></dd>")
        parts.append("</dl>")
    return "".join(parts) + "</section>"


def _sections(markdown: str) -> tuple[str, dict[str, str]]:
    """The markdown's intro (title line dropped) and its ``## `` sections by heading."""
    intro, *rest = markdown.split("\n## ")
    return intro.split("\n", 1)[-1], {s.split("\n", 1)[0]: "## " + s for s in rest}


def board_html(out: Path, df, run: dict, markdown: str, sort: str | None, diagnostics: str,
               eps_figure: Path | None) -> str:
    """The whole board page of results directory ``out`` (records ``df`` already ordered by ``sort``; rows ranked
    by worst case when ``sort`` is None) around the sections of its ``markdown`` leaderboard."""
    notes: list[str] = []
    rows = board_rows(out, df, notes)
    if not sort:
        rows.sort(key=lambda r: (r.rank is None, r.rank or 0))
    roles = _role_labels(df)
    key = "rank" if not sort else "model" if sort == "model" else "worst" if sort == WORST else \
        next((k for k, v in roles.items() if v == sort), "clean" if sort == "clean" else None)
    intro, sections = _sections(markdown)
    title = f"Leaderboard: suite {run.get('suite')} on {run.get('dataset')} ({int(run.get('n') or 0):,} images)"
    parts = [f"<h1>{html.escape(title)}</h1>",
             '<nav><a href="#board">Board</a><a href="#per-attack">Per attack</a><a href="#flags">Flags</a>'
             '<a href="#models">Models</a><a href="#about">How it was measured</a><a href="#tables">More tables</a>'
             "</nav>", verdict(rows, run), board_table(df, rows, roles, key),
             '<section id="per-attack"><h2>Per attack</h2><p>Accuracy in % of the evaluated images (95 % Wilson '
             "interval below). An image counts as robust only if it is classified correctly both clean and under "
             "the attack; worst case: robust to every attack of the suite, per image.</p>", matrix_table(df, rows)]
    if not df["exact"].astype(bool).all():
        parts.append("<p>&le; ... * bounded (early exit): the attack did not run on images an earlier attack had "
                     "already fooled; its number is an upper bound, the worst case is exact.</p>")
    if eps_figure is not None:
        parts.append(figure(out, eps_figure, "Robust accuracy against eps (several budgets of one attack); "
                            "bands: 95 % Wilson intervals."))
    parts += ["</section>", flags_section(notes, diagnostics),
              '<section id="models"><h2>Models</h2><p>Click a model for its figures, timings and provenance.</p>']
    parts += [model_section(out, r.model, r.by, r.info, run, flag_links(r)) for r in rows]
    parts += ["</section>", f'<section id="about"><h2>How it was measured</h2>{markdown_body(intro)}</section>',
              '<section id="tables" class="wide">']
    parts += [markdown_body(text) for head, text in sections.items()
              if not head.startswith(("Robust accuracy", "Figures"))]
    parts.append("</section>")
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n"
            + "\n".join(parts) + f"\n<script>\n{JS}\n</script>\n</body>\n</html>\n")
