"""The committed results docs are what `derive report` / `derive simulate` make from the committed runs.

docs/results/cifar.md must be rebuilt byte for byte by the command it prints (from the committed
metrics.csv and summary.json of docs/results/runs/), and docs/results/simulation/simulation.md by
redrawing it from the committed curves.csv and simulation.json: so no number in them was typed in.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from derive.cli import main

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def _first_command(markdown: str) -> list[str]:
    """The argv of the first fenced block of a results doc (where it records its own command)."""
    block = markdown.split("```", 2)[1]
    return shlex.split(block.strip())


def test_cifar_report_is_rebuilt_exactly_from_the_committed_runs(tmp_path, monkeypatch, capsys):
    committed = RESULTS / "cifar.md"
    if not committed.exists():
        pytest.skip("no committed docs/results/cifar.md")
    argv = _first_command(committed.read_text(encoding="utf-8"))
    assert argv[:2] == ["derive", "report"]
    out = tmp_path / "cifar.md"
    argv[argv.index("--out") + 1] = str(out)
    monkeypatch.chdir(ROOT)  # the doc names run folders relative to the repository root
    assert main(["-q", *argv[1:]]) == 0
    capsys.readouterr()
    # The doc records the command with its own --out; compare everything else.
    ours = out.read_text(encoding="utf-8").replace(str(out), "docs/results/cifar.md")
    assert ours == committed.read_text(encoding="utf-8")


def test_simulation_table_is_redrawn_exactly_from_its_data(tmp_path):
    from derive.experiments.simfiles import CURVES, JSON, MARKDOWN, render

    folder = RESULTS / "simulation"
    if not (folder / MARKDOWN).exists():
        pytest.skip("no committed simulation table")
    for name in (CURVES, JSON):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    render(tmp_path)
    assert (tmp_path / MARKDOWN).read_text(encoding="utf-8") == (folder / MARKDOWN).read_text(
        encoding="utf-8"
    )
