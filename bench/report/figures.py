"""Figures of a results directory (PNG, matplotlib Agg), drawn from saved records, matrices and cells only.

* :func:`examples_figure`: adversarial examples that stay correctly classified and that are misclassified,
  one row per attack, titled with the clean and adversarial label and confidence (the report's Figure 2).
* :func:`confidence_figure`: histograms of the predicted-class probability (max softmax) for all test images
  and for the correctly classified ones, one row per model (the report's Figure 3).
* :func:`eps_figure`: robust accuracy against the (effective) budget for each model, one panel per attack
  kernel, from whatever budgets the records hold (clean accuracy is the point at eps = 0).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.core.io import atomic_path  # noqa: E402
from bench.results import Matrix, cell_path, load_cell  # noqa: E402

DPI = 110


def _save(fig, path: Path) -> Path:
    with atomic_path(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _class(classes: list[str], k: int) -> str:
    return classes[k] if 0 <= k < len(classes) else str(k)


def examples_figure(out: Path, model: str, matrix: Matrix, classes: list[str], path: Path) -> Path | None:
    """Figure-2-style grid for one model: rows = attacks, up to 4 robust (green) + 4 fooled (red) images."""
    rows = []
    for label in matrix.labels:
        found = load_cell(cell_path(out, model, label))
        if found is None or len(found[0].get("ex_index", [])) == 0:
            continue
        rows.append((label, found[0]))
    if not rows:
        return None
    ncols = max(len(a["ex_index"]) for _, a in rows)
    pos = {int(i): k for k, i in enumerate(matrix.index)}
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.55 * ncols, 1.95 * len(rows)), squeeze=False)
    for r, (label, a) in enumerate(rows):
        order = np.argsort(-a["ex_robust"], kind="stable")  # robust first, then fooled
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(order):
                ax.axis("off")
                continue
            k = order[c]
            img = a["ex_adv"][k]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                      vmin=0, vmax=255, interpolation="nearest")
            i = pos.get(int(a["ex_index"][k]))
            clean = "?" if i is None else \
                f"{_class(classes, int(matrix.clean_pred[i]))} {matrix.clean_conf[i]:.2f}"
            adv = f"{_class(classes, int(a['ex_pred'][k]))} {a['ex_conf'][k]:.2f}"
            ok = bool(a["ex_robust"][k])
            ax.set_title(f"clean: {clean}\nadv: {adv}", fontsize=7, color="tab:green" if ok else "tab:red")
            for s in ax.spines.values():
                s.set_edgecolor("tab:green" if ok else "tab:red")
                s.set_linewidth(2)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(f"{model}: adversarial examples correctly (green) and incorrectly (red) classified",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def confidence_figure(matrices: dict[str, Matrix], path: Path) -> Path | None:
    """Figure-3-style histograms of the predicted-class probability: all images | correctly classified."""
    if not matrices:
        return None
    n = len(matrices)
    fig, axes = plt.subplots(n, 2, figsize=(8, 1.25 * n + 0.8), squeeze=False, sharex=True)
    bins = np.linspace(0, 1, 21)
    for r, (model, m) in enumerate(matrices.items()):
        conf = m.clean_conf.astype(float)
        correct = m.clean_correct
        for c, (vals, what) in enumerate(((conf, "all"), (conf[correct], "correct"))):
            ax = axes[r, c]
            ax.hist(vals, bins=bins, color="tab:blue" if c == 0 else "tab:green", alpha=0.85)
            mean = vals.mean() if len(vals) else float("nan")
            ax.axvline(mean, color="k", lw=0.8, ls="--")
            ax.text(0.02, 0.85, f"{model}: {what} (n={len(vals)}, mean {mean:.2f})", transform=ax.transAxes,
                    fontsize=7)
            ax.tick_params(labelsize=7)
    axes[0, 0].set_title("all test images", fontsize=9)
    axes[0, 1].set_title("correctly classified test images", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("probability of the predicted class (max softmax)", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def eps_figure(df, path: Path) -> tuple[Path | None, str]:
    """Robust accuracy against effective eps per model, one panel per attack kernel; returns the path and a
    one-line note on where the eps values came from."""
    attacks = df[(df["kernel"] != "aggregate") & (df["attack"] != "clean") & df["eps_effective"].notna()]
    if attacks.empty:
        return None, "no bounded attack in the records"
    kernels = list(dict.fromkeys(attacks["kernel"]))
    fig, axes = plt.subplots(1, len(kernels), figsize=(4.2 * len(kernels), 3.4), squeeze=False)
    clean = df[df["attack"] == "clean"].set_index("model")["accuracy"]
    palette = plt.get_cmap("tab20").colors
    palette = palette[0::2] + palette[1::2]  # the 10 strong colours first, then their light twins
    models = list(dict.fromkeys(df["model"]))
    n_eps = {}
    for ax, kernel in zip(axes[0], kernels, strict=True):
        sub = attacks[attacks["kernel"] == kernel]
        n_eps[kernel] = sub["eps_effective"].nunique()
        for i, model in enumerate(models):
            s = sub[sub["model"] == model].sort_values("eps_effective")
            if s.empty:
                continue
            xs = np.r_[0.0, s["eps_effective"].to_numpy(float)]
            ys = 100 * np.r_[clean.get(model, np.nan), s["accuracy"].to_numpy(float)]
            color = palette[i % 20]
            ax.plot(xs, ys, "-", color=color, lw=1.2, label=model)
            exact = np.r_[True, s["exact"].to_numpy(bool)]
            ax.plot(xs[exact], ys[exact], "o", color=color, ms=4)
            ax.plot(xs[~exact], ys[~exact], "o", mfc="none", color=color, ms=5)
        norm = str(sub["norm"].iloc[0])
        ax.set_xscale("symlog", linthresh=1 / 255 if norm == "linf" else 0.05)
        ax.set_xlim(left=0)
        top = float(sub["eps_effective"].max())
        if norm == "linf":  # ticks at 0 and k/255 for k = 1, 2, 4, ...
            ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k / 255 <= top * 1.01] or [1]
            ax.set_xticks([0.0] + [k / 255 for k in ks], ["0"] + [f"{k}/255" for k in ks])
            ax.minorticks_off()
        ax.set_ylim(-2, 102)
        plural = "s" if n_eps[kernel] > 1 else ""
        ax.set_title(f"{kernel} ({norm}; {n_eps[kernel]} budget{plural})", fontsize=9)
        ax.set_xlabel(f"effective eps ({norm}, pixels in [0, 1])", fontsize=8)
        ax.set_ylabel("robust accuracy (%)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    hollow = "; hollow: upper bound (early exit)" if not attacks["exact"].all() else ""
    fig.suptitle(f"robust accuracy against eps (eps = 0: clean accuracy{hollow})", fontsize=9)
    fig.tight_layout()
    sweep = max(n_eps.values()) > 2
    note = ("budgets from the records" if sweep else
            "only the budgets of this suite are in the records (eps = 0 is clean accuracy); for a full "
            "curve run `bench run --suite eps-sweep --out DIR` and `bench report DIR`")
    return _save(fig, path), note
