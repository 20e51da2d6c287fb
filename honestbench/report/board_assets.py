"""The inline style sheet and script of the HTML board (:mod:`honestbench.report.board`): no external resource,
so the page works offline; fixed text, so the page is the same bytes every time it is drawn.

The script sorts a ``table.sortable`` by the column whose header button is clicked (the cells' ``data-v``:
numbers, or text; empty values last), first in the header's ``data-first`` direction and then the other way; a
``?sort=KEY`` (or ``?sort=-KEY``, ascending) query sorts the board by the column whose ``data-key`` is KEY on
load; a ``#model-...`` link opens that model's details; printing opens every details element.
"""

from __future__ import annotations

CSS = """:root{--fg:#1d1d1f;--muted:#5f6368;--line:#dadce0;--head:#f1f3f4;--flag:#fff4e5;--flagline:#e8710a}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);max-width:1200px;
margin:0 auto;padding:0 16px 3em}
h1{font-size:1.5em;margin:.8em 0 .3em}h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid var(--line)}
nav{font-size:.9em;color:var(--muted)}nav a{margin-right:1em}
.verdict{font-size:1.08em;background:#eef4fd;border-left:4px solid #1a73e8;padding:.6em 1em;margin:.8em 0}
table{border-collapse:collapse;width:100%;margin:.5em 0 1em}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{position:sticky;top:0;z-index:1;background:var(--head);box-shadow:inset 0 -2px 0 #bdc1c6;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.sub,.ci,.paper{display:block;font-size:.78em;color:var(--muted);font-weight:normal}
td .ci{white-space:nowrap}.paper{white-space:normal}
tr.flagged{background:var(--flag)}tr.flagged td:first-child{box-shadow:inset 4px 0 0 var(--flagline)}
th button{all:unset;cursor:pointer}th button:focus-visible{outline:2px solid #1a73e8}
th button::after{content:" \\2195";color:#9aa0a6}th[aria-sort=descending] button::after{content:" \\2193";color:inherit}
th[aria-sort=ascending] button::after{content:" \\2191";color:inherit}
.flag{display:inline-block;background:#fde0c2;color:#7a3300;border-radius:3px;padding:0 5px;margin:1px 3px 1px 0;
font-size:.85em;text-decoration:none}.none{color:#188038}
table.matrix{table-layout:fixed;font-size:.87em}table.matrix th:first-child{width:11em}
table.matrix th{white-space:normal;overflow-wrap:anywhere;font-size:.86em;padding:5px 4px}
table.matrix th,table.matrix td:first-child{overflow-wrap:anywhere}
.wide{overflow-x:auto}.wide table{width:auto;font-size:.87em}
details.model{border:1px solid var(--line);border-radius:6px;margin:.4em 0;padding:.3em .8em}
details.model[open]{padding-bottom:.8em}details.model>summary{cursor:pointer}
details.model>summary .sub{display:inline;margin-left:.6em}
.figs{display:grid;grid-template-columns:1fr 1fr;gap:8px 16px;align-items:start}.figs>*{min-width:0}
figure{margin:.4em 0}
figure img{max-width:100%;height:auto}figcaption{font-size:.85em;color:var(--muted);max-width:46em}
code{background:#f1f3f4;padding:0 3px;overflow-wrap:anywhere}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:1px 12px;font-size:.9em}dl.prov dt{font-weight:600}
dl.prov dd{margin:0;overflow-wrap:anywhere}dl.flags dt{font-weight:600;margin-top:.6em}dl.flags ol{margin:.2em 0}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}.grid2>*{min-width:0}
@media (max-width:900px){.grid2,.figs{grid-template-columns:1fr}}
@media print{body{max-width:none;font-size:10pt;padding:0}nav,th button::after{display:none}
thead th{position:static}tr,figure,dl.prov{break-inside:avoid}h2{break-after:avoid}
tr.flagged,.flag,.verdict,thead th{-webkit-print-color-adjust:exact;print-color-adjust:exact}
a{color:inherit;text-decoration:none}details.model{border:none;padding:0}}"""

JS = """(function () {
  "use strict";
  function value(row, i) {
    var v = row.cells[i] ? row.cells[i].getAttribute("data-v") : null;
    if (v === null || v === "") return null;
    var x = Number(v);
    return isNaN(x) ? v.toLowerCase() : x;
  }
  function sortTable(table, i, dir) {
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, i), y = value(b, i);
      if (x === null || y === null) return (x === null) - (y === null);
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, j) {
      if (j === i) th.setAttribute("aria-sort", dir); else th.removeAttribute("aria-sort");
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      var button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () {
        var now = th.getAttribute("aria-sort");
        var first = th.getAttribute("data-first") || "descending";
        var dir = now ? (now === "descending" ? "ascending" : "descending") : first;
        sortTable(table, i, dir);
      });
    });
  });
  var query = /[?&]sort=(-?)([^&#]+)/.exec(location.search), board = document.getElementById("board");
  if (query && board) {
    Array.prototype.forEach.call(board.tHead.rows[0].cells, function (th, i) {
      var dir = query[1] ? "ascending" : "descending";
      if (th.getAttribute("data-key") === decodeURIComponent(query[2])) sortTable(board, i, dir);
    });
  }
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1)), el = id ? document.getElementById(id) : null;
    if (el && el.tagName === "DETAILS") el.open = true;
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
  });
})();"""
