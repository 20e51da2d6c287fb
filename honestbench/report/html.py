"""The leaderboard's markdown as HTML: :func:`markdown_body` converts the sections of
:func:`honestbench.report.leaderboard.leaderboard_markdown` that the board (:mod:`honestbench.report.board`)
shows as they are (provenance, budgets, sizes, timings), so the two never disagree; :func:`markdown_to_html`
makes a whole static page of it.

The converter knows only the markdown the leaderboard uses: ``#`` / ``##`` headings, paragraphs, pipe tables
(tabulate's ``github`` format), ``-`` and ``1.`` lists, images ``![alt](src)``, links ``[text](href)``,
inline code and ``**bold**``. Every piece of text is HTML-escaped. No JavaScript, no external resource: the
figures are the relative PNG paths next to the page.
"""

from __future__ import annotations

import html
import re

STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f2f2f2}td{white-space:nowrap}tr:nth-child(even){background:#fafafa}img{max-width:100%}
code{background:#f4f4f4;padding:0 3px}"""

_ITEM = re.compile(r"^(- |\d+\. )")
_INLINE = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)|\[([^\]]+)\]\(([^)]+)\)|`([^`]+)`|\*\*(.+?)\*\*")


def inline(text: str) -> str:
    """One line of markdown as escaped HTML with images, links, code and bold."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        img_alt, img_src, link_text, href, code, bold = m.groups()
        if img_src is not None:
            out.append(f'<img src="{html.escape(img_src)}" alt="{html.escape(img_alt)}">')
        elif href is not None:
            out.append(f'<a href="{html.escape(href)}">{inline(link_text)}</a>')
        elif code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        else:
            out.append(f"<strong>{inline(bold)}</strong>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    """A pipe table (header, separator, rows) as an HTML table."""
    head = "".join(f"<th>{inline(c)}</th>" for c in _cells(lines[0]))
    body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in lines[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _block(lines: list[str]) -> str:
    """One blank-line separated block of the leaderboard's markdown as HTML."""
    first = lines[0]
    if first.startswith("## "):
        return f"<h2>{inline(first[3:])}</h2>"
    if first.startswith("# "):
        return f"<h1>{inline(first[2:])}</h1>"
    if first.startswith("|") and len(lines) >= 2 and set(lines[1].replace("|", "").strip()) <= set("-: "):
        return _table(lines)
    if all(_ITEM.match(ln) for ln in lines):
        tag = "ul" if first.startswith("- ") else "ol"
        items = "".join(f"<li>{inline(_ITEM.sub('', ln))}</li>" for ln in lines)
        return f"<{tag}>{items}</{tag}>"
    return "<p>" + " ".join(inline(ln) for ln in lines) + "</p>"


def markdown_body(text: str) -> str:
    """The leaderboard markdown ``text`` as HTML body elements (no page around them)."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return "\n".join(_block(b) for b in blocks if b)


def markdown_to_html(text: str, title: str = "bench leaderboard") -> str:
    """The whole static page for the leaderboard markdown ``text``."""
    body = markdown_body(text)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}'
            f"</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
