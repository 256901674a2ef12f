"""No import cycles in the derive package, imports inside functions and under TYPE_CHECKING included;
no import of the package inside a function without a comment saying why.

The graph is built here by its own walk over the source (ast), independent of bench/code_metrics.py
and of import-linter (whose layers contract, .importlinter, `make lint-imports` checks); the two
small packages written to tmp_path show the walk finds a cycle that only an import inside a
function closes, and a relative one. An import of the package inside a function (kept there to keep
torch, SymPy or a slow import out of `derive --help`) carries its reason as a comment on its own
lines or in the comment lines directly above it, or above the run of imports it stands in; a bare
one, or one with only a pragma (`# noqa`), is reported with its file and line.
"""

from __future__ import annotations

import ast
import functools
import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "derive"


@functools.cache
def parsed(path: Path) -> ast.Module:
    """The syntax tree of the file at `path`, parsed once for all the walks below (read only)."""
    return ast.parse(path.read_text(), str(path))


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
        for node in ast.walk(parsed(path)):
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


PRAGMA = re.compile(r"^(noqa\b.*|type:\s*ignore\b.*|pragma:.*|fmt:.*|isort:.*)$")


def comments_by_line(text: str) -> dict[int, str]:
    """{line number: the comment's text without its #} for every comment (tokenize, so a # inside a
    string is not one)."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return {t.start[0]: t.string[1:].strip() for t in tokens if t.type == tokenize.COMMENT}


def gives_reason(comment: str) -> bool:
    """A comment says why unless it is empty or only a pragma such as `noqa: PLC0415`."""
    return bool(comment) and not PRAGMA.match(comment)


def imports_in_functions(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement nested in a function body, in line order, each once."""
    found = {
        node.lineno: node
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(fn)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    return [found[line] for line in sorted(found)]


def imports_package(node: ast.Import | ast.ImportFrom, package: str) -> bool:
    """Whether the statement imports from `package` (a relative import always does)."""
    if isinstance(node, ast.ImportFrom):
        names = [node.module or ""] if not node.level else [package]
    else:
        names = [alias.name for alias in node.names]
    return any(name == package or name.startswith(package + ".") for name in names)


def comment_block_above(line: int, comments: dict[int, str], lines: list[str]) -> str:
    """The comment lines standing directly above `line` (own-line comments only), joined."""
    block = []
    while line > 1 and lines[line - 2].lstrip().startswith("#"):
        line -= 1
        block.insert(0, comments.get(line, ""))
    return " ".join(block)


def unexplained_imports(root: Path) -> list[str]:
    """'file:line' of each import of the package `root` inside a function with no reason given."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        nested = imports_in_functions(parsed(path))
        if not any(imports_package(node, root.name) for node in nested):
            continue  # nothing to explain: the file's comments need not be read
        text = path.read_text()
        lines, comments = text.splitlines(), comments_by_line(text)
        by_end = {(node.end_lineno, node.col_offset): node for node in nested}
        for node in nested:
            if not imports_package(node, root.name):
                continue
            first = node  # the first import of the run of consecutive imports that holds this one
            while (first.lineno - 1, first.col_offset) in by_end:
                first = by_end[(first.lineno - 1, first.col_offset)]
            own = (comments.get(n, "") for n in range(node.lineno, (node.end_lineno or 0) + 1))
            above = {
                comment_block_above(node.lineno, comments, lines),
                comment_block_above(first.lineno, comments, lines),
            }
            if not any(gives_reason(comment) for comment in [*own, *above]):
                bad.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return bad


def test_every_package_import_inside_a_function_says_why() -> None:
    assert unexplained_imports(PACKAGE) == []
    nested = [
        node
        for path in PACKAGE.rglob("*.py")
        for node in imports_in_functions(parsed(path))
        if imports_package(node, "derive")
    ]
    assert len(nested) > 30  # the walk saw the package's deferred imports


def test_an_unexplained_import_inside_a_function_is_reported(tmp_path: Path) -> None:
    body = {
        "bare": "    from pkg.a import x\n",
        "on_its_line": "    from pkg.a import x  # deferred: imports torch\n",
        "above": "    # deferred: imports torch\n    from pkg.a import x\n",
        "above_the_run": "    # deferred: both import torch\n    import pkg.a\n    from pkg.a import x\n",
        "multi_line": "    from pkg.a import (  # deferred: imports torch\n        x,\n    )\n",
        "pragma_only": "    from pkg.a import x  # noqa: PLC0415\n",
        "relative": "    from . import a\n",
        "string_not_comment": '    from pkg.a import x; y = "# deferred"\n',
        "run_after_a_blank": "    # deferred: imports torch\n    import pkg.a\n\n    from pkg.a import x\n",
        "standard_library": "    import json\n",
    }
    files = {"__init__.py": "", "a.py": "x = 1\n"}
    files |= {f"{name}.py": f"def f():\n{text}    return 0\n" for name, text in body.items()}
    root = _write(tmp_path / "pkg", files)
    bad = {"bare": 2, "pragma_only": 2, "relative": 2, "string_not_comment": 2}
    bad |= {"run_after_a_blank": 5}
    assert unexplained_imports(root) == [
        f"pkg/{name}.py:{line}" for name, line in sorted(bad.items())
    ]
