"""Evaluation-integrity diagnostics: named checks that flag results which are probably not real robustness.

After Carlini et al. 2019 ("On Evaluating Adversarial Robustness"), Athalye et al. 2018 and AutoAttack's
randomness check; the list is methods.md, "Evaluation integrity (beyond the report)". Every check is

* a small pure function on numbers (``check_*``) returning ``None`` or a flag string
  ``"<name>: <the two numbers that broke it> (methods.md, Evaluation integrity #k)"``, unit-testable on
  constructed values; and, where the numbers need a model,
* a measuring function (``*_check`` / ``measure_*``) that runs the attacks on a few images.

:func:`diagnose` runs them on a table of records (``bench.results`` rows: a list of dicts or a DataFrame) and,
when given, on the model itself; it returns ``{(model, attack column): [flag, ...]}`` for the rows that need a
warning (empty for an honest evaluation). :func:`apply_warnings` writes them into the records' ``warnings``
column (joined with ``"; "``); :data:`EXPLANATIONS` holds one sentence per flag for the leaderboard.

Flags (name: check):
  ``single-step-stronger``   #1 multi-step accuracy above single-step accuracy at the same budget
  ``no-fall-with-eps``       #2 iterative accuracy not falling with eps / not near 0 at L-inf 0.5
  ``cw-unbounded-fails``     #3 unbounded CW (binary search) not succeeding on nearly every sample
  ``adaptive-stronger``      #4 surrogate / BPDA / transfer attack much stronger than the white-box one
  ``weaker-than-autoattack`` #4 our kernels above AutoAttack by more than 1 pp (deterministic model)
  ``not-converged``          #5 accuracy still falling when steps or restarts are doubled
  ``stochastic-no-eot``      #6 a stochastic model attacked without EOT
  ``stochastic-early-stop``  #6 a stochastic model attacked with early stop on one noisy forward pass
  ``zero-gradients`` / ``nonfinite-gradients``  #7 input gradients all zero / not finite

Reading early-exit records (``bench.eval.engine``, the default): attacks run as a cascade, cheapest first, and a
later attack's column is only an upper bound. Two accuracies are compared directly only when both rows are
exact; otherwise "S beats R" is read from ``fooled`` of S when S ran after R (S broke that many samples which
survived R and everything before it; the cascade position is inferred from ``evaluated``, which can only
shrink along the cascade). FGSM always runs before PGD in a cascade, so check #1 needs the full matrix or the
model (``diagnose(..., model=...)`` measures FGSM and PGD on every image). Units: accuracies are fractions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from bench.attacks.registry import create_attack
from bench.eval.stochastic import is_stochastic_by_forward, predictions, seeded_rng

METHODS_LINK = "docs/methods.md#evaluation-integrity-beyond-the-report"

SINGLE_STEP = "single-step-stronger"
EPS_SWEEP = "no-fall-with-eps"
CW_FAILS = "cw-unbounded-fails"
ADAPTIVE = "adaptive-stronger"
AUTOATTACK = "weaker-than-autoattack"
NOT_CONVERGED = "not-converged"
NO_EOT = "stochastic-no-eot"
EARLY_STOP = "stochastic-early-stop"
ZERO_GRAD = "zero-gradients"
NONFINITE_GRAD = "nonfinite-gradients"

_ITEM = {SINGLE_STEP: 1, EPS_SWEEP: 2, CW_FAILS: 3, ADAPTIVE: 4, AUTOATTACK: 4, NOT_CONVERGED: 5, NO_EOT: 6,
         EARLY_STOP: 6, ZERO_GRAD: 7, NONFINITE_GRAD: 7}

_SENTENCES: dict[str, str] = {
    SINGLE_STEP: "A multi-step attack starts with the single-step move and can only do better, so a higher "
                 "accuracy under PGD than under FGSM at the same budget means its gradients mislead it.",
    EPS_SWEEP: "With a large enough budget (L-inf 0.5 can turn every image grey) any real attack reaches "
               "about 0 % accuracy, so accuracy that does not fall with eps means the attack is not working.",
    CW_FAILS: "CW with a binary search and no bound on the perturbation must eventually fool every sample, "
              "so failures mean the optimisation is stuck on masked gradients.",
    ADAPTIVE: "An attack that does not use the model's own gradients (surrogate, BPDA, transfer) beat the "
              "white-box attack: the signature of masked or obfuscated gradients.",
    AUTOATTACK: "AutoAttack found adversarial images that our own kernels missed on a deterministic model, "
                "so our kernels' numbers overstate robustness.",
    NOT_CONVERGED: "Accuracy still dropped when the attack got twice the steps or restarts, so the reported "
                   "number is not converged and overstates robustness.",
    NO_EOT: "Two identical forward passes of this model disagree, so the gradient of one pass is a noisy "
            "sample; attack it with EOT (gradient averaged over many passes).",
    EARLY_STOP: "The attack kept the first iterate that fooled one random forward pass; on a stochastic "
                "model that point is often classified correctly on the next pass, so run every step.",
    ZERO_GRAD: "The input gradient is exactly zero for many images (quantised or saturated layers), so "
               "gradient attacks cannot move and their accuracy is meaningless.",
    NONFINITE_GRAD: "The input gradient contains NaN or inf, so gradient attacks take undefined steps and "
                    "their accuracy is meaningless.",
}
#: One sentence per flag for the leaderboard, each ending with the link to methods.md's checklist.
EXPLANATIONS: dict[str, str] = {k: f"{v} See {METHODS_LINK}." for k, v in _SENTENCES.items()}

# kernels (registered attack names) by role
SINGLE_STEP_KERNELS = {"fgsm", "eot-fgsm"}
ITERATIVE_KERNELS = {"pgd-linf", "eot-pgd-linf"}
WHITE_BOX_KERNELS = {"fgsm", "eot-fgsm", "pgd-linf", "eot-pgd-linf", "pgd-l2", "autoattack",
                     "autoattack-rand"}
ADAPTIVE_KERNELS = {"surrogate-pgd", "bpda-pgd", "transfer-pgd"}
AUTOATTACK_KERNELS = {"autoattack", "autoattack-rand"}
OWN_KERNELS = {"fgsm", "eot-fgsm", "pgd-linf", "eot-pgd-linf", "pgd-l2", "surrogate-pgd", "bpda-pgd"}
#: kernels that use the gradients of the real (possibly stochastic) model, so need EOT on a stochastic one
EOT_KERNELS = {"fgsm", "eot-fgsm", "pgd-linf", "eot-pgd-linf", "pgd-l2", "autoattack", "autoattack-rand",
               "bpda-pgd", "cw-l2"}
EPS_SWEEP_DEFAULT = (8 / 255, 0.1, 0.25, 0.5)
HEADLINE = "worst-case"  # the row that carries model-level flags


@dataclass(frozen=True)
class Tolerances:
    """Allowed slack of each check, in accuracy fractions (0.02 = 2 pp). Differences are paired (same
    images), so they are small for honest deterministic models; each check also allows one sample (1/n).

    * ``single_step`` 0.02: PGD with random start may lose a sample or two that the full FGSM step takes;
    * ``eps_final`` 0.05: at L-inf 0.5 accuracy must be at most 5 % (a grey image is reachable);
      ``eps_rise`` 0.02: accuracy may not rise by more than 2 pp from one eps to the next;
    * ``cw_success`` 0.95: unbounded CW must fool at least 95 % of the clean-correct samples;
    * ``adaptive`` 0.05: surrogate/transfer may beat the white-box attack by 5 pp (stochastic evaluation
      noise of one pass per sample) before it counts as masking;
    * ``autoattack`` 0.01: the issue's acceptance, our strongest kernel within 1 pp of AutoAttack;
    * ``convergence`` 0.02: doubling steps or restarts may lower accuracy by 2 pp;
    * ``zero_grad`` 0.10: at most 10 % of images may have an all-zero input gradient."""

    single_step: float = 0.02
    eps_final: float = 0.05
    eps_rise: float = 0.02
    cw_success: float = 0.95
    adaptive: float = 0.05
    autoattack: float = 0.01
    convergence: float = 0.02
    zero_grad: float = 0.10


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _flag(name: str, detail: str) -> str:
    return f"{name}: {detail} (methods.md, Evaluation integrity #{_ITEM[name]})"


def flag_name(flag: str) -> str:
    """The check name of a flag string (the part before the first colon)."""
    return flag.split(":", 1)[0].strip()


def explain(flag: str) -> str:
    """One sentence for the leaderboard explaining ``flag`` (a flag string or a check name)."""
    return EXPLANATIONS.get(flag_name(flag), "")


def _margin(tol: float, n: int | None) -> float:
    return max(tol, 1.0 / n) if n else tol


# ----------------------------------------------------------------------------------------------- on numbers
def check_single_step(iterative_acc: float, single_acc: float, tol: float = 0.02, n: int | None = None,
                      iterative: str = "PGD", single: str = "FGSM") -> str | None:
    """#1: flag when the multi-step accuracy exceeds the single-step accuracy (same budget) by > ``tol``."""
    if iterative_acc > single_acc + _margin(tol, n):
        return _flag(SINGLE_STEP, f"{iterative} {_pct(iterative_acc)} > {single} {_pct(single_acc)} "
                                  f"at the same budget")
    return None


