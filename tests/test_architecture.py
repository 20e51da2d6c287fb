"""The layer rule of honestbench/core/layers.py: no upward import, no import circle, no module over 300 lines."""

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
    g = {"honestbench.core.io": {"honestbench.engine.cascade"},
         "honestbench.engine.cascade": {"honestbench.engine.cells"},
         "honestbench.engine.cells": {"honestbench.engine.cascade"}}
    assert ig.upward(g) == ["upward import: honestbench.core.io (core) -> honestbench.engine.cascade"]
    assert ig.circles(g) == [["honestbench.engine.cascade", "honestbench.engine.cells"]]


def test_every_package_is_a_layer():
    from honestbench.core.layers import LAYERS

    pkg = ROOT / "honestbench"
    layers = [p.name for p in pkg.iterdir() if (p / "__init__.py").exists()]
    layers += [p.stem for p in pkg.glob("*.py") if p.stem not in ("__init__", "__main__")]  # api.py
    assert sorted(layers) == sorted(LAYERS)


def test_modules_are_small():
    big = {str(p.relative_to(ROOT)): n for p in (ROOT / "honestbench").rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 300}
    assert big == {}
