"""``bench speed``: where our kernels stand against torchattacks, ART and the limit of the machine, measured side by
side in one process (times in seconds or ms per image, ratios unitless, pixels in [0, 1]).

Sections (:data:`~honestbench.devtools.speed.run.SECTIONS`; ``--quick`` skips the heavy ones): ``pgd-cost small-cnn``
and,
heavy, ``pgd-cost wrn-34-1`` and ``pgd-cost wrn-34-10`` (:mod:`.pgd`: PGD-10 against the limit, torchattacks and
ART; ``--archs`` picks them, default small and wrn-34-1; each once per ``--precision``, fp32 and/or bf16); with
bf16 asked for, ``pgd-10 precision fp32 vs bf16`` (:mod:`.precision`: robust accuracy of a trained model under
both, against the 0.5 pp bar); heavy ``standard suite early exit vs torchattacks`` (:mod:`.suite`: the whole
harness against torchattacks running every attack on every image); ``inference slwta small-cnn`` and, heavy,
``inference slwta wrn-34-1`` (:mod:`.inference`: ms per image of the SLWTA architectures in their inference forms).
Timing primitives and the machine record are in :mod:`.timing`; :mod:`.run` runs the sections and lifts the
headline keys (:data:`~honestbench.devtools.speed.run.HEADLINE_KEYS`) to the top of the result.

Threads: torch's default unless the caller sets them (``benchmarks/pgd_cost.py --threads 1`` is the most
reproducible on a busy machine, where OpenMP threads contend with other processes); the machine record says what
was used.
"""

from honestbench.devtools.speed.inference import format_inference, inference_ms, inference_variants
from honestbench.devtools.speed.options import Context, SpeedOptions
from honestbench.devtools.speed.pgd import ARCHS, format_pgd_cost, pgd_cost
from honestbench.devtools.speed.precision import PRECISIONS, format_precision, parse_words, precision_check
from honestbench.devtools.speed.run import (
    DEFAULT_ARCHS,
    HEADLINE_KEYS,
    SECTIONS,
    Section,
    headline_text,
    run_speed,
    selected,
)
from honestbench.devtools.speed.suite import format_suite, suite_vs_torchattacks, torchattacks_suite
from honestbench.devtools.speed.timing import machine_info, time_interleaved

__all__ = [
    "ARCHS",
    "DEFAULT_ARCHS",
    "HEADLINE_KEYS",
    "PRECISIONS",
    "SECTIONS",
    "Context",
    "Section",
    "SpeedOptions",
    "format_inference",
    "format_pgd_cost",
    "format_precision",
    "format_suite",
    "headline_text",
    "inference_ms",
    "inference_variants",
    "machine_info",
    "parse_words",
    "pgd_cost",
    "precision_check",
    "run_speed",
    "selected",
    "suite_vs_torchattacks",
    "time_interleaved",
    "torchattacks_suite",
]
