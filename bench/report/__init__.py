"""``bench report DIR``: the leaderboard (markdown) and figures of a results directory, redrawn from its
records, matrices and cells alone: no model is loaded and no attack runs.

``leaderboard.md`` holds: the exact command(s), suite and provenance; a Table-1-style table (rows models;
columns natural, PGD, FGSM, CW, worst case, then the suite's other columns; accuracy in % with the count of
robust images); a Table-2-style table (per-sample intersection of L2 and L-inf PGD) when the suite has both;
for stochastic models the mean over R stochastic passes with its spread; nominal vs effective budgets (one
row per distinct configuration of a column: models of one run may have their own suite flavours); timings;
the warnings column with its footnotes, one explanation per flag (:func:`bench.diagnostics.explain`) and the
diagnostic checks that ran; the figures. Rows (and figure legends) follow :func:`bench.results.model_order`:
the zoo's registry order, then other models by name, whatever order the records were written in.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tabulate import tabulate

from bench.core.io import atomic_path
from bench.results import Matrix, load, matrix_path, read_records, safe_name

if TYPE_CHECKING:
    import pandas as pd

TABLE1_FIRST = ["clean", "PGD", "FGSM", "CW", "worst-case"]
HEADERS = {"clean": "Natural", "worst-case": "Worst case"}
TABLE2 = ("PGD-L2", "PGD", "PGD-L2+Linf")
METHODS = "docs/methods.md"


def _pct(row) -> str:
    """'45.31 (116)' when exact; '<= 45.31 (>= 12.11) *' when the column is only bounded (early exit)."""
    if row is None:
        return "-"
    if row["exact"]:
        return f"{100 * row['accuracy']:.2f} ({row['count']})"
    return f"<= {100 * row['accuracy']:.2f} (>= {100 * row['count'] / row['n']:.2f}) *"


def _eps(v) -> str:
    if v is None or v != v:
        return "unbounded"
    k = v * 255
    return f"{v:.4g} ({k:.3g}/255)" if abs(k - round(k)) < 1e-6 or k < 40 else f"{v:.4g}"


def _columns(df) -> list[str]:
    present = list(dict.fromkeys(df["attack"]))
    first = [c for c in TABLE1_FIRST if c in present]
    return first + [c for c in present if c not in first]


def _per_model(df) -> Iterator[tuple[str, pd.DataFrame, dict[str, dict]]]:
    """``(model, its rows, its rows by attack label)`` for every model of ``df``, in ``df``'s order (the
    records as :func:`bench.results.load` orders them)."""
    for model, g in df.groupby("model", sort=False):
        yield model, g, {r["attack"]: r for r in g.to_dict("records")}


def table1(df) -> tuple[str, list[str]]:
    """Markdown Table 1 (rows models) and the warning footnotes it refers to."""
    cols = _columns(df)
    notes: list[str] = []
    rows = []
    for model, g, by in _per_model(df):
        refs: dict[str, list[int]] = {}  # flag name -> footnote numbers
        for r in g.to_dict("records"):
            for w in filter(None, (r.get("warnings") or "").split(";")):
                text = f"{model} / {r['attack']}: {w.strip()}"
                if text not in notes:
                    notes.append(text)
                num = notes.index(text) + 1
                if num not in refs.setdefault(w.split(":", 1)[0].strip(), []):
                    refs[w.split(":", 1)[0].strip()].append(num)
        stoch = " (stochastic)" if g["stochastic"].any() else ""
        flags = "; ".join(f"{name} [{', '.join(map(str, nums))}]" for name, nums in refs.items()) or "none"
        rows.append([model + stoch, *_cells(by, cols, _pct), flags])
    headers = ["Model"] + [HEADERS.get(c, c) for c in cols] + ["Warnings"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), notes


def table2(df) -> str | None:
    """Markdown Table 2: L2 PGD, L-inf PGD and their per-sample intersection (never their sum)."""
    if not set(TABLE2) <= set(df["attack"]):
        return None
    rows = []
    for model, _, by in _per_model(df):
        a, b = by["PGD-L2"]["accuracy"], by["PGD"]["accuracy"]
        rows.append([model, _pct(by.get("clean")), _pct(by["PGD-L2"]), _pct(by["PGD"]),
                     _pct(by["PGD-L2+Linf"]), f"{100 * (a + b):.2f}"])
    headers = ["Model", "Natural", "PGD L2", "PGD L-inf", "L2 and L-inf, per sample",
               "sum of the two (the report's 114.6 % method: not an accuracy)"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def budget_table(df) -> tuple[str, list[str]]:
    """Markdown table of each attack column's parameters with nominal and effective budget, plus plain
    sentences for every column whose effective budget is below its nominal one. A column that ran with
    different attacks or parameters on different models (per-model suites: EOT for stochastic models) gets
    one row per configuration, naming its models."""
    rows, sentences = [], []
    attacks = df[(df["kernel"] != "aggregate") & (df["attack"] != "clean")]
    models_of = attacks.groupby(["attack", "kernel", "params"], sort=False)["model"].agg(list).to_dict()
    attacks = attacks.drop_duplicates(["attack", "kernel", "params"])
    varies = attacks["attack"].duplicated(keep=False)
    for r, var in zip(attacks.to_dict("records"), varies, strict=True):
        params = json.loads(r["params"] or "{}")
        text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        if var:
            text = f"({', '.join(models_of[(r['attack'], r['kernel'], r['params'])])}) {text}"
        rows.append([r["attack"], r["kernel"], r["norm"], _eps(r["eps"]), _eps(r["eps_effective"]), text])
        eps, eff = r["eps"], r["eps_effective"]
        if eps is not None and eff is not None and eff == eff and eff < eps - 1e-12:
            steps, alpha = params.get("steps"), params.get("alpha")
            how = (f"{steps} steps of {alpha:.4g} from the clean image (no random start) cannot leave a "
                   f"{eff:.4g} box" if steps and alpha else "the attack cannot reach its nominal budget")
            sentences.append(f"**{r['attack']}**: {how}: its nominal {r['norm']} budget {eps:.4g} is "
                             f"effectively {_eps(eff)}. Compare it with attacks of budget {eff:.4g}, "
                             f"not {eps:.4g}.")
    for norm, g in attacks[attacks["eps_effective"].notna()].drop_duplicates("attack").groupby("norm"):
        effs = g.set_index("attack")["eps_effective"].astype(float)
        if len(effs) > 1 and effs.max() > 2 * effs.min() and len(g["kernel"].unique()) > 1:
            listed = ", ".join(f"{a} {v:.4g}" for a, v in effs.items())
            sentences.append(f"The {norm} columns have different effective budgets ({listed}): a lower "
                             "accuracy under a larger budget says nothing about which attack is stronger.")
    headers = ["Column", "Attack", "Norm", "Nominal eps", "Effective eps", "Parameters"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), sentences


def passes_table(df) -> str | None:
    """Markdown table of the stochastic models: each column's accuracy as the mean over R stochastic passes
    with its spread (standard deviation over the passes), next to the single-pass number of Table 1."""
    if "accuracy_mean_R" not in df.columns:
        return None
    sto = df[df["R"].notna() & df["stochastic"].astype(bool)]
    if sto.empty:
        return None
    cols = _columns(df)
    rows = []
    for model, g, by in _per_model(sto):
        rows.append([model, _int(g["R"].iloc[0]), *_cells(by, cols, _mean_over_r)])
    headers = ["Model", "R"] + [HEADERS.get(c, c) for c in cols]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def flag_explanations(notes: list[str]) -> list[str]:
    """One line per distinct flag name in the footnotes: the check and what it means."""
    from bench.diagnostics import explain, flag_name

    names = dict.fromkeys(flag_name(n.split(": ", 1)[1]) for n in notes if ": " in n)
    return [f"- `{name}`: {explain(name)}" for name in names if explain(name)]


def timing_table(df) -> str:
    """Markdown table: clean ms/image at batch 1 and 256, seconds (images attacked) per attack, total."""
    cols = [a for a in _columns(df)
            if a != "clean" and (df.loc[df["attack"] == a, "kernel"] != "aggregate").all()]
    rows = []
    for model, _, by in _per_model(df):
        c = by.get("clean", {})
        total = sum(by[a]["seconds"] or 0 for a in cols if a in by) + (c.get("seconds") or 0)
        cells = _cells(by, cols, lambda r: f"{r['seconds']:.1f} ({_int(r['evaluated'])})")
        rows.append([model, _num(c.get("ms_per_image_b1"), 2), _num(c.get("ms_per_image_b256"), 3), *cells,
                     f"{total:.1f}"])
    headers = ["Model", "clean ms/img (batch 1)", "clean ms/img (batch 256)"] + \
              [f"{a}: s (images attacked)" for a in cols] + ["total s"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def norm_table(df) -> str | None:
    """Median perturbation size of the successful adversarial images per (model, attack), in the attack's
    norm; for minimum-norm attacks (CW) also the success rate at any size and its median L2."""
    cols = [a for a in _columns(df)
            if a != "clean" and (df.loc[df["attack"] == a, "kernel"] != "aggregate").all()]
    if not cols:
        return None
    rows = []
    for model, _, by in _per_model(df):
        rows.append([model, *_cells(by, cols, _norm_sizes)])
    headers = ["Model"] + [f"{a} ({df.loc[df['attack'] == a, 'norm'].iloc[0]})" for a in cols]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _cells(by: dict[str, dict], cols: list[str], fmt: Callable[[dict], str]) -> list[str]:
    """One table cell per column: ``fmt(row)`` of the model's row for that column, '-' where it has none."""
    return [fmt(by[c]) if c in by else "-" for c in cols]


