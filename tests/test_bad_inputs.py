"""Inputs that used to escape: model files that exit or have nothing to train, metrics files with
impossible numbers, TeX-like plot titles, an activation whose smoothness analysis overflows.
Each is one line and exit status 2 (or the documented behaviour), with nothing written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import sympy as sp
from train_fixtures import single_thread, write_cifar10  # noqa: F401

from derive.cli import main
from derive.symbolic import smoothness
from derive.symbolic.symbols import x
from derive.train.runfiles import METRICS_HEADER

MODELS = {
    "exits at import": ("import sys\nsys.exit(0)\n", "calls sys.exit(0) at import"),
    "exits when built": (
        "import sys\ndef create_model(num_classes=10):\n    sys.exit(3)\n",
        "SystemExit",
    ),
    "no parameters": (
        "import torch.nn as nn\n"
        "class Mean(nn.Module):\n"
        "    def __init__(self, n):\n        super().__init__()\n        self.n = n\n"
        "    def forward(self, x):\n        return x.mean((1, 2, 3))[:, None].repeat(1, self.n)\n"
        "def create_model(num_classes=10):\n    return Mean(num_classes)\n",
        "no trainable parameters",
    ),
}


@pytest.mark.parametrize("case", list(MODELS))
def test_model_files_that_cannot_train_are_exit_2_before_the_run_dir(tmp_path, capsys, case):
    source, message = MODELS[case]
    write_cifar10(tmp_path / "data", per_file=8, n_test=10)
    model = tmp_path / "model.py"
    model.write_text(source)
    argv = ["train", str(model), "--data-dir", str(tmp_path / "data"), "--out"]
    assert main([*argv, str(tmp_path / "run"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_docs_say_that_a_model_file_runs_its_code():
    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    pickles = text.index("unpickling a downloaded file can run code")
    assert "imports that file, so it\n  runs its code" in text[pickles : pickles + 1500]


def _run_folder(folder: Path, rows: list[list[str]]) -> Path:
    folder.mkdir(parents=True)
    lines = [",".join(METRICS_HEADER)] + [",".join(r) for r in rows]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    summary = {
        "status": "completed",
        "options": {"model": "resnet56", "epochs": len(rows), "augment": True, "seed": 0},
        "dataset": {"name": "cifar10", "train_size": 200, "test_size": 60},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


GOOD = ["1", "2.0", "0.2", "2.1", "0.25", "0.1", "1.0"]
BAD_ROWS = {
    "nan train loss": ([GOOD, ["2", "nan", "0.3", "2.0", "0.3", "0.1", "1.0"]], "not a finite"),
    "inf test loss": ([GOOD, ["2", "1.9", "0.3", "inf", "0.3", "0.1", "1.0"]], "not a finite"),
    "accuracy 4": ([GOOD, ["2", "1.9", "0.3", "2.0", "-3", "0.1", "1.0"]], "not a fraction"),
    "accuracy above 1": ([["1", "2.0", "1.5", "2.1", "0.25", "0.1", "1.0"]], "not a fraction"),
    "negative loss": ([["1", "-2.0", "0.2", "2.1", "0.25", "0.1", "1.0"]], "negative"),
    "epochs skip": ([GOOD, ["3", "1.9", "0.3", "2.0", "0.3", "0.1", "1.0"]], "epoch 3 where"),
}


@pytest.mark.parametrize("command", ["plot", "report"])
@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_impossible_metrics_are_exit_2_and_nothing_written(tmp_path, capsys, command, case):
    """A test accuracy of −3 used to show as 400 % error in the report."""
    rows, message = BAD_ROWS[case]
    run = _run_folder(tmp_path / "run", rows)
    out = tmp_path / ("curves.png" if command == "plot" else "report.md")
    assert main([command, str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "metrics.csv' line" in err, err
    assert not out.exists()


@pytest.mark.parametrize("title", [r"$\alpha^$", r"50 % of $x_{", "\\", r"a\$b $$ c"])
def test_tex_like_titles_and_folder_names_draw_as_typed(tmp_path, capsys, title):
    """matplotlib parses $...$ as math and raised on these (exit 1); they are plain text now."""
    run = _run_folder(tmp_path / "run $x^$", [GOOD])
    out = tmp_path / "curves.png"
    assert main(["plot", str(run), "--out", str(out), "--title", title]) == 0, capsys.readouterr()
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_too_long_title_is_exit_2(tmp_path, capsys):
    run = _run_folder(tmp_path / "run", [GOOD])
    assert main(["plot", str(run), "--out", str(tmp_path / "c.png"), "--title", "t" * 201]) == 2
    assert "at most 200" in capsys.readouterr().err and not (tmp_path / "c.png").exists()


def test_smoothness_that_overflows_is_unknown_not_a_crash():
    """Φ = exp(exp(x/20)) is fine where Φ is screened, but Φ′ at 10⁴⁰ overflows (OverflowError)."""
    m, M = smoothness.derivative_range(sp.exp(sp.exp(x / 20)))
    assert math.isnan(m.value) and math.isnan(M.value) and not m.known
    line = smoothness.from_range(m, M).line()
    assert "unknown" in line and "kappa unknown" in line
    assert smoothness.from_range(m, M, 0.5).kappa is None
    known = smoothness.derivative_range(sp.tanh(x))  # a finite analysis is unaffected
    assert (known[0].exact, known[1].exact) == (0, 1)


def test_smoothness_that_cannot_finish_in_time_is_unknown(monkeypatch):
    monkeypatch.setattr(smoothness, "ANALYSIS_SECONDS", 1e-3)
    m, M = smoothness.derivative_range(x * sp.tanh(x) + sp.sin(x) / 7)
    assert not m.known and not M.known


def test_activation_cli_reports_unknown_smoothness(capsys):
    assert main(["activation", "--expr", "exp(exp(x/20))", "--name", "ee", "--sigma", "1"]) == 0
    out = capsys.readouterr().out
    assert "range unknown" in out
