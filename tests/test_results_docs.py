"""The committed results docs are what `derive report` / `derive simulate` make from the committed runs.

docs/results/cifar.md and docs/results/cifar-head-converged/study.md must be rebuilt byte for byte
by the command each prints (from the committed metrics.csv and summary.json of docs/results/runs/), and docs/results/simulation/simulation.md by
redrawing it from the committed curves.csv and simulation.json: so no number in them was typed in.
"""

from __future__ import annotations

import re
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


@pytest.mark.parametrize("doc", ["cifar.md", "cifar-head-converged/study.md"])
def test_cifar_report_is_rebuilt_exactly_from_the_committed_runs(
    doc, tmp_path, monkeypatch, capsys
):
    committed = RESULTS / doc
    if not committed.exists():
        pytest.skip(f"no committed docs/results/{doc}")
    argv = _first_command(committed.read_text(encoding="utf-8"))
    assert argv[:2] == ["derive", "report"]
    assert argv[argv.index("--out") + 1] == f"docs/results/{doc}"
    out = tmp_path / "report.md"
    argv[argv.index("--out") + 1] = str(out)
    monkeypatch.chdir(ROOT)  # the doc names run folders relative to the repository root
    assert main(["-q", *argv[1:]]) == 0
    capsys.readouterr()
    # The doc records the command with its own --out; compare everything else.
    ours = out.read_text(encoding="utf-8").replace(str(out), f"docs/results/{doc}")
    assert ours == committed.read_text(encoding="utf-8")


def test_simulation_table_is_redrawn_exactly_from_its_data(tmp_path):
    from derive.experiments.simulation.files import CURVES, JSON, MARKDOWN, render

    folder = RESULTS / "simulation"
    if not (folder / MARKDOWN).exists():
        pytest.skip("no committed simulation table")
    for name in (CURVES, JSON):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    render(tmp_path)
    assert (tmp_path / MARKDOWN).read_text(encoding="utf-8") == (folder / MARKDOWN).read_text(
        encoding="utf-8"
    )


