"""The markdown tables of a leaderboard, each drawn from a results directory's records (a DataFrame as
:func:`honestbench.results.load` returns it): Table 1 (robust accuracy), Table 2 (L2 and L-inf per sample), mean over
R passes, budgets, perturbation sizes, timings. Accuracies in % of the evaluated images; eps in pixel units of
[0, 1] images (also shown as k/255).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from tabulate import tabulate

from honestbench.core.errors import BenchError
from honestbench.diagnostics.flags import flag_name
from honestbench.zoo.cards import display_name

if TYPE_CHECKING:
    import pandas as pd

#: Table 1's first columns (then the suite's other attacks, its aggregates, and the worst case last)
TABLE1_FIRST = ["clean", "PGD", "surrogate-PGD", "FGSM", "CW"]
WORST = "worst-case"
HEADERS = {"clean": "Natural", WORST: "Worst case"}
#: ``--sort`` keys besides a column label (whose accuracy then orders the rows, highest first)
SORT_KEYS = ("zoo", "model")
TABLE2 = ("PGD-L2", "PGD", "PGD-L2+Linf")


def _pct(row) -> str:
    """'45.31 (116)' when exact; '<= 45.31 (>= 12.11) *' when the column is only bounded (early exit)."""
    if row is None:
        return "-"
    if row["exact"]:
        return f"{100 * row['accuracy']:.2f} ({row['count']})"
    return f"<= {100 * row['accuracy']:.2f} (>= {100 * row['count'] / row['n']:.2f}) *"


def _pct_ci(row) -> str:
    """Table 1's cell: '41.41 (53) [33.2, 50.1]' (count of robust images, 95 % Wilson interval in %) when
    exact; 'bounded *' when early exit left only bounds (explained in one line under the table)."""
    if row is None:
        return "-"
    if row["attack"] in ("certified", "exact") and row["accuracy"] != row["accuracy"]:  # NaN: refused
        return "refused"
    if not row["exact"]:
        return "bounded *"
    lo, hi = row.get("ci_lo"), row.get("ci_hi")
    if lo is None or lo != lo:
        return _pct(row)
    return f"{100 * row['accuracy']:.2f} ({row['count']}) [{100 * lo:.1f}, {100 * hi:.1f}]"


def sort_models(df, key: str | None):
    """``df`` with its models' rows reordered by ``key``: None or 'zoo' (the records' order), 'model' (by
    name), or a column label such as 'worst-case' or 'PGD' (its accuracy, highest first; models without
    that column last). An unknown key is a one-line :class:`~honestbench.core.errors.BenchError`."""
    if key in (None, "", "zoo"):
        return df
    if key == "model":
        order = sorted(dict.fromkeys(df["model"]))
    else:
        labels = list(dict.fromkeys(df["attack"]))
        if key not in labels:
            raise BenchError(f"--sort {key!r}: not a column of these records; choose one of "
                             f"{', '.join([*SORT_KEYS, *labels])}")
        acc = df[df["attack"] == key].set_index("model")["accuracy"].astype(float)
        models = list(dict.fromkeys(df["model"]))
        order = sorted(models, key=lambda m: (m not in acc.index, -acc.get(m, 0.0), models.index(m)))
    rank = {m: i for i, m in enumerate(order)}
    return df.iloc[sorted(range(len(df)), key=lambda i: (rank[df["model"].iloc[i]], i))].reset_index(drop=True)


def _eps(v) -> str:
    if v is None or v != v:
        return "unbounded"
    k = v * 255
    return f"{v:.4g} ({k:.3g}/255)" if abs(k - round(k)) < 1e-6 or k < 40 else f"{v:.4g}"


def _columns(df) -> list[str]:
    """Column order: :data:`TABLE1_FIRST`, the other attacks, the aggregates, the worst case last."""
    present = list(dict.fromkeys(df["attack"]))
    first = [c for c in TABLE1_FIRST if c in present]
    aggs = set(df.loc[df["kernel"] == "aggregate", "attack"]) - {WORST}
    rest = [c for c in present if c not in first and c != WORST]
    last = [WORST] if WORST in present else []
    return first + [c for c in rest if c not in aggs] + [c for c in rest if c in aggs] + last


def model_label(model: str, rows) -> str:
    """``model`` as the tables show it: with the incomplete-training mark its records carry (``training``,
    written from :attr:`honestbench.zoo.cards.Card.training`), e.g. ``slwta-wrn34-1 (2/30 epochs)``."""
    training = rows["training"].iloc[0] if "training" in rows else ""
    return display_name(model, training if isinstance(training, str) else "")


def _per_model(df) -> Iterator[tuple[str, pd.DataFrame, dict[str, dict]]]:
    """``(model, its rows, its rows by attack label)`` for every model of ``df``, in ``df``'s order (the
    records as :func:`honestbench.results.load` orders them)."""
    for model, g in df.groupby("model", sort=False):
        yield model, g, {r["attack"]: r for r in g.to_dict("records")}


def flag_refs(model: str, rows: list[dict], notes: list[str]) -> dict[str, list[int]]:
    """The flags raised on ``model``'s record ``rows``: flag name -> the numbers (from 1) of its footnotes in
    ``notes`` ('model / attack: flag text'), which it extends with the footnotes not yet there."""
    refs: dict[str, list[int]] = {}
    for r in rows:
        for w in filter(None, (r.get("warnings") or "").split(";")):
            text = f"{model} / {r['attack']}: {w.strip()}"
            if text not in notes:
                notes.append(text)
            num = notes.index(text) + 1
            if num not in refs.setdefault(flag_name(w), []):
                refs[flag_name(w)].append(num)
    return refs


def table1(df) -> tuple[str, list[str]]:
    """Markdown Table 1 (rows models) and the warning footnotes it refers to."""
    cols = _columns(df)
    notes: list[str] = []
    rows = []
    for model, g, by in _per_model(df):
        refs = flag_refs(model, g.to_dict("records"), notes)
        stoch = " (stochastic)" if g["stochastic"].any() else ""
        flags = "; ".join(f"{name} [{', '.join(map(str, nums))}]" for name, nums in refs.items()) or "none"
        rows.append([model_label(model, g) + stoch, *_cells(by, cols, _pct_ci), flags])
    headers = ["Model"] + [HEADERS.get(c, c) for c in cols] + ["Warnings"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), notes


def table2(df) -> str | None:
    """Markdown Table 2: L2 PGD, L-inf PGD and their per-sample intersection (never their sum)."""
    if not set(TABLE2) <= set(df["attack"]):
        return None
    rows = []
    for model, g, by in _per_model(df):
        a, b = by["PGD-L2"]["accuracy"], by["PGD"]["accuracy"]
        rows.append([model_label(model, g), _pct(by.get("clean")), _pct(by["PGD-L2"]), _pct(by["PGD"]),
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
        rows.append([model_label(model, g), _int(g["R"].iloc[0]), *_cells(by, cols, _mean_over_r)])
    headers = ["Model", "R"] + [HEADERS.get(c, c) for c in cols]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def timing_table(df) -> str:
    """Markdown table: clean ms/image at batch 1 and 256, seconds (images attacked) per attack, total."""
    cols = [a for a in _columns(df)
            if a != "clean" and (df.loc[df["attack"] == a, "kernel"] != "aggregate").all()]
    rows = []
    for model, g, by in _per_model(df):
        c = by.get("clean", {})
        total = sum(by[a]["seconds"] or 0 for a in cols if a in by) + (c.get("seconds") or 0)
        cells = _cells(by, cols, lambda r: f"{r['seconds']:.1f} ({_int(r['evaluated'])})")
        rows.append([model_label(model, g), _num(c.get("ms_per_image_b1"), 2), _num(c.get("ms_per_image_b256"), 3),
                     *cells, f"{total:.1f}"])
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
    for model, g, by in _per_model(df):
        rows.append([model_label(model, g), *_cells(by, cols, _norm_sizes)])
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