def check_eps_sweep(accs: Mapping[float, float], final_max: float = 0.05, rise_tol: float = 0.02,
                    n: int | None = None) -> str | None:
    """#2: ``accs`` maps L-inf eps -> iterative accuracy. Flag when accuracy rises with eps by > ``rise_tol``
    or when the accuracy at the largest eps (>= 0.5 expected) is above ``final_max``."""
    items = sorted(accs.items())
    for (e0, a0), (e1, a1) in zip(items, items[1:], strict=False):
        if a1 > a0 + _margin(rise_tol, n):
            return _flag(EPS_SWEEP, f"accuracy {_pct(a0)} at eps {e0:.3g} rises to {_pct(a1)} "
                                    f"at eps {e1:.3g}")
    if items and items[-1][1] > final_max:
        e0, a0 = items[0]
        e1, a1 = items[-1]
        return _flag(EPS_SWEEP, f"accuracy {_pct(a1)} at eps {e1:.3g} (> {_pct(final_max)}; "
                                f"{_pct(a0)} at eps {e0:.3g})")
    return None


def check_cw_unbounded(success_rate: float, min_success: float = 0.95, norm_median: float | None = None
                       ) -> str | None:
    """#3: flag when unbounded CW (binary search) fools fewer than ``min_success`` of the samples."""
    if success_rate is not None and success_rate < min_success:
        extra = f", median L2 of its successes {norm_median:.3g}" if norm_median is not None else ""
        return _flag(CW_FAILS, f"unbounded CW succeeded on {_pct(success_rate)} < {_pct(min_success)}{extra}")
    return None


