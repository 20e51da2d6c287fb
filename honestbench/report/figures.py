"""Figures of a results directory (PNG, matplotlib Agg), drawn from saved records, matrices and cells only.

* :func:`examples_figure`: per attack, a few examples as clean image | scaled perturbation | adversarial
  image, titled with predicted class and confidence, green when still correct, red when fooled (Figure 2).
* :func:`confidence_figure`: histograms of the predicted-class probability (max softmax) for all test images
  and for the correctly classified ones, one row per model (the report's Figure 3).
* :func:`eps_figure`: robust accuracy against the (effective) budget for each model with its 95 % Wilson band,
  one panel per attack kernel that the records hold at several budgets (``eps-sweep``; clean accuracy is the
  point at eps = 0). A suite with one budget per attack gets no curve (two points say nothing the table does
  not): its per-model bar charts are :mod:`honestbench.report.model_figures`.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from honestbench.core.io import atomic_path  # noqa: E402
from honestbench.results import Matrix, cell_path, load_cell  # noqa: E402

DPI = 110


def _save(fig, path: Path) -> Path:
    with atomic_path(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _class(classes: list[str], k: int) -> str:
    return classes[k] if 0 <= k < len(classes) else str(k)


#: examples per attack row of :func:`examples_figure` (each one: clean | perturbation | adversarial)
EXAMPLES_PER_ROW = 3


def _eps_text(eps: float | None, norm: str | None) -> str:
    if eps is None or eps != eps:
        return "unbounded"
    k = eps * 255
    size = f"{round(k)}/255" if abs(k - round(k)) < 1e-6 and norm == "linf" else f"{eps:.3g}"
    return f"{'L-inf' if norm == 'linf' else 'L2' if norm == 'l2' else norm} {size}"


def _pick(robust: np.ndarray, k: int) -> list[int]:
    """Up to ``k`` example indices: one robust (if any), then fooled ones, then the rest."""
    fooled = [int(i) for i in np.flatnonzero(robust == 0)]
    kept = [int(i) for i in np.flatnonzero(robust != 0)]
    order = kept[:1] + fooled + kept[1:]
    return order[:k]


def _perturbation(clean: np.ndarray, adv: np.ndarray, eps: float | None, norm: str | None) -> tuple[np.ndarray, float]:
    """The perturbation as an image (grey = 0) and the factor it was scaled by: an L-inf budget eps maps
    to the full range (factor 1 / (2 eps)); otherwise the largest change of this image does."""
    delta = (adv.astype(float) - clean.astype(float)) / 255.0
    span = eps if (norm == "linf" and eps) else float(np.abs(delta).max()) or 1 / 255
    scale = 0.5 / span
    return np.clip(0.5 + scale * delta, 0, 1), scale


def _show(ax, img: np.ndarray, title: str, color: str = "k") -> None:
    gray = img.shape[-1] == 1
    ax.imshow(img[..., 0] if gray else img, cmap="gray" if gray else None, vmin=0,
              vmax=1 if img.dtype.kind == "f" else 255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=6.5, color=color)


def examples_figure(out: Path, model: str, matrix: Matrix, classes: list[str], path: Path) -> Path | None:
    """Adversarial examples of one model (the report's Figure 2, made readable): one row per attack, up to
    :data:`EXAMPLES_PER_ROW` examples, each as clean image | perturbation (scaled, factor in its title) |
    adversarial image, titled with predicted class and confidence; green: still classified correctly, red:
    fooled. Pixels in [0, 1]; each row's label names the attack and its budget."""
    specs = matrix.meta.get("specs", {})
    rows = []
    for label in matrix.labels:
        found = load_cell(cell_path(out, model, label))
        if found is None or len(found[0].get("ex_index", [])) == 0:
            continue
        rows.append((label, found[0]))
    if not rows:
        return None
    pos = {int(i): k for k, i in enumerate(matrix.index)}
    ncols = 3 * EXAMPLES_PER_ROW
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.15 * ncols, 1.5 * len(rows) + 0.5), squeeze=False)
    for r, (label, a) in enumerate(rows):
        spec = specs.get(label, {})
        eps, norm = spec.get("eps"), spec.get("norm")
        picks = _pick(np.asarray(a["ex_robust"]), EXAMPLES_PER_ROW)
        for c in range(EXAMPLES_PER_ROW):
            trio = axes[r, 3 * c:3 * c + 3]
            if c >= len(picks):
                for ax in trio:
                    ax.axis("off")
                continue
            k = picks[c]
            i = pos.get(int(a["ex_index"][k]))
            clean = "?" if i is None else f"{_class(classes, int(matrix.clean_pred[i]))} {matrix.clean_conf[i]:.2f}"
            ok = bool(a["ex_robust"][k])
            pert, scale = _perturbation(a["ex_clean"][k], a["ex_adv"][k], eps, norm)
            _show(trio[0], a["ex_clean"][k], f"clean: {clean}")
            _show(trio[1], pert, f"perturbation x{scale:.0f}")
            _show(trio[2], a["ex_adv"][k], f"adv: {_class(classes, int(a['ex_pred'][k]))} {a['ex_conf'][k]:.2f}",
                  "tab:green" if ok else "tab:red")
            for sp in trio[2].spines.values():
                sp.set_edgecolor("tab:green" if ok else "tab:red")
                sp.set_linewidth(2)
        axes[r, 0].set_ylabel(f"{label}\n{_eps_text(eps, norm)}", fontsize=8)
    fig.suptitle(f"{model}: clean image | perturbation, scaled by the factor shown (L-inf: -eps..+eps as black..white; "
                 f"otherwise its largest change; grey = no change) | adversarial image\n"
                 f"green: still classified correctly, red: fooled; {matrix.n} images evaluated", fontsize=9)
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


