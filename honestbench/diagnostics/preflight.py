"""The preflight's findings (:mod:`honestbench.engine.probe`, recorded in ``cells/<model>/model.json``) as flags
on the model's rows: on its ``clean`` and ``worst-case`` rows, each with the probe's own sentence. Torch-free.
"""

from __future__ import annotations

import re
from pathlib import Path

from honestbench.diagnostics.flags import FLAGS, make_flag
from honestbench.results.run import read_model_record

#: the rows of a model that carry its preflight flags
ROWS = ("clean", "worst-case")


def preflight_record(out: str | Path, model: str) -> dict:
    """The preflight record of ``model`` in results directory ``out`` (empty when none was recorded)."""
    record = read_model_record(out, model)
    return (record.preflight or {}) if record is not None else {}


def preflight_flags(model: str, record: dict) -> dict[tuple[str, str], list[str]]:
    """``{(model, row): [flag, ...]}`` for the defined flags among the record's findings."""
    flags = [make_flag(f, re.sub(r"^model '[^']*':? ", "", note)) for f, note in
             zip(record.get("flags", []), record.get("notes", []), strict=False) if f in FLAGS]
    return {(model, row): flags for row in ROWS} if flags else {}
