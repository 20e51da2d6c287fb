"""The layer rule of bench/core/layers.py: no upward import, no import circle, no module over 350 lines."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_upward_import_and_no_circle():
    ig = _import_graph()
    g = ig.graph()
    assert len(g) > 50  # the walk found the package
    assert ig.upward(g) == []
    assert ig.circles(ig.parent_package_edges(g)) == []


def test_checker_catches_an_upward_import_and_a_circle():
    ig = _import_graph()
    g = {"bench.core.io": {"bench.eval.engine"}, "bench.eval.engine": {"bench.eval.cells"},
         "bench.eval.cells": {"bench.eval.engine"}}
    assert ig.upward(g) == ["upward import: bench.core.io (core) -> bench.eval.engine"]
    assert ig.circles(g) == [["bench.eval.cells", "bench.eval.engine"]]


def test_every_package_is_a_layer():
    from bench.core.layers import LAYERS

    packages = sorted(p.name for p in (ROOT / "bench").iterdir() if (p / "__init__.py").exists())
    assert packages == sorted(LAYERS)


def test_modules_are_small():
    big = {str(p.relative_to(ROOT)): n for p in (ROOT / "bench").rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 350}
    assert big == {}
