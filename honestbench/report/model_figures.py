"""The per-model figures of the HTML board (PNG, matplotlib Agg), drawn from saved records and matrices only.

* :func:`bars_figure`: one horizontal bar per column of the model's leaderboard row (clean, each attack, each aggregate,
  the worst case), accuracy in % of the evaluated images with its 95 % Wilson interval as an error bar; a column
  known only within bounds (early exit) is a hollow, hatched bar at its upper bound. It is the summary figure of a
  suite with one budget per attack (the accuracy-against-eps curve of :func:`honestbench.report.figures.eps_figure`
  is drawn only where a suite has several budgets of one attack).
* :func:`model_confidence_figure`: the report's Figure 3 for one model: histograms of the probability of the
  predicted class (max softmax) on the clean images and on the adversarial images of its strongest attack.

Sizes are chosen so that the board shows them at about their natural pixel size (no downscaling of the text).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from honestbench.report.figures import _save  # noqa: E402
from honestbench.report.tables import WORST, _columns  # noqa: E402
from honestbench.results import Matrix  # noqa: E402

#: bar colours by the role of a column
COLOURS = {"clean": "#7f7f7f", "attack": "#1f77b4", "aggregate": "#9467bd", WORST: "#d62728"}


def _role(label: str, kernel: str) -> str:
    if label in ("clean", WORST):
        return label
    return "aggregate" if kernel == "aggregate" else "attack"


def bars_figure(df, model: str, path: Path) -> Path | None:
    """The bar chart of ``model``'s columns in ``df`` (the records of a results directory), in the leaderboard's
    column order; None when the model has no record."""
    rows = {r["attack"]: r for r in df[df["model"] == model].to_dict("records")}
    cols = [c for c in _columns(df) if c in rows]
    if not cols:
        return None
    n = int(rows[cols[0]]["n"])
    fig, ax = plt.subplots(figsize=(4.8, 0.3 * len(cols) + 1.1))
    for y, label in enumerate(cols):
        r = rows[label]
        acc = 100 * float(r["accuracy"])
        colour = COLOURS[_role(label, str(r["kernel"]))]
        exact = bool(r["exact"])
        ax.barh(y, acc, height=0.7, color=colour if exact else "none", edgecolor=colour,
                hatch=None if exact else "//")
        lo, hi = r.get("ci_lo"), r.get("ci_hi")
        end = acc
        if exact and lo is not None and lo == lo:
            ax.errorbar(acc, y, xerr=[[acc - 100 * lo], [100 * hi - acc]], color="k", capsize=2.5, lw=1)
            end = 100 * hi
        ax.text(end + 1.5, y, f"{'<= ' if not exact else ''}{acc:.1f}", va="center", fontsize=8)
    ax.set_yticks(range(len(cols)), ["clean" if c == "clean" else "worst case" if c == WORST else c for c in cols],
                  fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 112)
    ax.set_xticks(range(0, 101, 20))
    ax.tick_params(axis="x", labelsize=9)
    ax.set_xlabel(f"accuracy (% of {n:,} images)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    bounded = "; hatched: upper bound (early exit)" if not all(bool(rows[c]["exact"]) for c in cols) else ""
    ax.set_title(f"{model}: accuracy per column; error bars: 95 % Wilson{bounded}", fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def _strongest(matrix: Matrix) -> int | None:
    """The attack column with the fewest robust images among those with adversarial confidences."""
    best, fewest = None, None
    for j in range(len(matrix.labels)):
        if not np.isfinite(matrix.conf[:, j]).any():
            continue
        robust = int((matrix.robust[:, j] == 1).sum())
        if fewest is None or robust < fewest:
            best, fewest = j, robust
    return best


def model_confidence_figure(model: str, matrix: Matrix, path: Path) -> Path | None:
    """Histograms of the predicted-class probability of one model: every clean image, and the adversarial
    images of its strongest attack (the column with the fewest robust images; only the images it attacked)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.1))
    bins = np.linspace(0, 1, 21)
    clean = matrix.clean_conf.astype(float)
    ax.hist(clean, bins=bins, color="#1f77b4", alpha=0.55,
            label=f"clean (n = {len(clean)}, mean {clean.mean():.2f})")
    j = _strongest(matrix)
    if j is not None:
        adv = matrix.conf[:, j].astype(float)
        adv = adv[np.isfinite(adv) & (matrix.pred[:, j] >= 0)]
        if len(adv):
            ax.hist(adv, bins=bins, histtype="step", color="#d62728", lw=1.8,
                    label=f"{matrix.labels[j]} (n = {len(adv)}, mean {adv.mean():.2f})")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability of the predicted class", fontsize=9)
    ax.set_ylabel("images", fontsize=9)
    ax.tick_params(labelsize=9)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.set_title(f"{model}: confidence, clean and adversarial", fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return _save(fig, path)