def check_adaptive_stronger(white_acc: float, adaptive_acc: float, tol: float = 0.05, n: int | None = None,
                            white: str = "PGD", adaptive: str = "surrogate-PGD") -> str | None:
    """#4: flag when a surrogate / BPDA / transfer attack's accuracy is below the white-box one by more
    than ``tol``."""
    if adaptive_acc < white_acc - _margin(tol, n):
        return _flag(ADAPTIVE, f"{adaptive} {_pct(adaptive_acc)} < white-box {white} {_pct(white_acc)}")
    return None


def check_autoattack(own_acc: float, aa_acc: float, tol: float = 0.01, n: int | None = None,
                     own: str = "PGD", aa: str = "AutoAttack") -> str | None:
    """#4 (acceptance): flag when our strongest kernel is above AutoAttack by more than ``tol``."""
    if own_acc > aa_acc + _margin(tol, n):
        return _flag(AUTOATTACK, f"{own} {_pct(own_acc)} > {aa} {_pct(aa_acc)}")
    return None


def check_convergence(acc: float, acc_doubled: float, tol: float = 0.02, n: int | None = None,
                      what: str = "steps x2") -> str | None:
    """#5: flag when doubling steps or restarts (``what``) lowers the accuracy by more than ``tol``."""
    if acc_doubled < acc - _margin(tol, n):
        return _flag(NOT_CONVERGED, f"{_pct(acc)} falls to {_pct(acc_doubled)} with {what}")
    return None


def check_eot(stochastic: bool, eot: int, acc_no_eot: float | None = None, acc_eot: float | None = None,
              disagreement: float | None = None) -> str | None:
    """#6: flag a stochastic model attacked with ``eot`` = 1 (with the measured accuracies when known)."""
    if not stochastic or eot > 1:
        return None
    if acc_no_eot is not None and acc_eot is not None:
        return _flag(NO_EOT, f"eot=1 gives {_pct(acc_no_eot)}, EOT gives {_pct(acc_eot)}")
    if disagreement is not None:
        return _flag(NO_EOT, f"eot=1 while {_pct(disagreement)} of predictions change between two passes")
    return _flag(NO_EOT, "eot=1 on a stochastic model")


def check_early_stop(stochastic: bool, early_stop: bool, eot: int = 1) -> str | None:
    """#6: flag PGD's early stop (first iterate that fools one forward pass) on a stochastic model."""
    if stochastic and early_stop:
        return _flag(EARLY_STOP, f"early_stop=True with eot={eot} on a stochastic model")
    return None


def check_gradients(zero_frac: float, nonfinite_frac: float, max_zero: float = 0.10) -> list[str]:
    """#7: flags for a fraction of images with all-zero (> ``max_zero``) or any non-finite input gradient."""
    out = []
    if nonfinite_frac > 0:
        out.append(_flag(NONFINITE_GRAD, f"{_pct(nonfinite_frac)} of images have NaN/inf input gradients"))
    if zero_frac > max_zero:
        out.append(_flag(ZERO_GRAD, f"{_pct(zero_frac)} of images have an all-zero input gradient "
                                    f"(> {_pct(max_zero)})"))
    return out


