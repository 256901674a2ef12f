"""generated/ and docs/algorithms.md are exactly what the templates and the derivation produce.

Regenerate with `make regenerate` (or `derive regenerate`) after changing templates or algorithms.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
from format_check import is_formatted

from derive.artifacts import algorithm_docs, generated_code
from derive.codegen.generate import generate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh() -> dict[str, str]:
    return {**generated_code(), **algorithm_docs()}


def test_committed_files_are_fresh(fresh: dict[str, str]) -> None:
    stale = [
        path for path, text in fresh.items() if (ROOT / path).read_text(encoding="utf-8") != text
    ]
    assert not stale, f"stale generated files (run `make regenerate`): {stale}"


def test_no_orphan_generated_modules(fresh: dict[str, str]) -> None:
    committed = {
        f"generated/{p.name}" for p in (ROOT / "generated").glob("*.py") if p.name != "__init__.py"
    }
    assert committed == {p for p in fresh if p.startswith("generated/")}


def test_generation_is_deterministic() -> None:
    assert generate("nesterov2", "fc").source == generate("nesterov2", "fc").source
    assert generate("admm", "conv").source == generate("admm", "conv").source


def test_generated_code_is_formatted_and_cites_equations(fresh: dict[str, str]) -> None:
    for path, source in fresh.items():
        if not path.endswith(".py"):
            continue
        assert is_formatted(source), path
        ast.parse(source)
        docstring = ast.get_docstring(ast.parse(source)) or ""
        assert "SCIS (9)" in docstring, path  # every module cites the gradient identity it uses
    assert "SCIS (10)" in fresh["generated/heavyball_fc.py"]
    assert "SCIS (12)" in fresh["generated/nesterov2_conv.py"]
    assert "SCIS (13)" in fresh["generated/admm_fc.py"]


def test_generated_modules_import_standalone(tmp_path: Path, fresh: dict[str, str]) -> None:
    """Each module imports from a copy outside the package (torch is its only dependency)."""
    for path, source in fresh.items():
        if not path.endswith(".py"):
            continue
        copy = tmp_path / Path(path).name
        copy.write_text(source, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(f"standalone_{copy.stem}", copy)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.ALGORITHM in copy.stem
