"""Fast start: the CLI loads a command's heavy dependencies only when that command runs.

Each case runs `derive ...` in a fresh process and reports which heavy modules it imported. One child
interpreter imports the CLI once (checked to load neither torch nor sympy) and forks a process per case,
so each case starts from exactly what `python -m derive` has loaded before the command runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from derive.cli import COMMANDS

HEAVY = ("torch", "sympy")

PROBE = """
import contextlib, io, json, os, runpy, sys
import derive.cli  # what `python -m derive` imports before the command runs

def heavy():
    return sorted(name for name in HEAVY if name in sys.modules)

def run_case(argv):
    sys.argv = ["derive", *argv]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_module("derive", run_name="__main__")
        except SystemExit:
            pass
    return {"loaded": heavy(), "stdout": out.getvalue()}

results = {"(cli import)": {"loaded": heavy(), "stdout": ""}}
for argv in json.loads(sys.argv[1]):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the case, in a child that has loaded what the parent has
        os.close(read_end)
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(json.dumps(run_case(argv)))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    results[" ".join(argv)] = json.loads(text)
print(json.dumps(results))
""".replace("HEAVY", repr(HEAVY))

NAS_COMMANDS = ("nas search", "nas network", "nas report")
HELP_CASES = ["", *COMMANDS, *NAS_COMMANDS]
ACTIVATION = "activation swish"


def _help_argv(command: str) -> list[str]:
    return [*command.split(), "--help"]


@pytest.fixture(scope="module")
def probed() -> dict[str, dict[str, object]]:
    """Every case's heavy modules and standard output, from one child interpreter."""
    cases = [_help_argv(c) for c in HELP_CASES] + [ACTIVATION.split()]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(cases)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def loaded(probed: dict[str, dict[str, object]], *argv: str) -> list[str]:
    """The heavy modules (torch, sympy) that `derive ARGV` imported."""
    return probed[" ".join(argv)]["loaded"]  # type: ignore[return-value]


def test_the_cli_itself_imports_neither_torch_nor_sympy(probed) -> None:
    assert loaded(probed, "(cli import)") == []


@pytest.mark.parametrize("command", HELP_CASES)
def test_help_imports_neither_torch_nor_sympy(probed, command: str) -> None:
    assert loaded(probed, *_help_argv(command)) == []


def test_activation_runs_without_torch(probed) -> None:
    assert "torch" not in loaded(probed, *ACTIVATION.split())
    assert "sympy" in loaded(probed, *ACTIVATION.split())  # the probe sees what a command loads


@pytest.mark.parametrize("command", HELP_CASES)
def test_help_cites_nothing_outside_the_repository(probed, command: str) -> None:
    text = probed[" ".join(_help_argv(command))]["stdout"]
    assert "usage: derive" in text  # type: ignore[operator]
    assert not re.search(r"issue \d|contract \d|DESIGN\.md", text), text  # type: ignore[call-overload]


def test_python_m_derive_help_runs() -> None:
    """The entry point itself, in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-m", "derive", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: derive" in result.stdout
    assert not re.search(r"issue \d|contract \d|DESIGN\.md", result.stdout), result.stdout
