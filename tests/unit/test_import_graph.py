"""No import cycles in the package, between modules or between subpackages.

Walks the module-level imports of every module under src/shopsearch (imports inside
functions are deliberate lazy loads of optional or heavy dependencies and are not edges).
``from shopsearch.pkg import submodule`` is an edge to the submodule only. Subpackage level:
``shopsearch.index`` -> ``shopsearch.models`` when any module of the first imports any of
the second; top-level modules (``errors``, ``native``, ...) are their own nodes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import shopsearch

ROOT = Path(shopsearch.__file__).parent


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(node.module)  # a name defined by the module itself
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = _modules()
    by_module = {name: _imports(path, modules) - {name} for name, path in modules.items()}

    def package(name: str) -> str:
        return ".".join(name.split(".")[:2])

    by_package: dict[str, set[str]] = {}
    for name, targets in by_module.items():
        edges = by_package.setdefault(package(name), set())
        edges.update(package(t) for t in targets if package(t) != package(name))
    return by_module, by_package


def test_no_cycle_between_modules():
    by_module, _ = _graphs()
    assert len(by_module) > 50  # the walk found the package
    assert _cycles(by_module) == []


def test_no_cycle_between_subpackages():
    _, by_package = _graphs()
    assert "shopsearch.index" in by_package and "shopsearch.models" in by_package
    assert _cycles(by_package) == []


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
