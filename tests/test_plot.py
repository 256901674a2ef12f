"""`derive plot`: learning curves of several runs in one image; clear errors; matplotlib optional."""

from __future__ import annotations

import struct
import sys

import pytest

from derive.cli import main
from derive.train.curves import run_label
from derive.train.runfiles import write_metrics


def _run(path, epochs: int, start_err: float):
    path.mkdir()
    rows = [
        {
            "epoch": e,
            "train_loss": 2.0 / e,
            "train_acc": 1 - start_err / (e + 1),
            "test_loss": 2.2 / e,
            "test_acc": 1 - start_err / e,
            "lr": 0.1 if e <= epochs // 2 else 0.01,
            "seconds": 1.0,
        }
        for e in range(1, epochs + 1)
    ]
    write_metrics(path, rows)
    return rows


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_several_runs_in_one_png(tmp_path, capsys):
    _run(tmp_path / "a", 20, 0.9)
    _run(tmp_path / "b", 12, 0.8)
    out = tmp_path / "both.png"
    assert (
        main(["plot", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--title", "t"])
        == 0
    )
    assert capsys.readouterr().out.strip() == str(out)
    width, height = _png_size(out)
    assert width > 1000 and height > 400
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_default_outputs(tmp_path, monkeypatch):
    _run(tmp_path / "a", 5, 0.9)
    _run(tmp_path / "b", 5, 0.9)
    assert main(["plot", str(tmp_path / "a")]) == 0
    _png_size(tmp_path / "a" / "curves.png")
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "a", "b"]) == 0
    _png_size(tmp_path / "curves.png")
    assert main(["plot", "a", "--out", "a.svg"]) == 0
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")


def test_label_names_final_and_best_error(tmp_path):
    rows = _run(tmp_path / "r", 10, 0.5)
    rows[4]["test_acc"] = 0.99  # best at epoch 5
    assert run_label(tmp_path / "r", rows) == "r: final 5.00 %, best 1.00 % @ 5"


@pytest.mark.parametrize(
    "prepare, message",
    [
        (lambda d: None, "cannot read"),
        (lambda d: (d / "metrics.csv").write_text("a,b\n1,2\n"), "not a derive metrics file"),
        (
            lambda d: (d / "metrics.csv").write_text(
                "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds\n"
            ),
            "no completed epoch",
        ),
        (
            lambda d: (d / "metrics.csv").write_text(
                "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds\n1,x,1,1,1,1,1\n"
            ),
            "line 2 is malformed",
        ),
    ],
)
def test_bad_runs_exit_2(tmp_path, capsys, prepare, message):
    run = tmp_path / "run"
    run.mkdir()
    prepare(run)
    assert main(["plot", str(run), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_bad_paths_exit_2(tmp_path, capsys):
    _run(tmp_path / "a", 3, 0.9)
    assert main(["plot", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "a"), "--out", str(tmp_path / "x.jpg")]) == 2
    assert ".png" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "a"), "--out", str(tmp_path / "no" / "x.png")]) == 2


def test_without_matplotlib_says_what_to_install(tmp_path, capsys, monkeypatch):
    _run(tmp_path / "a", 3, 0.9)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(
        sys.modules, "matplotlib", None
    )  # makes `import matplotlib...` raise ImportError
    assert main(["plot", str(tmp_path / "a")]) == 2
    assert "install derive[plot]" in capsys.readouterr().err
    assert not (tmp_path / "a" / "curves.png").exists()