# ----------------------------------------------------------------------------------------------- measurements
def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack, R: int = 1,
                    seed: int = 0) -> float:
    """Robust accuracy of ``attack`` (an Attack, or ``(name, params)``) on ``(x, y)``: mean over ``R``
    seeded passes of "correct on the clean AND on the adversarial image" (methods.md); seeded, the caller's
    RNG untouched."""
    if isinstance(attack, tuple):
        attack = create_attack(attack[0], **attack[1])
    gen = torch.Generator(device=x.device).manual_seed(seed)
    with seeded_rng(seed, x.device):
        x_adv = attack(model, x, y, generator=gen)
    clean = predictions(model, x, R, seed + 1) == y.cpu()[None]
    adv = predictions(model, x_adv, R, seed + 2) == y.cpu()[None]
    return float((clean & adv).double().mean())


def default_pgd(eps: float = 8 / 255, steps: int = 20, **kw: object) -> dict:
    """PGD L-inf parameters at ``eps``: ``steps`` steps of 2.5 eps / steps, random start (others default)."""
    return {"eps": eps, "alpha": 2.5 * eps / steps, "steps": steps, "random_start": True, **kw}


def measure_single_vs_iterative(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 8 / 255,
                                pgd: Mapping | None = None, eot: int = 1, R: int = 1,
                                seed: int = 0) -> tuple[float, float]:
    """(FGSM accuracy, PGD accuracy) on every image at the same L-inf ``eps`` (``pgd``: PGD parameters,
    default :func:`default_pgd`; its eps is forced to ``eps``)."""
    params = {**(pgd or default_pgd(eps)), "eps": eps}
    params.setdefault("eot", eot)
    fgsm = robust_accuracy(model, x, y, ("fgsm", {"eps": eps, "eot": params["eot"]}), R, seed)
    it = robust_accuracy(model, x, y, ("pgd-linf", params), R, seed)
    return fgsm, it


def eps_sweep_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    eps: Sequence[float] = EPS_SWEEP_DEFAULT, steps: int = 20, eot: int = 1, R: int = 1,
                    seed: int = 0, tol: Tolerances = Tolerances()) -> tuple[dict[float, float], str | None]:
    """#2 on a model: PGD L-inf (``steps`` steps of 2.5 eps / steps, random start, every step run, EOT
    ``eot``) at each ``eps`` (default 8/255, 0.1, 0.25, 0.5); returns ``({eps: accuracy}, flag or None)``."""
    accs = {float(e): robust_accuracy(model, x, y, ("pgd-linf", default_pgd(e, steps, eot=eot,
                                                                             early_stop=False)), R, seed)
            for e in eps}
    return accs, check_eps_sweep(accs, tol.eps_final, tol.eps_rise, len(x))


def convergence_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pgd: Mapping | None = None,
                      R: int = 1, seed: int = 0, tol: Tolerances = Tolerances()
                      ) -> tuple[dict[str, float], list[str]]:
    """#5 on a model: PGD L-inf with ``pgd`` parameters, then with twice the steps (same ``steps * alpha``
    reach is kept by halving alpha) and with twice the restarts; returns accuracies and flags."""
    base = dict(pgd or default_pgd())
    steps, restarts = int(base.get("steps", 10)), int(base.get("restarts", 1))
    alpha = base.get("alpha")
    variants = {"base": base,
                "steps x2": {**base, "steps": 2 * steps, "alpha": (alpha / 2) if alpha else alpha},
                "restarts x2": {**base, "restarts": 2 * restarts}}
    accs = {k: robust_accuracy(model, x, y, ("pgd-linf", v), R, seed) for k, v in variants.items()}
    flags = [f for k in ("steps x2", "restarts x2")
             if (f := check_convergence(accs["base"], accs[k], tol.convergence, len(x),
                                        f"{k} ({steps} steps, {restarts} restart(s) before)"))]
    return accs, flags


def gradient_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "ce",
                   seed: int = 0) -> tuple[float, float]:
    """(fraction of images whose input gradient is exactly zero everywhere, fraction with any NaN/inf)."""
    from bench.attacks.base import frozen_eval, input_grad

    with frozen_eval(model), seeded_rng(seed, x.device):
        g, _ = input_grad(model, x, y, loss)
    flat = g.flatten(1)
    nonfinite = ~torch.isfinite(flat).all(1)
    zero = (flat == 0).all(1)
    return float(zero.double().mean()), float(nonfinite.double().mean())


