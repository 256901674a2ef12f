"""No import cycles in the derive package, imports inside functions and under TYPE_CHECKING included.

The graph is built here by its own walk over the source (ast), independent of bench/code_metrics.py
and of import-linter (whose layers contract, .importlinter, `make lint-imports` checks); the two
small packages written to tmp_path show the walk finds a cycle that only an import inside a
function closes, and a relative one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "derive"


def module_names(root: Path) -> dict[Path, str]:
    """{file: dotted module name} for every .py file under the package directory `root`."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[path] = ".".join(parts)
    return names


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]
) -> list[str]:
    """The package's modules an import statement loads: `from p import m` loads the module p.m
    where there is one, else p (for a name defined in p)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return [
        f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
    ]


def import_graph(root: Path) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, wherever in the file the import stands.

    An import of the module's own enclosing package is left out, as bench/code_metrics.py leaves it
    out: Python has run that package's __init__ before the module, so it closes no cycle."""
    names = module_names(root)
    known = set(names.values())
    graph: dict[str, set[str]] = {name: set() for name in known}
    for path, module in names.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, module, path.name == "__init__.py", known):
                    if target in known and not (module + ".").startswith(target + "."):
                        graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(step) == 1:
                return path[path.index(step) :] + [step]
            elif step not in state:
                state[step] = 1
                path.append(step)
                stack.append(iter(sorted(graph[step])))
    return None


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_derive_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 100 and sum(map(len, graph.values())) > 300  # the walk saw the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_an_import_inside_a_function_closes_a_cycle(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "a.py": "from pkg.b import g\n",
            "b.py": "def g():\n    from pkg.a import x  # only here\n    return x\n",
        },
    )
    assert find_cycle(import_graph(root)) == ["pkg.a", "pkg.b", "pkg.a"]


@pytest.mark.parametrize(
    ("text", "cycle"),
    [
        ("from . import a\n", True),  # pkg.sub.c -> pkg.sub.a -> pkg.sub.c
        ("from .. import top\n", False),  # pkg.top imports nothing back
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n", True),
    ],
)
def test_relative_imports_resolve(tmp_path: Path, text: str, cycle: bool) -> None:
    root = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "top.py": "",
            "sub/__init__.py": "",
            "sub/a.py": "import pkg.sub.c\nA = 1\n",
            "sub/c.py": text,
        },
    )
    found = find_cycle(import_graph(root))
    assert (found is not None) == cycle
    if cycle:
        assert set(found or []) == {"pkg.sub.a", "pkg.sub.c"}
