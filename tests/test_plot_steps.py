"""`derive plot --steps`: the per-step loss and gradient norm of several runs from their steps.csv."""

from __future__ import annotations

import struct

import torch

from derive.cli import main
from derive.train.runfiles import write_summary
from derive.train.steplog import write_steps


def _run(path, peak: float):
    path.mkdir()
    losses = [2.3, peak, 2.2] + [2.0] * 7
    rows = [[i + 1, 1, v, 0.1, 0.1, 1.0 + i] for i, v in enumerate(losses)]
    write_steps(path, torch.tensor(rows, dtype=torch.float64))
    write_summary(
        path, {"status": "completed", "dataset": {"num_classes": 10}, "model": {"spec": "m"}}
    )


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_steps_of_several_runs_in_one_png(tmp_path, capsys):
    _run(tmp_path / "a", 9.0)
    _run(tmp_path / "b", 3.0)
    out = tmp_path / "steps.png"
    assert (
        main(["plot", "--steps", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    )
    assert capsys.readouterr().out.strip() == str(out)
    width, height = _png_size(out)
    assert width > 1000 and height > 400
    assert main(["plot", "--steps", "--no-log-y", str(tmp_path / "a")]) == 0
    _png_size(tmp_path / "a" / "steps.png")


def test_a_run_without_steps_csv_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    assert main(["plot", "--steps", str(tmp_path / "a"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "has no steps.csv" in err and "--log-steps" in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