def _mean_over_r(r: dict) -> str:
    if r["accuracy_mean_R"] is None or r["accuracy_mean_R"] != r["accuracy_mean_R"]:
        return "bounded (early exit)"
    return f"{100 * r['accuracy_mean_R']:.2f} +- {100 * r['spread']:.2f}"


def _norm_sizes(r: dict) -> str:
    text = f"{_num(r['norm_median'], 4)} ({_int(r['fooled'])})"
    success = r.get("unbounded_success")
    if success is not None and success == success:  # not None, not NaN
        text += f"; any size: {100 * success:.1f} %, median {_num(r['unbounded_norm_median'], 3)}"
    return text


def _int(v) -> str:
    return "-" if v is None or v != v else str(int(v))


def _num(v, digits: int) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def _mode_text(run: dict) -> str:
    if run.get("mode") == "full-matrix":
        return ("full matrix: every clean-correct image met every attack, so every column is exact "
                "(the worst case is their per-sample intersection)")
    order = " -> ".join(run.get("order", [])) or "by cost"
    return ("early exit: only clean-correct images are attacked, attacks run cheapest first "
            f"({order}), and an image fooled by an earlier attack is not attacked again. The worst case is "
            "exact. A later attack's own column is then known only within bounds: `<= hi (>= lo) *` "
            "(hi counts the skipped images as robust, lo as fooled; both in records as `count_hi`, `count`). "
            "Run with `--full-matrix` for exact per-attack columns")


