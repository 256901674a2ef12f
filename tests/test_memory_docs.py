"""docs/results/memory_study.md is what bench/memory_study.py makes from the committed run files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_memory_study_report_is_rebuilt_exactly_from_the_committed_runs():
    report = ROOT / "docs" / "results" / "memory_study.md"
    if not report.exists():
        pytest.skip("no committed docs/results/memory_study.md")
    spec = importlib.util.spec_from_file_location(
        "memory_study", ROOT / "bench" / "memory_study.py"
    )
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    assert study.render(study.FOLDER) == report.read_text(encoding="utf-8")
