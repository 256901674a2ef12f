"""Fast start: the CLI loads a command's heavy dependencies only when that command runs.

Each case runs `derive ...` in a fresh interpreter and reports which heavy modules it imported.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from derive.cli import COMMANDS

PROBE = """
import contextlib, io, json, runpy, sys
sys.argv = ["derive", *sys.argv[1:]]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_module("derive", run_name="__main__")
    except SystemExit:
        pass
print(json.dumps(sorted(name for name in ("torch", "sympy") if name in sys.modules)))
"""

NAS_COMMANDS = ("nas search", "nas network", "nas report")


def loaded(*argv: str) -> list[str]:
    """The heavy modules (torch, sympy) that `derive ARGV` imported."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("command", ["", *COMMANDS, *NAS_COMMANDS])
def test_help_imports_neither_torch_nor_sympy(command: str) -> None:
    assert loaded(*command.split(), "--help") == []


def test_activation_runs_without_torch() -> None:
    assert "torch" not in loaded("activation", "swish")


@pytest.mark.parametrize("command", ["", *COMMANDS, *NAS_COMMANDS])
def test_help_cites_nothing_outside_the_repository(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "derive", *command.split(), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert not re.search(r"issue \d|contract \d|DESIGN\.md", result.stdout), result.stdout