def gradient_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0,
                   tol: Tolerances = Tolerances()) -> tuple[tuple[float, float], list[str]]:
    """#7 on a model: ``((zero fraction, non-finite fraction), flags)`` of the cross-entropy input
    gradient."""
    zero, bad = gradient_stats(model, x, y, "ce", seed)
    return (zero, bad), check_gradients(zero, bad, tol.zero_grad)


def eot_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pgd: Mapping | None = None, eot: int = 20,
              R: int = 10, seed: int = 0) -> tuple[float, float]:
    """(PGD accuracy with ``pgd``'s own eot, the same PGD with ``eot`` passes per step and every step run),
    each the mean over ``R`` passes: how much a single-pass attack overstates a stochastic model."""
    base = dict(pgd or default_pgd())
    a = robust_accuracy(model, x, y, ("pgd-linf", base), R, seed)
    b = robust_accuracy(model, x, y, ("pgd-linf", {**base, "eot": eot, "early_stop": False}), R, seed)
    return a, b


def cw_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0, steps: int = 100,
             search_steps: int = 9, tol: Tolerances = Tolerances()) -> tuple[float, str | None]:
    """#3 on a model: success rate of unbounded CW-L2 (binary search) on the clean-correct images."""
    ok = (predictions(model, x, 1, seed)[0] == y.cpu()).to(x.device)
    if not ok.any():
        return 1.0, None
    cw = create_attack("cw-l2", threshold=None, steps=steps, search_steps=search_steps)
    with seeded_rng(seed, x.device):
        res = cw.minimize(model, x[ok], y[ok])
    rate = float(res.success.double().mean())
    return rate, check_cw_unbounded(rate, tol.cw_success)


# ----------------------------------------------------------------------------------------------- records
@dataclass
class _Row:
    """The fields of one record row that the checks read."""

    model: str
    label: str
    kernel: str
    params: dict
    norm: str | None
    eps: float | None
    eps_effective: float | None
    acc: float
    n: int
    exact: bool
    evaluated: int
    fooled: int
    stochastic: bool
    unbounded_success: float | None

    @property
    def eot(self) -> int:
        return int(self.params.get("eot", 1) or 1)

    @property
    def full_budget(self) -> bool:
        return self.eps is not None and (self.eps_effective is None
                                         or math.isclose(self.eps_effective, self.eps, rel_tol=1e-6))


def _num(v, default=None):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return default
    return v


def _records(records) -> list[dict]:
    if records is None:
        return []
    if hasattr(records, "to_dict"):
        return records.to_dict("records")
    return [dict(r) for r in records]


def _rows(records: Iterable[dict]) -> list[_Row]:
    out = []
    for r in records:
        kernel = str(r.get("kernel") or "")
        if kernel in ("", "clean", "aggregate"):
            continue
        params = r.get("params") or {}
        if isinstance(params, str):
            try:
                params = json.loads(params)
            except json.JSONDecodeError:
                params = {}
        n = int(_num(r.get("n"), 0))
        out.append(_Row(
            model=str(r.get("model")), label=str(r.get("attack")), kernel=kernel, params=dict(params),
            norm=r.get("norm"), eps=_num(r.get("eps")), eps_effective=_num(r.get("eps_effective")),
            acc=float(_num(r.get("accuracy"), float("nan"))), n=n, exact=bool(_num(r.get("exact"), True)),
            evaluated=int(_num(r.get("evaluated"), n)), fooled=int(_num(r.get("fooled"), 0)),
            stochastic=bool(_num(r.get("stochastic"), False)),
            unbounded_success=_num(r.get("unbounded_success"))))
    return out


def _same_budget(a: _Row, b: _Row) -> bool:
    return (a.norm == b.norm and a.full_budget and b.full_budget
            and math.isclose(float(a.eps), float(b.eps), rel_tol=1e-6, abs_tol=1e-9))


def _ran_before(r: _Row, s: _Row) -> bool:
    """In an early-exit cascade ``evaluated`` can only shrink: ``r`` ran before ``s`` when it evaluated more
    samples, or as many while ``s`` fooled some (had ``s`` run first, ``r`` would have seen fewer)."""
    return r.evaluated > s.evaluated or (r.evaluated == s.evaluated and s.fooled > 0)