def _rebuild_models_doc(skip=lambda name: False) -> tuple[str, str]:
    """(committed, rebuilt) text of docs/results/models.md, both without the rows `skip` names."""
    import importlib.util

    import torch

    committed = (RESULTS / "models.md").read_text(encoding="utf-8")
    spec = importlib.util.spec_from_file_location("model_stats", ROOT / "bench" / "model_stats.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rebuilt = module.build_markdown(skip)
    recorded = committed.split("(torch ", 1)[1].split(")", 1)[0]
    if recorded != torch.__version__:  # the counts do not depend on it; the header names it
        rebuilt = rebuilt.replace(f"(torch {torch.__version__})", f"(torch {recorded})")
    kept = [
        line
        for line in committed.splitlines(keepends=True)
        if not (line.startswith("| `") and skip(line.split("`")[1]))
    ]
    return "".join(kept), rebuilt


def _deep(name: str) -> bool:
    """A zoo network 100 layers deep or more (resnet110, densenet121, preresnet1001, ...)."""
    return int(re.search(r"\d+$", name).group()) >= 100


def test_models_doc_is_rebuilt_exactly_from_the_zoo():
    """docs/results/models.md: parameters and multiply-adds of every zoo model (bench/model_stats.py)
    but those 100 layers deep or more: every family keeps a shallower member here, counted along
    the same path (the slow test below rebuilds every row, the 1001-layer nets' 18 s among them)."""
    committed, rebuilt = _rebuild_models_doc(_deep)
    names = [row.split("`")[1] for row in committed.splitlines() if row.startswith("| `")]
    assert len(names) >= 20 and not any(_deep(name) for name in names)
    assert rebuilt == committed, "stale docs/results/models.md: run bench/model_stats.py"


@pytest.mark.slow
def test_models_doc_is_rebuilt_exactly_with_every_model():
    committed, rebuilt = _rebuild_models_doc()
    assert rebuilt == committed, "stale docs/results/models.md: run bench/model_stats.py"


def _head_errors() -> dict[tuple[str, int], float]:
    """(model, seed) → final test error % of the committed CIFAR-10-head runs, read with csv."""
    import csv
    import json

    errors = {}
    for folder in sorted((RESULTS / "runs" / "cifar10-head-cpu").iterdir()):
        if not (folder / "summary.json").is_file():
            continue
        options = json.loads((folder / "summary.json").read_text())["options"]
        rows = list(csv.DictReader(open(folder / "metrics.csv", newline="")))
        errors[(options["model"], options["seed"])] = 100 * (1 - float(rows[-1]["test_acc"]))
    return errors


def _signed(value: float) -> str:
    return f"{'−' if value < 0 else '+'}{abs(value):.2f}"


def test_paired_difference_row_is_built_from_the_runs():
    """The HBNet − ResNet row of cifar.md, recomputed here from metrics.csv with the csv module."""
    import statistics

    errors = _head_errors()
    seeds = sorted(s for m, s in errors if m == "hbnet56" and ("resnet56", s) in errors)
    assert seeds == [0, 1, 2, 3]
    diffs = [errors[("hbnet56", s)] - errors[("resnet56", s)] for s in seeds]
    per_seed = " / ".join(_signed(d) for d in diffs)
    summary = f"{_signed(statistics.fmean(diffs))} ± {statistics.stdev(diffs):.2f} (n = 4)"
    cifar = (RESULTS / "cifar.md").read_text(encoding="utf-8")
    row = next(line for line in cifar.splitlines() if line.startswith("| hbnet56 − resnet56 |"))
    assert f"| {per_seed} | {summary} |" in row
    readme = (RESULTS / "README.md").read_text(encoding="utf-8")
    assert per_seed in readme and summary.split(" (")[0] in readme


def test_numbers_quoted_in_the_results_readme_come_from_the_files():
    """Every x.xx figure of the README's CIFAR-10-head section is in cifar.md; the simulation's
    printed-minus-ours ranges are recomputed from simulation/final.csv and the printed table."""
    import csv
    import json
    import re

    from derive.experiments.paper_tables import SIM_PRINTED

    readme = (RESULTS / "README.md").read_text(encoding="utf-8")
    cifar = (RESULTS / "cifar.md").read_text(encoding="utf-8")
    section = readme.split("## CIFAR-10-head on the CPU", 1)[1]
    figures = re.findall(r"[−+]?\d+\.\d\d\b", section)
    assert len(figures) >= 8
    missing = [f for f in figures if f not in cifar and f.lstrip("+") not in cifar]
    assert not missing, missing

    final = {
        (r["algorithm"], int(r["depth"])): float(r["final_train_mse"])
        for r in csv.DictReader(open(RESULTS / "simulation" / "final.csv", newline=""))
    }
    depths = (10, 20, 30, 40)
    gaps = {a: [SIM_PRINTED[d][a] - final[(a, d)] for d in depths] for a in SIM_PRINTED[10]}
    assert all(g > 0 for values in gaps.values() for g in values)  # "higher at every depth"

    def span(values: list[float], digits: int = 4) -> str:
        return f"{min(values):.{digits}f}–{max(values):.{digits}f}"

    text = " ".join(readme.split())
    assert f"GD's by {span(gaps['gd'])}" in text
    assert f"HB's by {span(gaps['heavyball'])}" in text
    assert f"AGD's by {span(gaps['nesterov'])}" in text
    agd2 = ", ".join(f"{g:.4f}" for g in gaps["nesterov2"][:3]) + f" and {gaps['nesterov2'][3]:.4f}"
    assert f"AGD2's by {agd2}" in text
    assert f"ADMM's by {span(gaps['admm'])}" in text
    data = json.loads((RESULTS / "simulation" / "simulation.json").read_text())["data"]
    assert f"predicting 0 scores {data['mean_f_squared']:.5f}" in text
    assert f"best constant {data['best_constant_mse']:.5f}" in text
    for algorithm, label in (("gd", "GD"), ("nesterov", "AGD")):  # "... at every depth"
        values = sorted({f"{final[(algorithm, d)]:.5f}" for d in depths})
        assert f"{label} {values[0] if len(values) == 1 else values[0] + '–' + values[-1]}" in text
    assert f"HB {final[('heavyball', 10)]:.5f}, AGD2 {final[('nesterov2', 10)]:.5f}" in text
