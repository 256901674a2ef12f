"""docs/training.md's table of the papers' runs quotes the measured CPU figures, not typed-in ones."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
MODELS = [
    "resnet56", "hbnet56", "resnet110", "hbnet110", "densenet40", "agdnet40", "densenet52", "agdnet52",
    "resnet34", "hbnet34", "resnet50", "hbnet50", "resnet101", "hbnet101", "densenet121", "agdnet121",
]  # fmt: skip


def test_every_row_has_its_commands_and_the_benchmarks_cpu_days():
    bench = (DOCS / "results" / "bench_paper_runs_cpu.md").read_text()
    measured = dict(
        re.findall(
            r"^(\w+)\s+(?:cifar|imagenet)\s+\d+\s+[\d.,]+\s+[\d.,]+\s+([\d.,]+) days", bench, re.M
        )
    )
    assert sorted(measured) == sorted(MODELS)
    rows = {
        m.group(1): line
        for line in (DOCS / "training.md").read_text().splitlines()
        if (m := re.match(r"^\| [12] \| [^|]+ \| `derive train (\w+)", line))
    }
    assert sorted(rows) == sorted(MODELS)
    for model, line in rows.items():
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[-1] == f"{measured[model]} days", model
        assert "--nproc_per_node=4" in cells[3] and "--nnodes=2" in cells[4], model
        kind = "imagenet" if model in MODELS[8:] else "cifar10"
        assert all(f"derive train {model} --dataset {kind} " in c for c in cells[2:5]), model
