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
from derive.train.runfiles import METRICS_HEADER as TRAIN_HEADER

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


@pytest.fixture(scope="module")
def evaluations(study: Path) -> Path:
    """A real tiny evaluation of hb-s0 (derive nas network, then derive train --recipe darts-eval),
    and two reference folders made from it with hand-set test accuracies and seeds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = study.parent / "eval"
    out = root / "hb-s0"
    net = ["-q", "nas", "network", str(study / "hb-s0" / "genotype.json"), "--out", str(out)]
    assert main([*net, "--channels", "4", "--cells", "3"]) == 0
    argv = ["-q", "train", str(out / "hb_s0.py"), "--recipe", "darts-eval", "--epochs", "1"]
    argv += ["--batch-size", "8", "--data-dir", str(study.parent / "data"), "--out", str(out)]
    assert main([*argv, "--eval-batch-size", "16", "--progress-interval", "0"]) == 0
    (out / "checkpoint.pt").unlink()
    (out / "cost.json").write_text(json.dumps({"process_cpu_seconds": 120.0}))
    for seed, acc in ((1, 0.25), (2, 0.3125)):
        ref = root / f"ref-s{seed}"
        shutil.copytree(out, ref)
        summary = json.loads((ref / "summary.json").read_text())
        summary["options"]["seed"] = seed
        (ref / "summary.json").write_text(json.dumps(summary))
        lines = (ref / "metrics.csv").read_text().splitlines()
        fields = lines[1].split(",")
        fields[TRAIN_HEADER.index("test_acc")] = f"{acc:.6f}"
        (ref / "metrics.csv").write_text("\n".join([lines[0], ",".join(fields)]) + "\n")
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


def _report(study: Path, evals: Path, out: Path) -> int:
    return main(["nas", "report", "--study", str(study), "--eval", str(evals), "--out", str(out)])


def _row(text: str, start: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_report_adds_evaluation_runs(study: Path, evaluations: Path, tmp_path, capsys) -> None:
    out = tmp_path / "nas.md"
    assert _report(study, evaluations, out) == 0
    capsys.readouterr()
    text = out.read_text()
    # hb-s0's error, by hand from its metrics.csv; hb-s1 has no evaluation
    last = (evaluations / "hb-s0" / "metrics.csv").read_text().splitlines()[-1].split(",")
    error = 100 * (1 - float(last[TRAIN_HEADER.index("test_acc")]))
    assert _row(text, "| `heavyball` | 2 / 2")[8] == f"{error:.2f} (n = 1)"
    row = _row(text, "| `heavyball` (searched)")
    assert row[1] == "1 of 2 genotypes" and row[2] == f"{error:.2f} (n = 1)"
    assert row[5] == "2.0"  # 120 CPU-seconds
    assert _row(text, "| `hb-s0`")[-1] == f"{error:.2f}" and _row(text, "| `hb-s1`")[-1] == "—"
    # the references: the generated module's NAME, mean ± sample std of 75.00 and 68.75
    ref = _row(text, "| `hb_s0` (reference)")
    assert ref[1] == "2 seeds (1, 2)" and ref[2] == "71.88 ± 4.42 (n = 2)"
    assert ref[3] == "68.75 – 75.00"
    summary = json.loads((evaluations / "hb-s0" / "summary.json").read_text())
    assert ref[4] == str(round(summary["model"]["parameters_without_auxiliary"] / 1000))
    assert "at 4 channels, 3 cells" in text and "shortened to **1**" in text
    assert "training seed 0, 1, 2" in text and "0.10 hours of process CPU time" in text
    assert "test error std of 4.42 points" in text and "one test image is 10.00 points" in text
    assert "never be compared" in text and "No searched genotype has been evaluated" not in text
    # against the reference: the difference, and whether it exceeds twice the seeds' std (4.42)
    diff = error - (75.0 + 68.75) / 2
    kind = "lower" if -diff > 2 * 4.4194 else "higher" if diff > 2 * 4.4194 else "within that noise"
    assert f"differ by `heavyball` {diff:+.2f} points" in text and f"`heavyball` {kind}" in text


def test_report_refuses_an_evaluation_of_another_genotype(
    study: Path, evaluations: Path, tmp_path, capsys
) -> None:
    wrong = tmp_path / "eval"
    shutil.copytree(evaluations / "hb-s0", wrong / "hb-s1")  # hb-s0's network under hb-s1's name
    out = tmp_path / "nas.md"
    assert _report(study, wrong, out) == 2
    err = capsys.readouterr().err
    assert "trained another genotype" in err and err.count("\n") == 1
    assert not out.exists()
    (wrong / "hb-s1" / "hb_s0.py").write_text("NAME = 'x'\n")
    assert _report(study, wrong, out) == 2
    assert "not a network written by `derive nas network`" in capsys.readouterr().err


def test_an_unfinished_evaluation_is_listed_not_counted(
    study: Path, evaluations: Path, tmp_path, capsys
) -> None:
    ev = tmp_path / "eval"
    shutil.copytree(evaluations / "hb-s0", ev / "hb-s0")
    summary = json.loads((ev / "hb-s0" / "summary.json").read_text())
    summary.update(status="running", epochs=3)
    (ev / "hb-s0" / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "nas.md"
    assert _report(study, ev, out) == 0
    capsys.readouterr()
    text = out.read_text()
    assert _row(text, "| `hb-s0`")[-1] == "unfinished (1/3 ep.)"
    assert _row(text, "| `heavyball` | 2 / 2")[8] == "not evaluated"
    assert "## Evaluation" not in text


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
