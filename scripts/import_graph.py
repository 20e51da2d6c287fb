"""Print bench's package import graph and fail on an upward import or an import circle.

Usage: ``python scripts/import_graph.py [--edges]``. Every ``import`` statement in ``bench/**/*.py`` counts,
function-level ones included. Exit 0 when there is no upward import (a package importing from a package above
it in :data:`honestbench.core.layers.LAYERS`) and no circle among modules; 1 otherwise, listing each offence.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from honestbench.core.layers import LAYERS  # noqa: E402


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The bench modules that ``path`` imports (``from honestbench.x import y`` counts ``honestbench.x.y`` when that is
    a
    module, else ``honestbench.x``)."""
    tree = ast.parse(path.read_text(), str(path))
    me = module_name(path)
    pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in modules:
                n = n.rpartition(".")[0]
            if n and n.startswith("honestbench") and n != me:
                out.add(n)
    return out


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or module == "honestbench.__main__":
        return len(LAYERS)  # honestbench/__init__.py: the public API, above every layer
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def graph() -> dict[str, set[str]]:
    files = sorted((ROOT / "honestbench").rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, modules) for f in files}


def upward(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(g.items()):
        lm = layer_of(mod)
        if lm is None:
            bad.append(f"{mod}: not in a layer package (honestbench.core.layers.LAYERS)")
            continue
        for d in sorted(deps):
            ld = layer_of(d)
            if d == "honestbench":
                ld = len(LAYERS)
            if ld is not None and ld > lm:
                bad.append(f"upward import: {mod} ({LAYERS[lm] if lm < len(LAYERS) else 'api'}) -> {d}")
    return bad


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def parent_package_edges(g: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without the edges from a module to the ``__init__`` of its own package chain: importing
    ``honestbench.attacks.pgd`` runs ``honestbench/attacks/__init__.py`` first, which is how discovery works, not a
    circle
    in the code's dependencies."""
    out = {}
    for mod, deps in g.items():
        out[mod] = {d for d in deps if not mod.startswith(d + ".")}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", action="store_true", help="print every edge")
    args = ap.parse_args(argv)
    g = graph()
    if args.edges:
        for mod, deps in sorted(g.items()):
            for d in sorted(deps):
                print(f"{mod} -> {d}")
    bad = upward(g)
    loops = circles(parent_package_edges(g))
    for line in bad:
        print(line)
    for comp in loops:
        print("circle: " + " <-> ".join(comp))
    print(f"{len(g)} modules, {sum(map(len, g.values()))} imports, {len(bad)} upward, {len(loops)} circles")
    return 1 if bad or loops else 0


if __name__ == "__main__":
    sys.exit(main())
