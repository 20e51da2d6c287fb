"""What a results directory records about its run and its models, typed: :class:`RunInfo` (``records.json``'s
``run``), :class:`SuiteRecord` (the columns a model was measured with) and :class:`ModelRecord`
(``cells/<model>/model.json``). Each serialises to the JSON written since schema 1, key for key, and reads
it back (unknown keys ignored). Torch-free. Budgets in the entries are in pixel units of [0, 1] images.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from honestbench.core.io import write_json_atomic
from honestbench.results.layout import model_info_path
from honestbench.zoo.source import ModelFacts

#: the run settings a results directory is tied to: a run with others must choose another folder
RUN_KEYS = ("suite", "dataset", "n", "seed", "mode", "batch_size")


@dataclass(frozen=True)
class SuiteRecord:
    """A suite as a run measured it: ``entries`` ``[label, attack name, params]``, per-sample ``aggregates``
    (label -> member labels), ``full_matrix`` and its ``description``."""

    entries: list = field(default_factory=list)
    aggregates: dict = field(default_factory=dict)
    full_matrix: bool = False
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SuiteRecord:
        return cls(list(data.get("entries") or []), dict(data.get("aggregates") or {}),
                   bool(data.get("full_matrix", False)), str(data.get("description", "")))


#: RunInfo fields left out of the JSON while empty (older runs never wrote them)
_OPTIONAL = ("suite_params", "model_suites", "diagnostics")


@dataclass(frozen=True)
class RunInfo:
    """The run-level facts every record row, ``bench check`` and the report read: the suite (its name,
    description, ``entries``, ``aggregates``, ``full_matrix`` flag, parameters, each attack's ``spec`` text,
    the cascade ``order``), the data (``dataset``, ``n`` images, ``data_source``, ``classes``, ``data_sha256``),
    the settings (``seed``, ``mode``, ``batch_size``, ``R`` stochastic passes, ``device``), provenance
    (``command``, ``commands``, git commit, library versions, python, machine, UTC ``date``), the
    ``models`` in order, each model's own suite where it differs (``model_suites``) and what the diagnostics
    kept (``diagnostics``)."""

    suite: str | None = None
    suite_description: str = ""
    dataset: str | None = None
    n: int | None = None
    seed: int | None = None
    mode: str | None = None
    batch_size: int | None = None
    data_source: str = "npz"
    suite_full_matrix: bool = False
    attacks: dict = field(default_factory=dict)
    entries: list = field(default_factory=list)
    aggregates: dict = field(default_factory=dict)
    command: str = ""
    classes: list = field(default_factory=list)
    order: list = field(default_factory=list)
    git_commit: str | None = None
    data_sha256: str | None = None
    torch_version: str | None = None
    torchattacks_version: str | None = None
    art_version: str | None = None
    device: str | None = None
    python: str | None = None
    machine: str | None = None
    date: str | None = None
    R: int | None = None
    suite_params: dict = field(default_factory=dict)
    commands: list = field(default_factory=list)
    models: list = field(default_factory=list)
    model_suites: dict[str, SuiteRecord] = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)

    @property
    def suite_record(self) -> SuiteRecord:
        """The run's suite as measured (a model's own may differ: :meth:`suite_of`)."""
        return SuiteRecord(self.entries, self.aggregates, self.suite_full_matrix, self.suite_description)

    def suite_of(self, model: str) -> SuiteRecord | None:
        """The suite ``model`` was measured with where it differs from the run's, else None."""
        return self.model_suites.get(model)

    def replace(self, **changes: Any) -> RunInfo:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """``records.json``'s ``run``, key for key as written since schema 1."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and not value:
                continue
            out[f.name] = ({k: v.to_json() for k, v in value.items()} if f.name == "model_suites" else value)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunInfo:
        """A run as ``records.json`` holds it (keys it does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["model_suites"] = {m: SuiteRecord.from_json(s) for m, s in (data.get("model_suites") or {}).items()}
        return cls(**kw)


@dataclass(frozen=True)
class ModelRecord:
    """``cells/<model>/model.json``: the model's ``name``, its :class:`~honestbench.zoo.source.ModelFacts`, the
    suite it was measured with and what the preflight found."""

    name: str
    facts: ModelFacts = field(default_factory=ModelFacts)
    suite: SuiteRecord | None = None
    preflight: dict | None = None  # what the checks before the attacks found (honestbench.engine.probe)

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, **self.facts.to_json()}
        if self.preflight is not None:
            out["preflight"] = self.preflight
        if self.suite is not None:
            out["suite"] = self.suite.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRecord:
        suite = data.get("suite")
        return cls(str(data.get("name")), ModelFacts.from_json(data),
                   SuiteRecord.from_json(suite) if suite else None, data.get("preflight"))


def write_model_record(out: str | Path, record: ModelRecord) -> None:
    """Write ``cells/<model>/model.json`` (atomically)."""
    write_json_atomic(model_info_path(out, record.name), record.to_json())


def read_model_record(out: str | Path, model: str) -> ModelRecord | None:
    """The model's ``model.json`` in results directory ``out``, or None when it has none."""
    path = model_info_path(out, model)
    if not path.is_file():
        return None
    return ModelRecord.from_json(json.loads(path.read_text()))


__all__ = ["RUN_KEYS", "ModelRecord", "RunInfo", "SuiteRecord", "read_model_record", "write_model_record"]