def _eps_axis(ax, budgets: list[float], norm: str) -> None:
    """A symlog eps axis from 0; L-inf ticks at the budgets themselves when there are one or two, else at 0
    and k/255 for k = 1, 2, 4, ... up to the largest budget."""
    ax.set_xscale("symlog", linthresh=1 / 255 if norm == "linf" else 0.05)
    ax.set_xlim(left=0)
    if norm != "linf":
        return
    if len(budgets) <= 2:
        ticks = [0.0, *budgets]
        ax.set_xticks(ticks, ["0"] + [_eps_text(t, "linf").removeprefix("L-inf ") for t in budgets])
    else:
        ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k / 255 <= max(budgets) * 1.01] or [1]
        ax.set_xticks([0.0] + [k / 255 for k in ks], ["0"] + [f"{k}/255" for k in ks])
    ax.minorticks_off()


def eps_figure(df, path: Path) -> tuple[Path | None, str]:
    """Robust accuracy against effective eps per model, one panel per attack kernel measured at two or more
    budgets; returns the path (None when no kernel has several budgets) and a one-line note on the eps values."""
    attacks = df[(df["kernel"] != "aggregate") & (df["attack"] != "clean") & df["eps_effective"].notna()]
    swept = attacks.groupby("kernel", sort=False)["eps_effective"].nunique()
    kernels = [k for k in dict.fromkeys(attacks["kernel"]) if swept[k] >= 2]
    if not kernels:
        return None, ("one budget per attack: no accuracy-against-eps curve (for one, run `bench run --suite "
                      "eps-sweep --out DIR` and `bench report DIR`)")
    attacks = attacks[attacks["kernel"].isin(kernels)]
    fig, axes = plt.subplots(1, len(kernels), figsize=(4.2 * len(kernels), 3.4), squeeze=False)
    clean_rows = df[df["attack"] == "clean"].set_index("model")
    clean, clean_lo, clean_hi = clean_rows["accuracy"], clean_rows["ci_lo"], clean_rows["ci_hi"]
    n_images = int(df["n"].max())
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
            lo = 100 * np.r_[clean_lo.get(model, np.nan), s["ci_lo"].to_numpy(float)]
            hi = 100 * np.r_[clean_hi.get(model, np.nan), s["ci_hi"].to_numpy(float)]
            ax.fill_between(xs, lo, hi, color=color, alpha=0.12, lw=0)
            ax.plot(xs, ys, "-", color=color, lw=1.2, label=model)
            exact = np.r_[True, s["exact"].to_numpy(bool)]
            ax.plot(xs[exact], ys[exact], "o", color=color, ms=4)
            ax.plot(xs[~exact], ys[~exact], "o", mfc="none", color=color, ms=5)
        norm = str(sub["norm"].iloc[0])
        _eps_axis(ax, sorted(set(sub["eps_effective"].astype(float))), norm)
        ax.set_ylim(-2, 102)
        steps = sorted({int(json.loads(p or "{}").get("steps", 0)) for p in sub["params"]} - {0})
        plural = "s" if n_eps[kernel] > 1 else ""
        ax.set_title(f"{kernel} ({norm}; {n_eps[kernel]} budget{plural}"
                     + (f"; {'/'.join(map(str, steps))} steps" if steps else "") + f"; n = {n_images})", fontsize=9)
        ax.set_xlabel(f"effective eps ({norm}, pixels in [0, 1])", fontsize=8)
        ax.set_ylabel(f"robust accuracy (% of {n_images} images)", fontsize=8)
        ax.set_yticks(range(0, 101, 20))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    hollow = "; hollow: upper bound (early exit)" if not attacks["exact"].all() else ""
    fig.suptitle(f"robust accuracy against eps on {n_images} images (eps = 0: clean accuracy; bands: 95 % "
                 f"Wilson intervals{hollow})", fontsize=9)
    fig.tight_layout()
    return _save(fig, path), "budgets from the records; eps = 0 is clean accuracy"
