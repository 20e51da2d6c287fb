"""The checks on numbers: small pure functions (``check_*``) that return ``None`` or a flag string
(:mod:`honestbench.diagnostics.flags`) naming the two numbers that broke it; unit-testable on constructed values.
Torch-free. Accuracies, success rates and tolerances are fractions; eps in pixel units of [0, 1] images.
"""

from __future__ import annotations

from collections.abc import Mapping

from honestbench.diagnostics.flags import (
    ADAPTIVE,
    AUTOATTACK,
    BINARIZATION,
    CW_FAILS,
    EARLY_STOP,
    EPS_SWEEP,
    NO_EOT,
    NONFINITE_GRAD,
    NOT_CONVERGED,
    SINGLE_STEP,
    ZERO_GRAD,
    make_flag,
    margin,
    pct,
)


def check_single_step(iterative_acc: float, single_acc: float, tol: float = 0.02, n: int | None = None,
                      iterative: str = "PGD", single: str = "FGSM") -> str | None:
    """#1: flag when the multi-step accuracy exceeds the single-step accuracy (same budget) by > ``tol``."""
    if iterative_acc > single_acc + margin(tol, n):
        return make_flag(SINGLE_STEP, f"{iterative} {pct(iterative_acc)} > {single} {pct(single_acc)} "
                                      f"at the same budget")
    return None


def check_eps_sweep(accs: Mapping[float, float], final_max: float = 0.05, rise_tol: float = 0.02,
                    n: int | None = None) -> str | None:
    """#2: ``accs`` maps L-inf eps -> iterative accuracy. Flag when accuracy rises with eps by > ``rise_tol``
    or when the accuracy at the largest eps (>= 0.5 expected) is above ``final_max``."""
    items = sorted(accs.items())
    for (e0, a0), (e1, a1) in zip(items, items[1:], strict=False):
        if a1 > a0 + margin(rise_tol, n):
            return make_flag(EPS_SWEEP, f"accuracy {pct(a0)} at eps {e0:.3g} rises to {pct(a1)} "
                                        f"at eps {e1:.3g}")
    if items and items[-1][1] > final_max:
        e0, a0 = items[0]
        e1, a1 = items[-1]
        return make_flag(EPS_SWEEP, f"accuracy {pct(a1)} at eps {e1:.3g} (> {pct(final_max)}; "
                                    f"{pct(a0)} at eps {e0:.3g})")
    return None


def check_cw_unbounded(success_rate: float, min_success: float = 0.95, norm_median: float | None = None
                       ) -> str | None:
    """#3: flag when unbounded CW (binary search) fools fewer than ``min_success`` of the samples."""
    if success_rate is not None and success_rate < min_success:
        extra = f", median L2 of its successes {norm_median:.3g}" if norm_median is not None else ""
        return make_flag(CW_FAILS, f"unbounded CW succeeded on {pct(success_rate)} < {pct(min_success)}{extra}")
    return None


def check_adaptive_stronger(white_acc: float, adaptive_acc: float, tol: float = 0.05, n: int | None = None,
                            white: str = "PGD", adaptive: str = "surrogate-PGD") -> str | None:
    """#4: flag when a surrogate / BPDA / transfer attack's accuracy is below the white-box one by more
    than ``tol``."""
    if adaptive_acc < white_acc - margin(tol, n):
        return make_flag(ADAPTIVE, f"{adaptive} {pct(adaptive_acc)} < white-box {white} {pct(white_acc)}")
    return None


def check_autoattack(own_acc: float, aa_acc: float, tol: float = 0.01, n: int | None = None,
                     own: str = "PGD", aa: str = "AutoAttack") -> str | None:
    """#4 (acceptance): flag when our strongest kernel is above AutoAttack by more than ``tol``."""
    if own_acc > aa_acc + margin(tol, n):
        return make_flag(AUTOATTACK, f"{own} {pct(own_acc)} > {aa} {pct(aa_acc)}")
    return None


def check_convergence(acc: float, acc_doubled: float, tol: float = 0.02, n: int | None = None,
                      what: str = "steps x2") -> str | None:
    """#5: flag when doubling steps or restarts (``what``) lowers the accuracy by more than ``tol``."""
    if acc_doubled < acc - margin(tol, n):
        return make_flag(NOT_CONVERGED, f"{pct(acc)} falls to {pct(acc_doubled)} with {what}")
    return None


def check_eot(stochastic: bool, eot: int, acc_no_eot: float | None = None, acc_eot: float | None = None,
              disagreement: float | None = None) -> str | None:
    """#6: flag a stochastic model attacked with ``eot`` = 1 (with the measured accuracies when known)."""
    if not stochastic or eot > 1:
        return None
    if acc_no_eot is not None and acc_eot is not None:
        return make_flag(NO_EOT, f"eot=1 gives {pct(acc_no_eot)}, EOT gives {pct(acc_eot)}")
    if disagreement is not None:
        return make_flag(NO_EOT, f"eot=1 while {pct(disagreement)} of predictions change between two passes")
    return make_flag(NO_EOT, "eot=1 on a stochastic model")


def check_early_stop(stochastic: bool, early_stop: bool, eot: int = 1) -> str | None:
    """#6: flag PGD's early stop (first iterate that fools one forward pass) on a stochastic model."""
    if stochastic and early_stop:
        return make_flag(EARLY_STOP, f"early_stop=True with eot={eot} on a stochastic model")
    return None


def check_gradients(zero_frac: float, nonfinite_frac: float, max_zero: float = 0.10) -> list[str]:
    """#7: flags for a fraction of images with all-zero (> ``max_zero``) or any non-finite input gradient."""
    out = []
    if nonfinite_frac > 0:
        out.append(make_flag(NONFINITE_GRAD, f"{pct(nonfinite_frac)} of images have NaN/inf input gradients"))
    if zero_frac > max_zero:
        out.append(make_flag(ZERO_GRAD, f"{pct(zero_frac)} of images have an all-zero input gradient "
                                        f"(> {pct(max_zero)})"))
    return out


def check_binarization(fail_rate: float, tested: int, attack: str = "PGD", max_fail: float = 0.05
                       ) -> str | None:
    """#7 (binarization test): flag when ``attack`` missed the guaranteed adversarial point on more than
    ``max_fail`` of the ``tested`` images."""
    if tested and fail_rate > max_fail:
        return make_flag(BINARIZATION, f"{attack} missed the guaranteed adversarial point on {pct(fail_rate)} of "
                                       f"{tested} binarized images (> {pct(max_fail)})")
    return None
