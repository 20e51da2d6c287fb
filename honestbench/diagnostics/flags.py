"""The diagnostic flags: each flag's name, its item on the methods page's checklist and the sentence that
explains it on the leaderboard; the flag-string format and the checks' tolerances. Torch-free (``bench
report`` reads only this module). Accuracies and tolerances are fractions (0.02 = 2 pp).

A flag string is ``"<name>: <the two numbers that broke it> (methods.md, Evaluation integrity #k)"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from honestbench.core.registry import Registry

METHODS_LINK = "docs/methods.md#evaluation-integrity-beyond-the-report"


@dataclass(frozen=True)
class Flag:
    """One diagnostic flag: ``item`` is its number in methods.md's "Evaluation integrity" checklist,
    ``sentence`` what it means, for the leaderboard."""

    name: str
    item: int
    sentence: str

    @property
    def explanation(self) -> str:
        return f"{self.sentence} See {METHODS_LINK}."


#: every flag a check can raise, by name, in the order of methods.md's checklist
FLAGS: Registry[Flag] = Registry("diagnostic flag")


def define_flag(name: str, item: int, sentence: str) -> str:
    """Register a flag; returns its name (the module constant the checks use)."""
    FLAGS.add(name, Flag(name, item, sentence))
    return name


# ------------------------------------------------------------------------------------ the flags (a table)
SINGLE_STEP = define_flag(
    "single-step-stronger", 1,
    "A multi-step attack starts with the single-step move and can only do better, so a higher accuracy under "
    "PGD than under FGSM at the same budget means its gradients mislead it.")
EPS_SWEEP = define_flag(
    "no-fall-with-eps", 2,
    "With a large enough budget (L-inf 0.5 can turn every image grey) any real attack reaches about 0 % "
    "accuracy, so accuracy that does not fall with eps means the attack is not working.")
CW_FAILS = define_flag(
    "cw-unbounded-fails", 3,
    "CW with a binary search and no bound on the perturbation must eventually fool every sample, so failures "
    "mean the optimisation is stuck on masked gradients.")
ADAPTIVE = define_flag(
    "adaptive-stronger", 4,
    "An attack that does not use the model's own gradients (surrogate, BPDA, transfer) beat the white-box "
    "attack: the signature of masked or obfuscated gradients.")
AUTOATTACK = define_flag(
    "weaker-than-autoattack", 4,
    "AutoAttack found adversarial images that our own kernels missed on a deterministic model, so our "
    "kernels' numbers overstate robustness.")
NOT_CONVERGED = define_flag(
    "not-converged", 5,
    "Accuracy still dropped when the attack got twice the steps or restarts, so the reported number is not "
    "converged and overstates robustness.")
NO_EOT = define_flag(
    "stochastic-no-eot", 6,
    "Two identical forward passes of this model disagree, so the gradient of one pass is a noisy sample; "
    "attack it with EOT (gradient averaged over many passes).")
EARLY_STOP = define_flag(
    "stochastic-early-stop", 6,
    "The attack kept the first iterate that fooled one random forward pass; on a stochastic model that point "
    "is often classified correctly on the next pass, so run every step.")
ZERO_GRAD = define_flag(
    "zero-gradients", 7,
    "The input gradient is exactly zero for many images (quantised or saturated layers), so gradient attacks "
    "cannot move and their accuracy is meaningless.")
NONFINITE_GRAD = define_flag(
    "nonfinite-gradients", 7,
    "The input gradient contains NaN or inf, so gradient attacks take undefined steps and their accuracy is "
    "meaningless.")
VANISHING_GRAD = define_flag(
    "vanishing-gradients", 7,
    "The input gradient of the logit margin is below 1e-8 for most images, so gradient attacks barely move; "
    "the gradient-free and BPDA columns were added.")
NO_GRAPH = define_flag(
    "no-gradient-graph", 7,
    "No gradient reaches the input (the forward pass runs under torch.no_grad(), detaches, or leaves torch), so "
    "gradient attacks cannot run; the model was evaluated with BPDA, Square and transfer attacks instead.")
AUTOGRAD_IN_FORWARD = define_flag(
    "forward-calls-autograd", 7,
    "The forward pass computes gradients itself; such a model usually hides its real gradient from attacks, "
    "so the gradient-free and BPDA columns were added.")
PROBABILITIES = define_flag(
    "probabilities", 7,
    "The model returns probabilities instead of logits: cross-entropy on them saturates and weakens gradient "
    "attacks (the margin and DLR losses are not affected); return the logits.")

BINARIZATION = define_flag(
    "binarization-test-failed", 7,
    "On binary classifiers built from this model's features with an adversarial point inside the budget by "
    "construction (Zimmermann et al. 2022), the attack missed that point too often: it is too weak for this "
    "model (masked gradients or a broken attack), so its accuracy overstates robustness.")

AGGREGATE = define_flag(
    "aggregate-above-member", 8,
    "A per-sample aggregate (an image robust to every member attack) can never be above any of its members, so "
    "this aggregate was not computed per sample (e.g. accuracies added) and is not an accuracy.")

#: flag name -> its checklist item in methods.md
_ITEM: dict[str, int] = {name: f.item for name, f in FLAGS.items()}
#: One sentence per flag for the leaderboard, each ending with the link to methods.md's checklist.
EXPLANATIONS: dict[str, str] = {name: f.explanation for name, f in FLAGS.items()}


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
    * ``zero_grad`` 0.10: at most 10 % of images may have an all-zero input gradient;
    * ``binarization`` 0.05: the attack may miss the guaranteed adversarial point of at most 5 % of the
      binarization test's images ("a few percent", Zimmermann et al. 2022)."""

    single_step: float = 0.02
    eps_final: float = 0.05
    eps_rise: float = 0.02
    cw_success: float = 0.95
    adaptive: float = 0.05
    autoattack: float = 0.01
    convergence: float = 0.02
    zero_grad: float = 0.10
    binarization: float = 0.05


#: the tolerances every check uses unless told otherwise
DEFAULT_TOLERANCES = Tolerances()


def pct(v: float) -> str:
    """An accuracy fraction as a percentage with one decimal: ``'45.3 %'``."""
    return f"{100 * v:.1f} %"


def margin(tol: float, n: int | None) -> float:
    """The tolerance a check allows on ``n`` samples: ``tol``, and at least one sample (1/n)."""
    return max(tol, 1.0 / n) if n else tol


def get_flag(name: str) -> Flag:
    """The defined flag called ``name`` (an unknown name raises :class:`honestbench.core.errors.BenchError`)."""
    return FLAGS.get(name)


def make_flag(name: str, detail: str) -> str:
    """The flag string of check ``name`` with ``detail`` (the numbers that broke it)."""
    return f"{name}: {detail} (methods.md, Evaluation integrity #{get_flag(name).item})"


def flag_name(flag: str) -> str:
    """The check name of a flag string (the part before the first colon)."""
    return flag.split(":", 1)[0].strip()


def explain(flag: str) -> str:
    """One sentence for the leaderboard explaining ``flag`` (a flag string or a check name); empty for an
    unknown flag."""
    name = flag_name(flag)
    return get_flag(name).explanation if name in FLAGS else ""
