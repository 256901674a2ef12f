"""`derive network`: bad input exits 2 with one line and writes nothing; good input writes modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from derive.cli import main
from derive.models.registry import load_python_file


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--algo", "heavybal", "--show"], "did you mean heavyball"),
        (["--algo", "heavyball", "--form", "rnn", "--show"], "unknown form"),
        (["--algo", "heavyball", "--depth", "0", "--show"], "--depth: expected an integer >= 1"),
        (["--algo", "heavyball", "--depth", "two", "--show"], "--depth: expected an integer"),
        (["--algo", "nesterov2", "--depth", "7", "--show"], "at most 6 (exact schedules grow"),
        (["--algo", "heavyball", "--coef", "beta=abc", "--show"], "not a number"),
        (["--algo", "heavyball", "--coef", "beta=5", "--show"], "must be <= 1"),
        (["--algo", "heavyball", "--coef", "gamma=0.1", "--show"], "has no coefficient 'gamma'"),
        (["--algo", "heavyball", "--coef", "beta", "--show"], "NAME=VALUE"),
        (["--algo", "triple_momentum", "--coef", "kappa=1", "--show"], "must be > 1"),
        (["--algo", "heavyball", "--show", "--format", "xml"], "unknown --format"),
        (["--algo", "heavyball"], "nothing to do"),
        (["--show"], "--algo is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "network", *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("derive: error:")


def test_unwritable_or_non_directory_out_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    code, _, err = run(capsys, "network", "--algo", "heavyball", "--out", str(afile))
    assert code == 2 and "not a directory" in err
    code, _, err = run(capsys, "network", "--algo", "heavyball", "--out", str(afile / "sub"))
    assert code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_failed_generation_leaves_no_partial_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys,
        "network",
        "--algo",
        "admm",
        "--form",
        "conv",
        "--coef",
        "x=1",
        "--out",
        str(tmp_path),
    )
    assert code == 2
    assert list(tmp_path.iterdir()) == []


def test_writes_fc_and_conv_modules_that_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert (
        run(
            capsys,
            "network",
            "--algo",
            "heavyball",
            "--form",
            "fc",
            "--coef",
            "beta=0.5",
            "--out",
            str(tmp_path),
        )[0]
        == 0
    )
    assert run(capsys, "network", "--algo", "heavyball", "--out", str(tmp_path))[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heavyball_conv.py", "heavyball_fc.py"]
    fc = load_python_file(str(tmp_path / "heavyball_fc.py"))
    assert fc.DEFAULTS == {"beta": 0.5}
    net = fc.build_tied(torch.eye(3, dtype=torch.float64) / 2, "tanh", 4)
    assert net(torch.ones(2, 3)).shape == (2, 3)
    conv = load_python_file(str(tmp_path / "heavyball_conv.py"))
    assert conv.create_model(num_classes=7, depth=8)(torch.randn(1, 3, 32, 32)).shape == (1, 7)


def test_show_prints_the_derived_recurrence(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "network", "--algo", "heavyball", "--show")
    assert code == 0 and "zₖ₊₁ = T(zₖ) + β·zₖ − β·zₖ₋₁" in out and "SCIS (10)" in out
    code, out, _ = run(capsys, "network", "--algo", "nesterov", "--show", "--format", "latex")
    assert code == 0 and r"T\left(" in out
    code, out, _ = run(
        capsys, "network", "--algo", "nesterov2", "--show", "--format", "json", "--depth", "3"
    )
    assert code == 0 and '"h"' in out and "sqrt(5)" in out


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "network", "--list")
    assert code == 0 and all(
        n in out for n in ("gd", "heavyball", "nesterov2", "admm", "triple_momentum")
    )


def test_real_process_exit_status_and_single_stderr_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "derive", "network", "--algo", "nope", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "unknown algorithm 'nope'" in result.stderr
    assert not (tmp_path / "o").exists()
