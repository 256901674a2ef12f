"""Torch thread defaults: applied by the CLI for every command that runs torch, --threads wins,
the wait policy is set before torch loads, and a bad --threads is one line, exit 2.

The wait policy is decided once, before torch loads, so the tests about it start a fresh interpreter;
the thread count and the option checks run `derive.cli.main` in this process (apply_threads restores
torch's count and the environment after each command, which the probes below also check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from derive.cli import main
from derive.cli import simulate as simulate_command
from derive.cli import stability as stability_command
from derive.cli import train as train_command
from derive.devices import default_threads, thread_settings

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"simulate": simulate_command, "stability": stability_command, "train": train_command}

# Replaces the command's run (simulate's, or stability probe's) with one that reports what it sees.
PROBE = """
import os, sys
import derive.cli as cli
from derive.cli import {module} as command

def report(args):
    import torch
    print(torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"),
          os.environ.get("OMP_WAIT_POLICY"))
    return 0

command.{function} = report
sys.exit(cli.main(sys.argv[1:]))
"""


def run_probe(
    argv: list[str],
    env: dict[str, str] | None = None,
    *,
    module: str = "simulate",
    function: str = "run",
) -> subprocess.CompletedProcess[str]:
    """The probe in a fresh interpreter: torch not yet loaded when the CLI starts."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_"))}
    code = PROBE.format(module=module, function=function)
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        env={**clean, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


class InProcess:
    """`derive.cli.main` in this process with the command's run replaced by a probe that records
    torch's thread count and the environment's OMP_NUM_THREADS and OMP_WAIT_POLICY."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def __call__(
        self,
        argv: list[str],
        env: dict[str, str] | None = None,
        *,
        module: str = "simulate",
        function: str = "run",
    ) -> list[str]:
        """What the probe saw, as the subprocess probe prints it; the exit status must be 0."""
        for name in list(os.environ):
            if name.startswith(("OMP_", "MKL_")):
                self.monkeypatch.delenv(name)
        for name, value in (env or {}).items():
            self.monkeypatch.setenv(name, value)
        seen: list[list[str]] = []

        def report(args: object) -> int:
            seen.append(
                [
                    str(torch.get_num_threads()),
                    str(os.environ.get("OMP_NUM_THREADS")),
                    str(os.environ.get("OMP_WAIT_POLICY")),
                ]
            )
            return 0

        self.monkeypatch.setattr(COMMANDS[module], function, report)
        before = (torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"))
        assert main(argv) == 0
        assert len(seen) == 1
        # the command's threads and environment are its own: both restored after it
        assert (torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")) == before
        return seen[0]


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> InProcess:
    return InProcess(monkeypatch)


def test_default_applied_with_passive_wait() -> None:
    out = run_probe(["simulate", "--quick"])
    assert out.returncode == 0, out.stderr
    threads, env_threads, policy = out.stdout.split()
    assert 1 <= int(threads) <= (os.cpu_count() or 1)
    assert env_threads == threads  # child processes get the same count
    assert policy == "PASSIVE"


def test_environment_choices_are_kept() -> None:
    out = run_probe(["simulate"], {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "3", "ACTIVE"]


def test_default_applied_in_process(probe: InProcess) -> None:
    threads, env_threads, _ = probe(["simulate", "--quick"])
    assert 1 <= int(threads) <= (os.cpu_count() or 1)
    assert env_threads == threads  # child processes get the same count


@pytest.mark.parametrize("n", ["1", "3"])
def test_threads_option_wins_over_environment(probe: InProcess, n: str) -> None:
    assert probe(["simulate", "--threads", n], {"OMP_NUM_THREADS": "2"})[:2] == [n, n]


def test_environment_thread_count_is_kept(probe: InProcess) -> None:
    assert probe(["simulate"], {"OMP_NUM_THREADS": "3"})[:2] == ["3", "3"]


def test_stability_probe_has_threads(probe: InProcess) -> None:
    seen = probe(
        ["stability", "probe", "somewhere", "--out", "x.json", "--threads", "1"],
        {"OMP_NUM_THREADS": "2"},
        module="stability",
        function="run_probe",
    )
    assert seen[:2] == ["1", "1"]


@pytest.mark.parametrize(
    "command",
    [["train", "resnet20"], ["nas", "search"], ["simulate"], ["stability", "run"], ["demo"]],
)
@pytest.mark.parametrize("value", ["0", "two"])
def test_bad_threads_is_one_line_exit_2(
    command: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process: the option is checked while parsing, before any command runs."""
    assert main([*command, "--threads", value]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "--threads" in lines[0] and "expected a positive integer" in lines[0]


def test_bad_threads_from_the_entry_point() -> None:
    """`python -m derive`: the same one line and exit status 2 from a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", "derive", "train", "resnet20", "--threads", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "--threads" in lines[0] and "expected a positive integer" in lines[0]


@pytest.mark.parametrize(
    ("cores", "load", "expected"),
    [(2, 0.1, 2), (2, 0.8, 1), (2, 1.0, 1), (2, 5.0, 1), (8, 3.0, 5), (4, 0.0, 4)],
)
def test_default_is_the_free_cores(cores: int, load: float, expected: int) -> None:
    assert default_threads(cores, load) == expected


def test_thread_settings_records_count_and_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    settings = thread_settings()
    assert settings == {"threads": torch.get_num_threads(), "omp_wait_policy": "PASSIVE"}


def _run_folder(tmp_path: Path, threads: object) -> Path:
    """A run folder whose summary.json records `threads` torch threads, as derive train writes it."""
    import json

    out = tmp_path / "run"
    out.mkdir()
    summary = {"status": "interrupted", "software": {"cpu_threads": {"threads": threads}}}
    (out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return out


def test_resume_uses_the_thread_count_the_run_recorded(tmp_path: Path, probe: InProcess) -> None:
    """3 is neither the default on a 2-core machine nor torch's own: only the record gives it."""
    out = _run_folder(tmp_path, 3)
    argv = ["train", "resnet20", "--data-dir", str(tmp_path), "--out", str(out), "--resume"]
    assert probe(argv, module="train")[:2] == ["3", "3"]
    typed = probe([*argv, "--threads", "1"], module="train")
    assert typed[:2] == ["1", "1"]  # --threads wins over the record
    environment = probe(argv, {"OMP_NUM_THREADS": "2"}, module="train")
    assert environment[:2] == ["2", "2"]  # and so does the environment
    fresh = probe(argv[:-3] + ["--out", str(tmp_path / "new")], module="train")
    assert int(fresh[0]) <= (os.cpu_count() or 1)  # no record: the default


@pytest.mark.parametrize("threads", [0, -2, True, "4", 10**6, None])
def test_a_damaged_thread_record_falls_back_to_the_default(
    tmp_path: Path, probe: InProcess, threads: object
) -> None:
    out = _run_folder(tmp_path, threads)
    argv = ["train", "resnet20", "--data-dir", str(tmp_path), "--out", str(out), "--resume"]
    assert 1 <= int(probe(argv, module="train")[0]) <= (os.cpu_count() or 1)
