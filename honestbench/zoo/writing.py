"""Writing a model card's ``[result]`` table (``tomllib`` only reads TOML): used by ``bench train NAME
--update-card`` and the measurement scripts. Torch-free."""

from __future__ import annotations

import json
import math
from pathlib import Path

from honestbench.core.io import atomic_path


def toml_value(v: object) -> str:
    """A TOML literal for a scalar or a list of scalars."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("TOML writer: nan/inf not supported")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"TOML writer: unsupported value {type(v).__name__}")


def write_result(card_path: Path, result: dict) -> None:
    """Replace the card's trailing ``[result]`` table (kept last in every card) with ``result``."""
    text = Path(card_path).read_text()
    lines = text.splitlines()
    cut = next((i for i, ln in enumerate(lines) if ln.strip() == "[result]"), len(lines))
    head = "\n".join(lines[:cut]).rstrip() + "\n\n"
    body = "[result]\n# written by `bench train NAME --update-card` or scripts/measure_clean.py\n"
    body += "".join(f"{k} = {toml_value(v)}\n" for k, v in result.items())
    with atomic_path(card_path, "w") as f:
        f.write(head + body)


#: where measurements about a card's training (not its recipe or result) are kept: ``results/training/NAME.md``
TRAINING_LOGS = Path("results") / "training"


def write_training_log(name: str, section: str, fields: dict, command: str, root: Path | None = None) -> Path:
    """Replace (or add) the section ``## section`` of ``ROOT/results/training/NAME.md`` (``root``: the working
    folder) with ``fields`` as a table, under the ``command`` that measured them. Cards keep the recipe and the
    result; measurement logs (CPU time extrapolations, load averages) live here, beside their command."""
    path = (root or Path.cwd()) / TRAINING_LOGS / f"{name}.md"
    old = path.read_text() if path.is_file() else f"# Training measurements: {name}\n"
    head, sections = old.split("\n## ", 1)[0].rstrip() + "\n", old.split("\n## ")[1:]
    kept = ["## " + s.rstrip() + "\n" for s in sections if s.split("\n", 1)[0].strip() != section]
    body = [f"## {section}", "", "```", command, "```", "", "| field | value |", "|---|---|"]
    body += [f"| {k} | {v} |" for k, v in fields.items()]
    with atomic_path(path, "w") as f:
        f.write("\n".join([head, *kept, "\n".join(body) + "\n"]))
    return path
