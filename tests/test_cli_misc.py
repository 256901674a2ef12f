"""Every command explains itself; the demo pipeline runs end to end (simulation tested on its own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from derive import algorithms
from derive.cli import COMMANDS, main
from derive.symbolic import catalog


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


def _run_demo(out: Path) -> str:
    """`derive demo --skip-simulation` into `out`: checks the files, returns activations.md."""
    assert main(["demo", "--out", str(out), "--skip-simulation"]) == 0
    generated = sorted(p.name for p in (out / "generated").iterdir())
    assert "heavyball_fc.py" in generated and "nesterov2_conv.py" in generated
    activations = (out / "activations.md").read_text(encoding="utf-8")
    assert "Errata" in activations or "errata" in activations
    repo = Path(__file__).resolve().parents[1] / "generated"
    assert (out / "generated" / "admm_fc.py").read_text() == (repo / "admm_fc.py").read_text()
    return activations


def test_demo_derives_and_generates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's steps, with three activations standing for the catalog and three algorithms for
    the built-ins (all of them, mish's 5 s of derivation among them, is the slow test below;
    tests/test_activation_docs.py and tests/test_generated_fresh.py check every derivation and
    every generated module against the committed ones)."""
    few = [a for a in catalog.ACTIVATIONS if a.name in ("sigmoid", "tanh", "relu")]
    monkeypatch.setattr(catalog, "ACTIVATIONS", type(catalog.ACTIVATIONS)(few))
    monkeypatch.setattr(algorithms, "list_algorithms", lambda: ["heavyball", "nesterov2", "admm"])
    activations = _run_demo(tmp_path)
    assert "| sigmoid |" in activations and "| relu |" in activations
    assert "| mish |" not in activations
    assert len(list((tmp_path / "generated").iterdir())) == 6  # fc and conv of each


@pytest.mark.slow
def test_demo_derives_every_activation_and_generates(tmp_path: Path) -> None:
    activations = _run_demo(tmp_path)
    assert all(f"| {a.name} |" in activations for a in catalog.ACTIVATIONS)
    assert len(list((tmp_path / "generated").iterdir())) == 2 * len(algorithms.list_algorithms())


def test_atomic_writes_respect_the_umask(tmp_path: Path) -> None:
    import os

    from derive.fsutil import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert path.read_text() == "x" and (path.stat().st_mode & 0o777) == 0o644