def _beats(ref: _Row, sus: _Row, tol: float) -> str | None:
    """Evidence that ``sus`` is stronger than ``ref`` by more than ``tol``, as a phrase with the two numbers;
    None when there is none or the records cannot tell (``sus`` ran first in an early-exit cascade)."""
    m = _margin(tol, ref.n)
    if ref.exact and sus.exact:
        if sus.acc < ref.acc - m:
            return f"{sus.label} {_pct(sus.acc)} < {ref.label} {_pct(ref.acc)}"
        return None
    if ref.n and _ran_before(ref, sus) and sus.fooled / ref.n > m:
        bound = "" if ref.exact else "<= "
        return (f"{sus.label} fooled a further {_pct(sus.fooled / ref.n)} of the images that survived "
                f"{ref.label} ({bound}{_pct(ref.acc)})")
    return None


def record_flags(records, tol: Tolerances = Tolerances(), stochastic: Mapping[str, bool] | None = None
                 ) -> dict[tuple[str, str], list[str]]:
    """Every check that needs only the records (#1, #3, #4, #5 and #6); a model counts as stochastic when
    its records say so or ``stochastic[model]`` (e.g. measured by two forward passes) does."""
    rows = _rows(_records(records))
    out: dict[tuple[str, str], list[str]] = {}

    def add(row: _Row, flag: str | None) -> None:
        if flag and flag not in out.setdefault((row.model, row.label), []):
            out[(row.model, row.label)].append(flag)

    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        stoch = any(r.stochastic for r in mine) or bool((stochastic or {}).get(model, False))
        for r in mine:
            # 1: multi-step weaker than single-step at the same budget (flag on the multi-step row)
            if r.kernel in ITERATIVE_KERNELS:
                for s in mine:
                    if s.kernel in SINGLE_STEP_KERNELS and _same_budget(r, s):
                        why = _beats(r, s, tol.single_step)
                        add(r, why and _flag(SINGLE_STEP, why + " at the same budget"))
            # 3: unbounded CW (binary search) must fool nearly every sample
            if r.kernel == "cw-l2" and r.params.get("mode", "search") == "search" and \
                    r.unbounded_success is not None:
                add(r, check_cw_unbounded(float(r.unbounded_success), tol.cw_success))
            # 4: an adaptive attack beats a white-box one (flag on the white-box row it beats)
            if r.kernel in WHITE_BOX_KERNELS - SINGLE_STEP_KERNELS:
                for s in mine:
                    if s.kernel in ADAPTIVE_KERNELS and _same_budget(r, s):
                        why = _beats(r, s, tol.adaptive)
                        add(r, why and _flag(ADAPTIVE, why))
            # 5: the same attack with twice the steps or restarts is stronger (flag on the base row)
            for s in mine:
                if s.kernel == r.kernel and s is not r and _same_budget(r, s):
                    what = _doubled(r.params, s.params)
                    if what:
                        why = _beats(r, s, tol.convergence)
                        add(r, why and _flag(NOT_CONVERGED, f"{why} ({what})"))
            # 6: stochastic model: EOT and no early stop on one noisy pass
            if stoch and r.kernel in EOT_KERNELS:
                add(r, check_eot(True, r.eot))
                add(r, check_early_stop(True, bool(r.params.get("early_stop", False)), r.eot))
        # 4 (acceptance): our strongest kernel within 1 pp of AutoAttack, deterministic models
        if not stoch:
            for aa in (r for r in mine if r.kernel in AUTOATTACK_KERNELS):
                own = [r for r in mine if r.kernel in OWN_KERNELS and _same_budget(r, aa)]
                if own:
                    best = min(own, key=lambda r: (r.acc, -r.evaluated))
                    why = _beats(best, aa, tol.autoattack)
                    add(best, why and _flag(AUTOATTACK, why))
    return {k: v for k, v in out.items() if v}


def _doubled(a: dict, b: dict) -> str | None:
    """'steps x2' / 'restarts x2' when ``b`` is ``a`` with twice the steps or twice the restarts."""
    for key in ("steps", "restarts"):
        va, vb = a.get(key, 1), b.get(key, 1)
        rest_a = {k: v for k, v in a.items() if k not in (key, "alpha")}
        rest_b = {k: v for k, v in b.items() if k not in (key, "alpha")}
        if va and vb == 2 * va and rest_a == rest_b:
            return f"{key} {va} -> {vb}"
    return None


# ----------------------------------------------------------------------------------------------- entry point
MEASURES = ("stochastic", "gradients", "single-step", "eps-sweep", "convergence", "eot")
#: the order in which :func:`plan_measures` keeps measurements under a time budget (most telling first)
PRIORITY = ("stochastic", "gradients", "eot", "single-step", "eps-sweep", "convergence", "cw")


