"""One model's expandable section of the HTML board (:mod:`honestbench.report.board`): its bar chart (clean, each
attack, worst case, with 95 % Wilson intervals), its confidence distributions (the report's Figure 3), its
adversarial examples (Figure 2), the time each attack took, its provenance (commit, checkpoint and data sha256,
versions) and the command that made it. Figures are relative links to ``figures/*.png``, drawn by
:func:`honestbench.report.write_report` before the page.
"""

from __future__ import annotations

import html
import re
import struct
from pathlib import Path

from honestbench.report.tables import WORST
from honestbench.results import safe_name

#: the per-model figures: (file prefix, caption)
MODEL_FIGURES = (
    ("bars", "Accuracy per column in % of the evaluated images; error bars: 95 % Wilson intervals."),
    ("confidence", "Probability of the predicted class on the clean images and on the adversarial images of "
                   "the model's strongest attack (the report's Figure 3)."),
)


def anchor(kind: str, name: str) -> str:
    """The element id of a flag's explanation or a model's section: ``flag-NAME``, ``model-NAME``."""
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def figure_name(prefix: str, model: str) -> str:
    """The file name of a per-model figure in ``figures/``."""
    return f"{prefix}_{safe_name(model)}.png"


def _png_size(path: Path) -> tuple[int, int] | None:
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def figure(out: Path, path: Path, caption: str, lazy: bool = False) -> str:
    """A ``<figure>`` showing ``path`` (under ``out``) at its natural size at most, by a relative link."""
    rel = path.relative_to(out).as_posix()
    size = _png_size(path)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    load = ' loading="lazy"' if lazy else ""
    return (f'<figure><img src="{html.escape(rel)}"{dims}{load} alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _timings(by: dict[str, dict]) -> str:
    """Seconds and images attacked per attack, and the clean inference times."""
    clean = by.get("clean") or {}
    rows = []
    for label, r in by.items():
        if label == "clean" or r.get("kernel") == "aggregate":
            continue
        secs, done = r.get("seconds"), r.get("evaluated")
        per = f"{1000 * secs / done:.1f}" if secs and done and done == done else "-"
        rows.append(f'<tr><td>{html.escape(label)}</td><td class="num">{secs or 0:.1f}</td>'
                    f'<td class="num">{_int(done)}</td><td class="num">{per}</td></tr>')
    b1, b256 = clean.get("ms_per_image_b1"), clean.get("ms_per_image_b256")
    clean_text = (f"Clean inference: {_ms(b1)} ms per image at batch 1, {_ms(b256)} ms at batch 256; clean pass "
                  f"{clean.get('seconds') or 0:.1f} s.")
    return ('<table><thead><tr><th>Attack</th><th class="num">seconds</th><th class="num">images attacked</th>'
            '<th class="num">ms per image</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
            f"<p>{clean_text}</p>")


def _int(v) -> str:
    return "-" if v is None or v != v else str(int(v))


def _ms(v) -> str:
    return "-" if v is None or v != v else f"{v:.2f}"


def _provenance(by: dict[str, dict], info: dict, run: dict) -> str:
    """The model's provenance as a definition list (full hashes)."""
    r = by.get("clean") or next(iter(by.values()))
    source = info.get("source") or {}
    items = [("checkpoint sha256", r.get("checkpoint_sha256") or info.get("checkpoint_sha256") or "-"),
             ("source", ", ".join(f"{k}: {v}" for k, v in source.items()) or "-"),
             ("data sha256", r.get("data_sha256") or run.get("data_sha256") or "-"),
             ("git commit", r.get("git_commit") or run.get("git_commit") or "-"),
             ("versions", f"torch {r.get('torch_version')}, torchattacks {r.get('torchattacks_version')}, "
                          f"ART {r.get('art_version')}, python {run.get('python', '-')}"),
             ("run", f"seed {r.get('seed')}, batch {r.get('batch_size')}, device {r.get('device')}, "
                     f"{run.get('machine', '-')}, {r.get('date')}")]
    return '<dl class="prov">' + "".join(f"<dt>{html.escape(k)}</dt><dd><code>{html.escape(str(v))}</code></dd>"
                                         for k, v in items) + "</dl>"


def _commands(out: Path, run: dict) -> str:
    cmds = [c for c in (run.get("commands") or [run.get("command")]) if c]
    made = "; then ".join(f"<code>{html.escape(c)}</code>" for c in cmds) or "-"
    return f"<p>Made by {made}; redraw: <code>bench report {html.escape(str(out))}</code>.</p>"


def model_section(out: Path, model: str, by: dict[str, dict], info: dict, run: dict, flags_html: str) -> str:
    """The ``<details id="model-NAME">`` section of one model."""
    worst = by.get(WORST)
    head = f"worst case {100 * float(worst['accuracy']):.2f} %" if worst else ""
    desc = info.get("description") or ""
    figs = [figure(out, out / "figures" / figure_name(p, model), caption, lazy=True) for p, caption in MODEL_FIGURES
            if (out / "figures" / figure_name(p, model)).is_file()]
    examples = out / "figures" / figure_name("examples", model)
    parts = [f'<details class="model" id="{anchor("model", model)}"><summary><strong>{html.escape(model)}</strong>'
             f'<span class="sub">{html.escape(head)}</span> {flags_html}</summary>']
    if desc:
        parts.append(f"<p>{html.escape(desc)}</p>")
    parts.append('<div class="figs">' + "".join(figs) + "</div>")
    if examples.is_file():
        parts.append(figure(out, examples, "Adversarial examples per attack: clean | perturbation (scaled) | "
                            "adversarial; green: still correct, red: fooled (the report's Figure 2).", lazy=True))
    parts.append(f'<div class="grid2"><div><h3>Time</h3>{_timings(by)}</div>'
                 f"<div><h3>Provenance</h3>{_provenance(by, info, run)}</div></div>")
    parts.append(_commands(out, run))
    return "".join(parts) + "</details>"