def leaderboard_markdown(out: str | Path, figures: bool = True, figure_notes: dict | None = None) -> str:
    """The leaderboard of results directory ``out`` as markdown (read from its records only)."""
    out = Path(out)
    run, _ = read_records(out)
    df = load(out)
    t1, notes = table1(df)
    lines = [f"# Leaderboard: suite `{run.get('suite')}` on {run.get('dataset')} ({run.get('n')} images)", ""]
    cmds = run.get("commands") or [run.get("command")]
    made = "; then ".join(f"`{c}`" for c in cmds if c)
    lines += [f"Made by: {made} (redraw: `bench report {out}`)", ""]
    lines += [f"Suite `{run.get('suite')}`: {run.get('suite_description', '')}.", "",
              f"Mode: {_mode_text(run)}.", "",
              f"Seed {run.get('seed')}, batch {run.get('batch_size')}, device {run.get('device')}; "
              f"git {str(run.get('git_commit'))[:12]}, torch {run.get('torch_version')}, torchattacks "
              f"{run.get('torchattacks_version')}, ART {run.get('art_version')}; data sha256 "
              f"{str(run.get('data_sha256'))[:12]}; {run.get('date')}.", ""]
    lines += ["## Robust accuracy (Table 1)", "",
              "Accuracy in % of all evaluated images (count of robust images in brackets); an image counts "
              "as robust only if it is classified correctly both clean and under the attack. Worst case: "
              "robust to every attack of the suite, per image. 95 % Wilson intervals are in `records.csv` "
              "(`ci_lo`, `ci_hi`).", "", t1, ""]
    if not df["exact"].all():
        lines += ["\\* early exit: this attack was not run on the images an earlier attack of the cascade "
                  "had already fooled; its own accuracy lies between the two numbers shown.", ""]
    if df["stochastic"].any():
        lines += ["(stochastic): the model's outputs change between identical forward passes; its clean and "
                  "adversarial predictions are single stochastic passes under fixed seeds (the mean over R "
                  "passes is in its own table below, when measured), and an attack without EOT (`eot=1` in "
                  "its parameters) may overestimate its robustness.", ""]
    diagnosed = run.get("diagnostics") or {}
    ran = ("diagnostics not run: `bench run --diagnose`" if not diagnosed else
           "diagnostics ran on " + ", ".join(diagnosed))
    lines += ["Warnings: " + (f"none raised ({ran})" if not notes else f"({ran})"), ""]
    lines += [f"{i + 1}. {n}" for i, n in enumerate(notes)] + ([""] if notes else [])
    explained = flag_explanations(notes)
    if explained:
        lines += ["What the flags mean:", ""] + explained + [""]
    if diagnosed:
        checks = [f"{m}: measured {', '.join(d.get('measured') or []) or 'nothing'} on {d.get('n')} images"
                  + (f"; skipped {', '.join(d['skipped'])} (time budget)" if d.get("skipped") else "")
                  for m, d in diagnosed.items()]
        lines += ["Diagnostic checks (besides the checks on the records themselves): " + "; ".join(checks)
                  + ".", ""]
    pt = passes_table(df)
    if pt:
        lines += ["## Stochastic models: mean over R passes", "",
                  "Accuracy in % as the mean over R further stochastic forward passes per image (clean "
                  "and on each adversarial image; an image counts in a pass when both predictions are "
                  "right) +- the standard deviation over the passes of the per-pass accuracy. Table 1 shows "
                  "one seeded pass.", "", pt, ""]
    t2 = table2(df)
    if t2:
        lines += ["## L2 and L-inf PGD per sample (Table 2)", "",
                  "An image counts only if it survives both attacks (per-sample intersection, at most the "
                  "smaller of the two). The report's Table 2 added the two accuracies (114.6 %): shown in "
                  "the last column only to show that it is not an accuracy.", "", t2, ""]
    bt, sentences = budget_table(df)
    lines += ["## Budgets: nominal and effective", "", bt, ""] + [f"- {s}" for s in sentences]
    lines += [""] if sentences else []
    nt = norm_table(df)
    if nt:
        lines += ["## Perturbation sizes", "", "Median norm of the adversarial perturbations that fooled the "
                  "model (number of such images); for minimum-norm attacks also the success rate at any size "
                  "among the images attacked and the median of those norms.", "", nt, ""]
    lines += ["## Time", "", "Wall time per attack (seconds, images attacked) and clean inference time per "
              "image.", "", timing_table(df), ""]
    if figures:
        figure_notes = figure_notes or {}
        lines += ["## Figures", ""]
        for name, alt, caption in (
            ("accuracy_vs_eps.png", "robust accuracy against eps", "Robust accuracy against eps" + (
                f" ({figure_notes['eps']})" if figure_notes.get("eps") else "")),
            ("confidence.png", "predicted-class probability", "Predicted-class probability on clean test "
             "images: all (left) and correctly classified (right) (the report's Figure 3)"),
        ):
            if (out / "figures" / name).is_file():
                lines += [f"{caption}:", "", f"![{alt}](figures/{name})", ""]
        examples = sorted((out / "figures").glob("examples_*.png"))
        if examples:
            lines += ["Adversarial examples correctly (green) and incorrectly (red) classified, per attack "
                      "(the report's Figure 2):", ""]
            lines += [f"- [{p.stem.removeprefix('examples_')}](figures/{p.name})" for p in examples]
            lines += ["", f"![examples]({'figures/' + examples[0].name})", ""]
    lines += [f"Definitions: {METHODS} (robust accuracy, budgets, the report's mistakes).", ""]
    return "\n".join(lines)


