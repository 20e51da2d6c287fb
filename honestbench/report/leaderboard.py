"""The leaderboard of a results directory as markdown, drawn from its records alone (no model is loaded and no
attack runs): the exact command(s), suite and provenance; Table 1 with the warnings, their footnotes, one
explanation per flag (:func:`honestbench.diagnostics.flags.explain`) and the diagnostic checks that ran; for
stochastic models the mean over R passes; Table 2 when the suite has L2 and L-inf PGD; nominal vs effective
budgets; perturbation sizes; timings; the figures. Rows (and figure legends) follow
:func:`honestbench.results.model_order`: the zoo's registry order, then other models by name.
"""

from __future__ import annotations

from pathlib import Path

from honestbench.diagnostics.flags import explain, flag_name
from honestbench.report.certified import certified_section
from honestbench.report.reported import reported_section
from honestbench.report.tables import (
    budget_table,
    norm_table,
    passes_table,
    sort_models,
    table1,
    table2,
    timing_table,
)
from honestbench.results import load, read_records

METHODS = "docs/methods.md"


def flag_explanations(notes: list[str]) -> list[str]:
    """One line per distinct flag name in the footnotes: the check and what it means."""
    names = dict.fromkeys(flag_name(n.split(": ", 1)[1]) for n in notes if ": " in n)
    return [f"- `{name}`: {explain(name)}" for name in names if explain(name)]


def _mode_text(run: dict) -> str:
    if run.get("mode") == "full-matrix":
        return ("full matrix: every clean-correct image met every attack, so every column is exact "
                "(the worst case is their per-sample intersection)")
    order = " -> ".join(run.get("order", [])) or "by cost"
    return ("early exit: only clean-correct images are attacked, attacks run cheapest first "
            f"({order}), and an image fooled by an earlier attack is not attacked again. The worst case is "
            "exact. A later attack's own column is then known only within bounds and Table 1 prints it as "
            "`bounded *` (the upper bound counts the skipped images as robust, the lower as fooled: "
            "`count_hi`, `count` in the records). Run with `--full-matrix` for exact per-attack columns")


def _provenance(out: Path, run: dict) -> list[str]:
    """Title, the command(s) that made the directory, suite, mode and provenance."""
    lines = [f"# Leaderboard: suite `{run.get('suite')}` on {run.get('dataset')} ({run.get('n')} images)", ""]
    cmds = run.get("commands") or [run.get("command")]
    made = "; then ".join(f"`{c}`" for c in cmds if c)
    lines += [f"Made by: {made} (redraw: `bench report {out}`)", ""]
    own: dict[str, list[str]] = {}
    for model, suite in (run.get("model_suites") or {}).items():
        own.setdefault(suite.get("description", ""), []).append(model)
    lines += [f"Suite `{run.get('suite')}`: {run.get('suite_description', '')}.", ""]
    lines += [f"{', '.join(models)}: {text}." for text, models in own.items() if text] + ([""] if own else [])
    lines += [f"Mode: {_mode_text(run)}.", "",
              f"Seed {run.get('seed')}, batch {run.get('batch_size')}, device {run.get('device')}; "
              f"git {str(run.get('git_commit'))[:12]}, torch {run.get('torch_version')}, torchattacks "
              f"{run.get('torchattacks_version')}, ART {run.get('art_version')}; data sha256 "
              f"{str(run.get('data_sha256'))[:12]}; {run.get('date')}.", ""]
    return lines


def _table1_section(df, run: dict) -> list[str]:
    """Table 1 with its notes: early exit, stochastic models, the warnings and the diagnostics that ran."""
    t1, notes = table1(df)
    lines = ["## Robust accuracy (Table 1)", "",
             "Accuracy in % of all evaluated images (count of robust images in brackets); an image counts "
             "as robust only if it is classified correctly both clean and under the attack. Worst case: "
             "robust to every attack of the suite, per image (the last accuracy column). In square brackets: "
             "the 95 % Wilson interval in % (also `ci_lo`, `ci_hi` in `records.csv`).", "", t1, ""]
    if not df["exact"].all():
        lines += ["\\* bounded (early exit): this attack was not run on the images an earlier attack of the "
                  "cascade had already fooled, so only the worst case is exact; its own accuracy lies between "
                  "`count` / n and `count_hi` / n in `records.csv` (`--full-matrix` measures every column).", ""]
    if df["stochastic"].any():
        lines += ["(stochastic): the model's outputs change between identical forward passes; its clean and "
                  "adversarial predictions are single stochastic passes under fixed seeds (the mean over R "
                  "passes is in its own table below, when measured), and an attack without EOT (`eot=1` in "
                  "its parameters) may overestimate its robustness.", ""]
    return lines + _warnings_section(notes, run.get("diagnostics") or {})


def checks_ran(diagnosed: dict) -> tuple[str, str]:
    """Which diagnostics ran (from the run info's ``diagnostics``) and whether the record checks ran, as two
    phrases for the leaderboard."""
    measured = [m for m, d in diagnosed.items() if d.get("measured") is not None]
    checked = any(d.get("record_checks") for d in diagnosed.values())
    ran = ("diagnostics not run: `bench run --diagnose`" if not measured else
           "diagnostics ran on " + ", ".join(measured))
    records = ("The record checks (FGSM vs PGD, adaptive vs plain attack, accuracy vs eps, per-sample aggregates) "
               "ran on every model." if checked else "The record checks did not run when these records were made.")
    return ran, records


def _warnings_section(notes: list[str], diagnosed: dict) -> list[str]:
    """The numbered warning footnotes, what their flags mean and which diagnostic checks ran."""
    ran, records = checks_ran(diagnosed)
    diagnosed = {m: d for m, d in diagnosed.items() if d.get("measured") is not None}
    lines = ["Warnings: " + (f"none raised ({ran})" if not notes else f"({ran})") + ". " + records, ""]
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
    return lines


def _other_tables(df) -> list[str]:
    """Mean over R passes, Table 2, budgets, perturbation sizes and timings (each when it applies)."""
    lines: list[str] = []
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
    return lines


def _figures_section(out: Path, figure_notes: dict) -> list[str]:
    """Links to the figures present in ``out/figures``."""
    lines = ["## Figures", ""]
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
    return lines


def leaderboard_markdown(out: str | Path, figures: bool = True, figure_notes: dict | None = None,
                         sort: str | None = None) -> str:
    """The leaderboard of results directory ``out`` as markdown (read from its records only); rows in the
    records' order or by ``sort`` (:func:`honestbench.report.tables.sort_models`, e.g. 'worst-case')."""
    out = Path(out)
    run, _ = read_records(out)
    df = sort_models(load(out), sort)
    lines = _provenance(out, run) + _table1_section(df, run) + certified_section(df) + reported_section(out, df) \
        + _other_tables(df)
    if figures:
        lines += _figures_section(out, figure_notes or {})
    lines += [f"Definitions: {METHODS} (robust accuracy, budgets, the report's mistakes).", ""]
    return "\n".join(lines)
