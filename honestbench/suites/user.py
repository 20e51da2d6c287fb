"""Suites chosen by the user: a built-in suite at another threat model and budget (``--threat-model Linf|L2``,
``--eps 8/255``), or a suite read from a TOML file (``--suite my_suite.toml``) with the built-in schema::

    name = "my-suite"
    description = "PGD-20 at 4/255"
    default_n = 128          # optional: images when --n is not given
    full_matrix = true       # optional: every column measured independently
    [[entries]]
    label = "PGD"
    attack = "pgd-linf"      # a registered attack (`bench list attacks`)
    params = {eps = "4/255", alpha = "1/255", steps = 20, random_start = true}
    [aggregates]             # optional: per-image worst case over some columns
    "PGD+FGSM" = ["PGD", "FGSM"]

Budgets are in pixel units of [0, 1]; numbers may be written as fractions (``"8/255"``). Scaling keeps the
entries of the chosen norm, sets their ``eps`` (and a CW ``threshold``) to the new budget, and scales each
step size ``alpha`` by the same factor, so every step-size rule (L-inf: eps / 4; L2: 2.5 eps / steps) holds.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from honestbench.core.errors import BenchError
from honestbench.core.numbers import parse_number
from honestbench.suites.base import Entry, ModelPolicy, Suite
from honestbench.suites.builtin import DEFAULT_SUITE, check_suite, get_suite, suite_names

THREAT_MODELS = {"linf": "linf", "l-inf": "linf", "l2": "l2"}


def _norm_of(entry: Entry) -> str:
    return entry.build().norm


def scale_suite(suite: Suite, threat_model: str | None = None, eps: float | None = None) -> Suite:
    """``suite`` restricted to ``threat_model``'s attacks (``Linf`` or ``L2``) with budget ``eps`` (module
    docstring); ``suite`` itself when both are None. Named for what changed (``standard[Linf eps=0.0157]``);
    its stochastic models get the surrogate twin of its own PGD column, at its budget (a suite's adaptive
    columns are built at the standard one). A suite whose policy is not ``scalable`` is refused."""
    if threat_model is None and eps is None:
        return suite
    if not suite.policy.scalable:
        raise BenchError(f"suite {suite.name!r} builds its budgets per model: --threat-model / --eps do not apply; "
                         "write a suite file (--suite my_suite.toml)")
    norms = {e.label: _norm_of(e) for e in suite.entries}
    if threat_model is None:
        bounded = {n for n in norms.values() if n in ("linf", "l2")}
        if len(bounded) != 1:
            raise BenchError(f"suite {suite.name!r} has L-inf and L2 attacks: say which budget --eps sets with "
                             "--threat-model Linf or --threat-model L2")
        norm = bounded.pop()
    else:
        norm = THREAT_MODELS.get(threat_model.strip().lower())
        if norm is None:
            raise BenchError(f"unknown threat model {threat_model!r}: choose Linf or L2")
    entries = [_scaled(e, eps) for e in suite.entries if norms[e.label] == norm]
    if not entries:
        raise BenchError(f"suite {suite.name!r} has no {threat_model} attack: choose one that has (standard, "
                         "platform) or write a suite file (--suite my_suite.toml)")
    budgets = {e.params.get("eps", e.params.get("threshold")) for e in suite.entries if norms[e.label] == norm}
    if eps is not None and len(budgets - {None}) > 1:
        raise BenchError(f"suite {suite.name!r} sweeps several budgets: --eps would make its columns equal; "
                         "choose another suite")
    labels = {e.label for e in entries}
    aggregates = {k: v for k, v in suite.aggregates.items() if set(v) <= labels}
    tag = ("Linf" if norm == "linf" else "L2") + (f" eps={eps:.6g}" if eps is not None else "")
    return dataclasses.replace(
        suite, name=f"{suite.name}[{tag}]", entries=tuple(entries), aggregates=aggregates,
        description=f"{suite.description}; restricted to {tag} (--threat-model / --eps)",
        policy=dataclasses.replace(suite.policy, stochastic="surrogate-twin"))


def _scaled(entry: Entry, eps: float | None) -> Entry:
    """``entry`` with budget ``eps`` and its step size scaled by the same factor (None: unchanged)."""
    if eps is None:
        return entry
    p = dict(entry.params)
    if "eps" in p:
        factor = eps / p["eps"] if p["eps"] else 1.0
        p["eps"] = eps
        if "alpha" in p:
            p["alpha"] = p["alpha"] * factor
    elif p.get("threshold") is not None:
        p["threshold"] = eps
    else:
        raise BenchError(f"attack {entry.label!r} ({entry.attack}) has no budget to set: --eps does not apply to it")
    return dataclasses.replace(entry, params=p)


def _params(raw: dict, where: str) -> dict:
    """Entry parameters with fractions (``"8/255"``) read as numbers."""
    out = {}
    for k, v in raw.items():
        if isinstance(v, str) and "/" in v:
            v = parse_number(v, f"{where} {k}")
        out[k] = v
    return out


def load_suite_file(path: str | Path) -> Suite:
    """The suite a TOML file defines (module docstring), validated (each attack built once)."""
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BenchError(f"suite file {path}: cannot be read ({e})") from None
    unknown = sorted(set(raw) - {"name", "description", "default_n", "full_matrix", "entries", "aggregates"})
    if unknown:
        raise BenchError(f"suite file {path}: unknown key {unknown[0]!r} (keys: name, description, default_n, "
                         "full_matrix, entries, aggregates)")
    rows = raw.get("entries")
    if not isinstance(rows, list) or not rows:
        raise BenchError(f"suite file {path}: needs at least one [[entries]] table with label, attack, params")
    entries = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not {"label", "attack"} <= set(row) or set(row) - {"label", "attack", "params"}:
            raise BenchError(f"suite file {path}: entry {i + 1} must have label, attack and optional params")
        params = _params(dict(row.get("params", {})), f"{path} {row['label']}")
        entry = Entry(str(row["label"]), str(row["attack"]), params)
        entry.build()  # unknown attack or bad parameter: one-line error now, not mid-run
        entries.append(entry)
    name = str(raw.get("name", path.stem))
    if name in suite_names():
        raise BenchError(f"suite file {path}: name {name!r} is a built-in suite's: choose another name")
    suite = Suite(name, str(raw.get("description", f"suite file {path.name}")),
                  tuple(entries), dict(raw.get("aggregates", {})), raw.get("default_n"),
                  bool(raw.get("full_matrix", False)), policy=ModelPolicy())
    try:
        return check_suite(suite)
    except ValueError as e:
        raise BenchError(f"suite file {path}: {e}") from None


def resolve_suite(name: str | None, threat_model: str | None = None, eps: str | float | None = None) -> Suite:
    """``--suite`` (a name, ``NAME:params`` or a ``.toml`` file) with ``--threat-model`` / ``--eps`` applied."""
    name = name or DEFAULT_SUITE
    suite = load_suite_file(name) if name.endswith(".toml") else get_suite(name)
    return scale_suite(suite, threat_model, parse_number(eps) if eps is not None else None)