def write_report(out: str | Path) -> Path:
    """Redraw ``DIR/leaderboard.md`` and ``DIR/figures/*.png`` from the saved records, matrices and cells."""
    from bench.report import figures

    out = Path(out)
    run, _ = read_records(out)
    df = load(out)
    fig_dir = out / "figures"
    matrices: dict[str, Matrix] = {}
    for model in dict.fromkeys(df["model"]):
        path = matrix_path(out, model)
        if path.is_file():
            matrices[model] = Matrix.load(path)
    classes = list(run.get("classes") or [])
    for model, m in matrices.items():
        figures.examples_figure(out, model, m, classes, fig_dir / f"examples_{safe_name(model)}.png")
    figures.confidence_figure(matrices, fig_dir / "confidence.png")
    _, eps_note = figures.eps_figure(df, fig_dir / "accuracy_vs_eps.png")
    text = leaderboard_markdown(out, figures=True, figure_notes={"eps": eps_note})
    path = out / "leaderboard.md"
    with atomic_path(path, "w") as f:
        f.write(text)
    return path


def report_command(args: argparse.Namespace) -> int:
    """``bench report DIR``: rewrite the leaderboard and figures of DIR and print the leaderboard."""
    path = write_report(args.dir)
    print(path.read_text())
    return 0
