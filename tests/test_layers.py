"""
Imports flow one way (DESIGN.md, "Data flow"): each module imports only from its own package
or from a layer below it, and no module imports itself back through others. Read from every
module's source with ast, so an import inside a function (the lazy ones) counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "coredump"

# Top to bottom: `cli` → `capture` → `store`/`report` → `analysis` → `triage` → `unwind` →
# `target` → `dwarf` → `symbols` → `demangle` → `elf` → `arch`/`jsondoc` → `model`/`errors`, beside
# which the helpers `record`, `patterns`, `digest` and `memo` import nothing of ours.
# Layers of one rank (store and report) may not import each other either.
RANKS = {
    "cli": 13, "capture": 12, "store": 11, "report": 11, "analysis": 10, "triage": 9, "unwind": 8,
    "target": 7, "dwarf": 6, "symbols": 5, "demangle": 4, "elf": 3, "arch": 2, "jsondoc": 2,
    "model": 1, "errors": 0, "record": 0, "patterns": 0, "digest": 0, "memo": 0,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == "coredump")
    return found


def _graph() -> Dict[str, Set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # `from coredump.x import y` names module x.y when y is a module, else x
        graph[name] = {n if n in modules else n.rsplit(".", 1)[0] for n in _imports(path)} - {name}
        graph[name] &= set(modules)
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_rank():
    layers = {_layer(m) for m in _graph()} - {"", "__main__"}
    assert layers <= set(RANKS), f"add the new layer to RANKS: {sorted(layers - set(RANKS))}"


def test_no_module_imports_a_layer_above_or_beside_it():
    upward = []
    for module, deps in _graph().items():
        here = _layer(module)
        if here in ("", "__main__"):
            continue  # the package root (__version__) and `python -m coredump`
        for dep in deps:
            there = _layer(dep)
            if there in ("", here):
                continue
            if RANKS[there] >= RANKS[here]:
                upward.append(f"{module} -> {dep}")
    assert upward == []


def test_no_import_circle():
    graph = _graph()
    state: Dict[str, int] = {}  # 1: on the path, 2: done
    circles = []

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                circles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


@pytest.mark.parametrize("layer", sorted(RANKS))
def test_layer_exists(layer):
    """RANKS names no layer that is gone (a rename would silently exempt it)."""
    assert (PACKAGE / layer).is_dir() or (PACKAGE / f"{layer}.py").is_file()
