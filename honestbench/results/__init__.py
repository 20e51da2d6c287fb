"""Records, the per-sample robustness matrix, and the on-disk layout of a results directory (torch-free).

A results directory (``bench run --out DIR``) holds::

    DIR/records.json            {"schema": 1, "run": {...}, "records": [row, ...]}  (atomic)
    DIR/records.csv             the same rows, flat (atomic)
    DIR/matrices/<model>.npz    the per-sample matrix of one model (:class:`Matrix`)
    DIR/cells/<model>/model.json        card name, checkpoint sha256, stochastic flag, ...
    DIR/cells/<model>/clean.npz         clean predictions + inference timings (a "cell")
    DIR/cells/<model>/<attack>.npz      one attack's column + 8 example images (a "cell")
    DIR/leaderboard.md, DIR/figures/*.png   written by :mod:`honestbench.report` from the files above

Cells are the unit of resumption: each is written atomically once its attack has finished on every sample,
so Ctrl-C leaves only complete cells, and a rerun skips them. Everything downstream (records, report,
``bench check``, merges of sharded runs) reads these files and never re-runs an attack.

Robust flags are tri-state int8: ``1`` robust (clean-correct and still correct on the adversarial image),
``0`` not robust (misclassified clean, or fooled), ``-1`` not evaluated (early-exit mode: an earlier
attack of the cascade had already fooled the sample). A per-attack column with ``-1`` entries is known only
within bounds: ``count`` counts the samples known robust (lower bound), ``count_hi`` adds the unevaluated
ones (upper bound); the row's ``accuracy`` is the upper bound ``count_hi / n`` and ``exact`` is False.

Stochastic models (mean over R passes): the robust flags above come from ONE seeded stochastic forward pass
per image. A stochastic model's matrix also holds ``clean_passes`` (N, R) and ``robust_passes`` (N, A, R):
the correctness of each image in R further seeded passes, clean and on the attack's adversarial image
(tri-state like ``robust``; a pass counts as robust when both its clean and its adversarial prediction are
right; an image the reference clean pass got wrong is not attacked and counts 0). Its records then add
``accuracy_mean_R`` (the mean over images and the R passes), ``spread`` (standard deviation over the R
passes of the per-pass accuracy) and ``R``; both are empty for deterministic models and for columns not
evaluated on every image (early exit).
"""

from honestbench.results.layout import (
    cell_path,
    diagnostics_path,
    load_cell,
    matrix_path,
    model_dir,
    model_info_path,
    safe_name,
    save_cell,
    shard_cell_path,
)
from honestbench.results.matrix import NOT_EVALUATED, Z95, Matrix, combine, merge_matrices, wilson_interval
from honestbench.results.records import (
    RECORD_COLUMNS,
    SCHEMA,
    git_commit,
    load,
    load_matrix,
    mean_over_passes,
    model_order,
    provenance,
    read_records,
    read_run,
    record_rows,
    write_records,
)
from honestbench.results.run import (
    RUN_KEYS,
    ModelRecord,
    RunInfo,
    SuiteRecord,
    read_model_record,
    write_model_record,
)

__all__ = [
    "NOT_EVALUATED", "RECORD_COLUMNS", "RUN_KEYS", "SCHEMA", "ModelRecord", "RunInfo", "SuiteRecord",
    "read_model_record", "read_run", "write_model_record", "Z95", "Matrix", "cell_path", "combine", "diagnostics_path",
    "git_commit", "load", "load_cell", "load_matrix", "matrix_path", "mean_over_passes", "merge_matrices",
    "model_dir", "model_info_path", "model_order", "provenance", "read_records", "record_rows", "safe_name",
    "save_cell", "shard_cell_path", "wilson_interval", "write_records",
]