def _pgd_for(rows: list[_Row], eps: float | None) -> tuple[_Row | None, float, dict]:
    """The records' first full-budget iterative row, the measurement budget and the PGD parameters the
    measured checks use (the records' own PGD at its eps, else PGD-20 at ``eps`` or 8/255)."""
    pgd_row = next((r for r in rows if r.kernel in ITERATIVE_KERNELS and r.full_budget), None)
    e = eps if eps is not None else (float(pgd_row.eps) if pgd_row else 8 / 255)
    pgd = {**pgd_row.params, "eps": e} if pgd_row and eps is None else default_pgd(e)
    return pgd_row, e, pgd


def _needs_eot_numbers(rows: list[_Row]) -> bool:
    """Whether some row would carry the EOT flag (a gradient attack with eot = 1): only then the measured
    accuracies without and with EOT are worth their cost (they are written into that flag)."""
    return any(r.kernel in EOT_KERNELS and r.eot == 1 for r in rows)


def measure_passes(records=None, name: str | None = None, stochastic: bool = False, eot: int = 10,
                   R: int = 10, eps: float | None = None) -> dict[str, float]:
    """Estimated cost of each measurement of :func:`diagnose` on one model, in forward+backward passes per
    image (R-pass predictions counted as half a pass each): what :func:`plan_measures` budgets with. A
    measurement that does not apply to this model (``eot`` on a deterministic model, or when no row lacks
    EOT) is left out."""
    rows = [r for r in _rows(_records(records)) if name is None or r.model == name]
    _, _, pgd = _pgd_for(rows, eps)
    steps, restarts = int(pgd.get("steps", 10)), int(pgd.get("restarts", 1) or 1)
    pgd_eot = int(pgd.get("eot", 1) or 1)
    reps = R if stochastic else 1
    preds = reps  # clean + adversarial predictions, R of each, at half a pass
    cost = {
        "stochastic": 0.0,
        "gradients": 1.0,
        "single-step": pgd_eot * (1 + steps * restarts) + 2 * preds,
        "eps-sweep": len(EPS_SWEEP_DEFAULT) * (20 * (eot if stochastic else 1) + preds),
        "convergence": pgd_eot * steps * restarts * 5 + 3 * preds,
        "cw": 9 * 100.0,
    }
    if stochastic and _needs_eot_numbers(rows):
        cost["eot"] = steps * (1 + eot) + 2 * preds
    return cost


def plan_measures(records=None, name: str | None = None, *, stochastic: bool = False,
                  seconds_per_pass: float | None = None, n: int = 128, budget_s: float | None = None,
                  measure: Sequence[str] = MEASURES, eot: int = 10, R: int = 10
                  ) -> tuple[list[str], list[str]]:
    """``(kept, skipped)``: the measurements of ``measure`` that fit ``budget_s`` seconds on ``n`` images at
    ``seconds_per_pass`` per image and forward+backward pass, taken in :data:`PRIORITY` order (a costly one
    that does not fit is skipped, cheaper ones after it may still run). No budget or no timing: all kept.
    For slow models on a CPU (a CIFAR WideResNet): the caller reports the skipped checks."""
    cost = measure_passes(records, name, stochastic, eot, R)
    order = [m for m in PRIORITY if m in measure and m in cost] + \
        [m for m in measure if m not in PRIORITY and m in cost]  # not applicable (cost absent): left out
    if budget_s is None or seconds_per_pass is None:
        return order, []
    kept, skipped, total = [], [], 0.0
    for m in order:
        t = cost.get(m, 0.0) * n * seconds_per_pass
        if m in ("stochastic", "gradients") or total + t <= budget_s:
            kept.append(m)
            total += t
        else:
            skipped.append(m)
    return kept, skipped


