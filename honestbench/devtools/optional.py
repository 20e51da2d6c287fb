"""Optional libraries of the developer harnesses, imported only when a harness needs them.

ART (adversarial-robustness-toolbox) is a reference of ``bench crosscheck --art`` and a contender of ``bench
speed``, nothing else: a plain ``pip install honestbench`` runs every user command without it, and the harnesses
ask for it with one line when it is missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from honestbench.core.errors import BenchError

#: the extra that installs ART (``pyproject.toml``'s ``[project.optional-dependencies]``)
ART_EXTRA = "crosscheck"
ART_MISSING = (f"ART (adversarial-robustness-toolbox) is not installed: pip install 'honestbench[{ART_EXTRA}]', "
               "or leave ART out (bench crosscheck without --art, bench speed --no-art)")


def import_art(module: str = "art") -> ModuleType:
    """``art`` or one of its submodules (``art.attacks.evasion``), or a one-line :class:`BenchError` naming the
    extra to install when ART is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "art":
            raise BenchError(ART_MISSING) from None
        raise
