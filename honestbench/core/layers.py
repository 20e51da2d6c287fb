"""The package layers of ``bench`` and the import rule they obey, checked by ``scripts/import_graph.py`` and
``tests/test_architecture.py``.

Each package may import only from itself and from the packages listed before it; within a package the
module-level import graph has no circle. ``honestbench/__init__.py`` (the public API) sits above every layer.
"""

from __future__ import annotations

#: lowest first: a package imports only from packages earlier in this tuple (and from itself)
LAYERS: tuple[str, ...] = (
    "core",         # errors, files, seeding, threads, the generic registry: no other bench import
    "data",         # datasets as tensors with pixels in [0, 1]
    "nets",         # backbones, defence layers, fast inference forms
    "zoo",          # model cards -> built, checkpoint-loaded models
    "attacks",      # the attack kernels and their registry
    "certify",      # certified bounds (IBP, CROWN) and exact verification (MILP) of small ReLU networks
    "suites",       # attack suites as data, per-model policy
    "results",      # the robustness matrix, cell files, records (torch-free)
    "engine",       # cells, columns, the early-exit cascade, runner, shards (one process = a world of size 1)
    "diagnostics",  # gradient-masking flags and the measurements behind them
    "report",       # leaderboards, figures and the terminal summary, from records
    "train",        # training recipes
    "pipeline",     # run, check, diagnose-and-annotate, model resolution: the library put to work
    "api",          # honestbench/api.py: the public Python functions (re-exported lazily by honestbench/__init__)
    "devtools",     # developer harnesses: crosscheck (torchattacks, ART) and speed
    "cli",          # the command line: parser and one small module per subcommand
)
