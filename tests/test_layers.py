"""The product's layers point one way: core ← models ← routing ← ingest, admin_api ← ticketpost.

Walks every import (``import x``, ``from x import y``, relative ones, and those inside functions
or ``if TYPE_CHECKING:`` blocks alike) of the product packages with ``ast`` and fails on an import
of a higher layer, a sideways import between ``ingest`` and ``admin_api``, and a cycle between
packages. A lazy import is no way around it: it is an import all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Each product package and its layer; a package may import its own layer's package and lower ones.
LAYERS = {"core": 0, "models": 1, "routing": 2, "ingest": 3, "admin_api": 3, "ticketpost": 4}


def imported_packages(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, top-level product package) of every import in the module at ``path`` of ``package``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [package] if node.level else [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in LAYERS:
                found.append((node.lineno, top))
    return found


def import_graph() -> dict[str, dict[str, list[str]]]:
    """package → imported package → where (``file:line``), for every product module."""
    graph: dict[str, dict[str, list[str]]] = {name: {} for name in LAYERS}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, target in imported_packages(path, package):
                if target != package:
                    graph[package].setdefault(target, []).append(f"{path.relative_to(ROOT)}:{line}")
    return graph


def test_the_walk_sees_imports_inside_functions_and_type_checking_blocks(tmp_path):
    module = tmp_path / "x.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import routing.context\n"
                      "def f():\n    from ticketpost import cli\n    from . import y\n")
    assert sorted(imported_packages(module, "models")) == [(3, "routing"), (5, "ticketpost"), (6, "models")]


@pytest.mark.parametrize("package", list(LAYERS))
def test_no_package_imports_a_higher_or_sideways_layer(package):
    wrong = {
        target: where for target, where in import_graph()[package].items()
        if LAYERS[target] >= LAYERS[package]
    }
    assert not wrong, f"{package} (layer {LAYERS[package]}) imports " + "; ".join(
        f"{target} (layer {LAYERS[target]}) at {', '.join(where[:5])}" for target, where in wrong.items())


def test_the_packages_import_each_other_without_a_cycle():
    graph = {package: set(targets) for package, targets in import_graph().items()}
    done: set[str] = set()

    def visit(package: str, path: list[str]) -> None:
        if package in path:
            cycle = path[path.index(package):] + [package]
            pytest.fail("import cycle between packages: " + " -> ".join(cycle))
        if package in done:
            return
        for target in sorted(graph[package]):
            visit(target, path + [package])
        done.add(package)

    for package in graph:
        visit(package, [])


def test_the_benchmarks_use_no_test_module():
    """bench/ stands on its own: it neither imports tests nor runs one as a process."""
    found = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            strings = [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []
            if any(n.split(".")[0] == "tests" for n in names) or any(s.startswith("tests.") for s in strings):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, "bench uses test modules at " + ", ".join(found)
