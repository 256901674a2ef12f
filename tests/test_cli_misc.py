"""Every command explains itself; the demo pipeline runs end to end (simulation tested on its own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from derive.cli import COMMANDS, main


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "usage: derive " + command in out and "example" in out.lower()


def test_unknown_command_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_demo_derives_and_generates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--skip-simulation"]) == 0
    generated = sorted(p.name for p in (tmp_path / "generated").iterdir())
    assert "heavyball_fc.py" in generated and "nesterov2_conv.py" in generated
    assert "Errata" in (tmp_path / "activations.md").read_text(encoding="utf-8") or "errata" in (
        tmp_path / "activations.md"
    ).read_text(encoding="utf-8")
    repo = Path(__file__).resolve().parents[1] / "generated"
    assert (tmp_path / "generated" / "admm_fc.py").read_text() == (repo / "admm_fc.py").read_text()


def test_atomic_writes_respect_the_umask(tmp_path: Path) -> None:
    import os

    from derive.fsutil import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert path.read_text() == "x" and (path.stat().st_mode & 0o777) == 0o644
