"""Size and structure of the `derive` package: lines, long functions, import cycles, deferred imports.

Usage: python bench/code_metrics.py [PACKAGE_DIR]   (default: derive/ beside this script)

Prints the numbers a maintainer watches: source lines, functions, functions over 80 lines (the longest
listed), imports of the package placed inside functions (with or without a comment giving the reason
on the line or the line above), and the import cycles between modules (strongly connected components of
the import graph, counting imports inside functions too). Only the standard library is used.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

LONG = 80


def module_name(root: Path, path: Path) -> str:
    """derive/train/loop.py -> derive.train.loop (a package's __init__ is the package)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(
    tree: ast.AST, name: str, is_package: bool, known: set[str]
) -> Iterator[tuple[str, ast.stmt]]:
    """(imported module of the package, import node) for every import in the tree."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    yield full, node
                elif base in known:
                    yield base, node


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def inside_function_imports(tree: ast.AST) -> set[int]:
    """Line numbers of import statements nested in a function body."""
    lines: set[int] = set()
    for fn in functions(tree):
        for node in ast.walk(fn):
            if isinstance(node, ast.Import | ast.ImportFrom):
                lines.add(node.lineno)
    return lines


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components with more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def has_reason(source: list[str], lineno: int) -> bool:
    """Whether the import at `lineno` has a comment on its line, or above it or above the run of
    imports it belongs to."""
    if "#" in source[lineno - 1]:
        return True
    above = lineno - 2
    while above >= 0 and source[above].strip().startswith(("from ", "import ")):
        above -= 1
    return above >= 0 and source[above].strip().startswith("#")


def main(root: Path) -> None:
    files = sorted(root.rglob("*.py"))
    trees = {f: ast.parse(f.read_text(), str(f)) for f in files}
    names = {f: module_name(root, f) for f in files}
    known = set(names.values())
    lines = sum(len(f.read_text().splitlines()) for f in files)
    all_functions = [(names[f], fn) for f, t in trees.items() for fn in functions(t)]
    long = sorted(
        ((fn.end_lineno - fn.lineno + 1, mod, fn.name) for mod, fn in all_functions),
        reverse=True,
    )
    long = [x for x in long if x[0] > LONG]
    graph: dict[str, set[str]] = {n: set() for n in known}
    deferred = explained = 0
    for f, tree in trees.items():
        source = f.read_text().splitlines()
        nested = inside_function_imports(tree)
        for target, node in imported_modules(tree, names[f], f.name == "__init__.py", known):
            if target == names[f] or names[f].startswith(target + "."):
                continue  # a module importing its own package's __init__ is not a cycle worth counting
            graph[names[f]].add(target)
            if node.lineno in nested:
                deferred += 1
                explained += has_reason(source, node.lineno)
    cycles = strongly_connected(graph)
    print(f"package: {root}")
    print(f"modules: {len(files)}   lines: {lines}   functions: {len(all_functions)}")
    print(f"functions over {LONG} lines: {len(long)}")
    for length, mod, fn in long[:25]:
        print(f"  {length:4d}  {mod}.{fn}")
    print(
        f"package imports inside functions: {deferred} ({explained} with a comment giving a reason)"
    )
    print(f"import cycles (modules in a strongly connected component): {len(cycles)}")
    for component in cycles:
        print("  " + " <-> ".join(component))


if __name__ == "__main__":
    main(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parent.parent / "derive"
    )