def diagnose(records=None, model: nn.Module | Mapping[str, nn.Module] | None = None,
             x: torch.Tensor | None = None, y: torch.Tensor | None = None, *, name: str | None = None,
             n: int = 128, seed: int = 0, eps: float | None = None, measure: Sequence[str] = MEASURES,
             eot: int = 10, R: int = 10, tol: Tolerances = Tolerances()) -> dict[tuple[str, str], list[str]]:
    """Run every check; returns ``{(model, attack column): [flag, ...]}`` for the rows that need a warning.

    ``records``: record rows (list of dicts or a DataFrame, as :mod:`bench.results` writes them) or None.
    ``model``: a model (the records' only model, or ``name``) or ``{name: model}``; with ``x``, ``y``
    (images in [0, 1], the first ``n`` are used) the model-level checks in ``measure`` run on it:
    ``stochastic`` (two forward passes differ), ``gradients`` (#7), ``single-step`` (#1, FGSM vs the
    records' PGD or PGD-20, every image), ``eps-sweep`` (#2), ``convergence`` (#5), ``eot`` (#6, accuracy
    without and with ``eot`` passes; only for stochastic models whose records have a gradient attack with
    eot = 1, the row whose flag carries the numbers), and ``cw`` (#3, not by default: slow). For a time
    budget see :func:`plan_measures`.
    ``eps``: the budget of the measurements (default: the records' PGD eps, else 8/255). A stochastic model's
    accuracies are means over ``R`` passes. Model-level flags go on the ``worst-case`` row; flags about one
    attack go on its row."""
    recs = _records(records)
    models: dict[str, nn.Module] = {}
    if isinstance(model, Mapping):
        models = dict(model)
    elif model is not None:
        names = list(dict.fromkeys(str(r.get("model")) for r in recs))
        if name is None and len(names) > 1:
            raise ValueError(f"records hold several models {names}: pass name= or a {{name: model}} mapping")
        models = {name or (names[0] if names else "model"): model}
    if models and (x is None or y is None):
        raise ValueError("diagnose(model=...) needs the images x and labels y")

    stochastic: dict[str, bool] = {}
    measured: dict[tuple[str, str], list[str]] = {}
    eot_numbers: dict[str, tuple[float, float]] = {}
    for mname, m in models.items():
        dev = next((p.device for p in m.parameters()), torch.device("cpu"))
        xs, ys = x[:n].to(dev), y[:n].to(dev)
        rows = [r for r in _rows(recs) if r.model == mname]
        pgd_row, e, pgd = _pgd_for(rows, eps)
        at = pgd_row.label if pgd_row else HEADLINE
        stoch = is_stochastic_by_forward(m, xs, seed) if "stochastic" in measure else \
            any(r.stochastic for r in rows)
        stochastic[mname] = stoch
        reps = R if stoch else 1
        flags: list[tuple[str, str]] = []
        if "gradients" in measure:
            flags += [(HEADLINE, f) for f in gradient_check(m, xs, ys, seed, tol)[1]]
        if "single-step" in measure:
            fg, it = measure_single_vs_iterative(m, xs, ys, e, pgd, R=reps, seed=seed)
            f = check_single_step(it, fg, tol.single_step, len(xs))
            flags += [(at, f + " (measured on every image)")] if f else []
        if "eps-sweep" in measure:
            f = eps_sweep_check(m, xs, ys, eot=eot if stoch else 1, R=reps, seed=seed, tol=tol)[1]
            flags += [(HEADLINE, f)] if f else []
        if "convergence" in measure:
            flags += [(at, f) for f in convergence_check(m, xs, ys, pgd, reps, seed, tol)[1]]
        if "eot" in measure and stoch and _needs_eot_numbers(rows):  # else no row carries the numbers
            eot_numbers[mname] = eot_check(m, xs, ys, {**pgd, "eot": 1}, eot, R, seed)
        if "cw" in measure:
            f = cw_check(m, xs, ys, seed, tol=tol)[1]
            flags += [(HEADLINE, f)] if f else []
        for label, f in flags:
            measured.setdefault((mname, label), []).append(f)

    out = record_flags(recs, tol, stochastic)
    for (mname, _label), fl in out.items():  # put the measured numbers into the EOT flags
        if mname in eot_numbers:
            a, b = eot_numbers[mname]
            fl[:] = [check_eot(True, 1, a, b) if flag_name(f) == NO_EOT else f for f in fl]
    for key, fl in measured.items():
        for f in fl:
            if f not in out.setdefault(key, []):
                out[key].append(f)
    return {k: v for k, v in out.items() if v}


def apply_warnings(records, flags: Mapping[tuple[str, str], list[str]]):
    """Write ``flags`` into the ``warnings`` column of ``records`` (list of dicts, changed in place and
    returned, or a DataFrame, copied): existing warnings are kept, new ones appended, joined with ``"; "``
    (flags never contain ``;``). Flags of a (model, column) without a row are ignored."""
    def merged(old, new: list[str]) -> str:
        have = [w.strip() for w in str(old or "").split(";") if w.strip()]
        return "; ".join(dict.fromkeys(have + [f.replace(";", ",") for f in new]))

    if hasattr(records, "to_dict"):
        df = records.copy()
        if "warnings" not in df.columns:
            df["warnings"] = ""
        for i, r in df.iterrows():
            new = flags.get((str(r["model"]), str(r["attack"])), [])
            if new:
                df.at[i, "warnings"] = merged(r["warnings"], new)
        return df
    for r in records:
        new = flags.get((str(r.get("model")), str(r.get("attack"))), [])
        if new:
            r["warnings"] = merged(r.get("warnings"), new)
    return records
