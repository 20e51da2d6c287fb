"""Cross-checks (``bench crosscheck``): each of our attack kernels against its torchattacks and ART equivalent,
on the same model and the same images (pixels in [0, 1], eps in the same units; accuracies in %).

Per attack the comparison records robust accuracy (clean-correct AND adversarial-correct) of ours, torchattacks
and ART, the max absolute pixel difference between our images and each reference's where the attack is
deterministic, the tolerance applied, and a computed verdict (``ok`` / ``FAIL`` / ``n/a``) with a note.

Modules: :mod:`.references` (the reference equivalents, a table keyed by registered attack name),
:mod:`.compare` (one row: runs and tolerances), :mod:`.driver` (rows, clean pass, noise check),
:mod:`.program` (model and images for the command), :mod:`.table` (the text table).
"""

from honestbench.devtools.crosscheck.compare import (
    CW_ACC_TOL_PP,
    EVAL_SEED,
    EXACT_ACC_TOL_PP,
    EXACT_PIXEL_TOL,
    RANDOM_ACC_TOL_PP,
    REFERENCES,
)
from honestbench.devtools.crosscheck.driver import DEFAULT_ROWS, crosscheck
from honestbench.devtools.crosscheck.program import load_reference_model, run_crosscheck
from honestbench.devtools.crosscheck.references import (
    EQUIVALENTS,
    art_classifier,
    art_equivalent,
    torchattacks_equivalent,
)
from honestbench.devtools.crosscheck.table import format_table

__all__ = [
    "CW_ACC_TOL_PP",
    "DEFAULT_ROWS",
    "EQUIVALENTS",
    "EVAL_SEED",
    "EXACT_ACC_TOL_PP",
    "EXACT_PIXEL_TOL",
    "RANDOM_ACC_TOL_PP",
    "REFERENCES",
    "art_classifier",
    "art_equivalent",
    "crosscheck",
    "format_table",
    "load_reference_model",
    "run_crosscheck",
    "torchattacks_equivalent",
]
