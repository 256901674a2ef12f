"""The NAS study doc: built from search run folders (and evaluation runs), rebuilt exactly when committed."""

from __future__ import annotations

import json
import shlex
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from train_fixtures import single_thread, write_cifar10  # noqa: F401

from derive.cli import main
from derive.nas.genotype import Genotype
from derive.nas.searchfiles import METRICS_HEADER

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "results" / "nas_study.md"
SKIPS = (("skip_connect", 0), ("skip_connect", 1))


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A real tiny heavyball search (seed 0), and a copy edited into a collapsed seed-1 run."""
    threads = torch.get_num_threads()  # module scope: before train_fixtures' single_thread
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("nas")
    data = write_cifar10(base / "data", per_file=8, n_test=10).root
    root = base / "study"
    argv = ["-q", "nas", "search", "--space", "heavyball", "--data-dir", str(data)]
    argv += ["--out", str(root / "hb-s0"), "--channels", "4", "--cells", "3", "--image-size", "8"]
    assert main([*argv, "--batch-size", "8", "--epochs", "2", "--no-plot"]) == 0
    shutil.copytree(root / "hb-s0", root / "hb-s1")
    collapsed = Genotype(
        normal=tuple(
            (("skip_connect", i + 1), ("skip_connect", i + 1), ("neg_skip_connect", i))
            for i in range(4)
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=tuple(
            (("sep_conv_3x3", i + 1), ("max_pool_3x3", i + 1), ("neg_skip_connect", i))
            for i in range(4)
        ),
        reduce_concat=(2, 3, 4, 5),
        space="heavyball",
    )
    (root / "hb-s1" / "genotype.json").write_text(collapsed.dumps())
    summary = json.loads((root / "hb-s1" / "summary.json").read_text())
    summary["options"]["seed"] = 1
    (root / "hb-s1" / "summary.json").write_text(json.dumps(summary))
    (root / "hb-s1" / "checkpoint.pt").unlink()
    torch.set_num_threads(threads)
    return root


def test_report_counts_collapses_and_groups_seeds(study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "nas.md"
    assert main(["nas", "report", "--study", str(study), "--out", str(out)]) == 0
    capsys.readouterr()
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `heavyball`"))  # summary
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2 / 2"
    assert cells[4] == "1 / 2" and cells[5] == "0 / 2"  # only hb-s1's normal cell collapsed
    assert cells[6] == "2 of 2"
    assert cells[8] == "not evaluated"
    assert "`hb-s1` (collapsed: normal)" in text
    assert "skip(2)+skip(2)+−skip(1)" in text  # node 1 of the collapsed cell
    # the accuracy column is the last metrics row's val_acc, by hand from the file
    last = (study / "hb-s0" / "metrics.csv").read_text().splitlines()[-1].split(",")
    acc = 100 * float(last[METRICS_HEADER.index("val_acc")])
    assert f"{acc:.2f}" in text
    assert "No searched genotype has been evaluated yet" in text
    # the operation counts, by hand from the two genotype.json files
    counts: Counter[str] = Counter()
    for run in ("hb-s0", "hb-s1"):
        normal = json.loads((study / run / "genotype.json").read_text())["normal"]
        counts.update(op for node in normal for op, _ in node)
    (ops_row,) = [line for line in text.splitlines() if line.startswith("| `heavyball` | normal |")]
    values = [c.strip() for c in ops_row.strip("|").split("|")][2:]
    order = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "neg_skip_connect"]
    order += ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
    assert values == [str(counts[op]) for op in order]


def test_report_adds_evaluation_runs(study: Path, tmp_path: Path, capsys) -> None:
    ev = tmp_path / "eval" / "hb-s0"
    ev.mkdir(parents=True)
    (ev / "summary.json").write_text(
        json.dumps(
            {"status": "completed", "epochs_completed": 3, "final_test_error_percent": 61.25}
        )
    )
    out = tmp_path / "nas.md"
    argv = [
        "nas",
        "report",
        "--study",
        str(study),
        "--eval",
        str(tmp_path / "eval"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    text = out.read_text()
    assert "61.25 (n = 1)" in text and "61.25 (3 ep.)" in text
    assert "1 of 2 genotypes were evaluated" in text


def test_report_refuses_bad_folders(tmp_path: Path, capsys) -> None:
    assert (
        main(["nas", "report", "--study", str(tmp_path / "none"), "--out", str(tmp_path / "x.md")])
        == 2
    )
    (tmp_path / "empty").mkdir()
    assert (
        main(["nas", "report", "--study", str(tmp_path / "empty"), "--out", str(tmp_path / "x.md")])
        == 2
    )
    assert not (tmp_path / "x.md").exists()
    capsys.readouterr()


def test_committed_study_doc_is_rebuilt_exactly(tmp_path: Path, monkeypatch, capsys) -> None:
    if not COMMITTED.exists():
        pytest.skip("no committed docs/results/nas_study.md")
    committed = COMMITTED.read_text(encoding="utf-8")
    argv = shlex.split(committed.split("```", 2)[1].strip())
    assert argv[:3] == ["derive", "nas", "report"]
    out = tmp_path / "nas_study.md"
    argv[argv.index("--out") + 1] = str(out)
    monkeypatch.chdir(ROOT)
    assert main(["-q", *argv[1:]]) == 0
    capsys.readouterr()
    assert (
        out.read_text(encoding="utf-8").replace(str(out), "docs/results/nas_study.md") == committed
    )
