"""Every command that writes treats its output paths alike (derive.fsutil): a symlink is written
through, a device, FIFO or directory is refused, a too-long name is one line and exit status 2,
and nothing is written whenever it refuses.

Each writing command is described once (`COMMANDS`: its argv for an output path, and which file
of that path it writes); every case runs against every command.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from train_fixtures import single_thread, write_cifar10, write_model  # noqa: F401

from derive.cli import main
from derive.train.runfiles import write_metrics

LONG = "n" * 300  # one path component longer than any file system's NAME_MAX (255)


def _metrics_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    row = {"epoch": 1, "train_loss": 2.0, "train_acc": 0.2, "test_loss": 2.1}
    write_metrics(folder, [{**row, "test_acc": 0.3, "lr": 0.1, "seconds": 1.0}])
    return folder


def _report_run(folder: Path) -> Path:
    _metrics_run(folder)
    summary = {
        "status": "completed",
        "options": {"model": "resnet56", "epochs": 1, "augment": True, "seed": 0},
        "dataset": {"name": "cifar10", "train_size": 200, "test_size": 60},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@dataclass(frozen=True)
class Command:
    """How a command is told where to write: `argv(tmp, out)`; `written` is the file it writes
    there (None: `out` is the file itself; else a file name inside the folder `out`)."""

    name: str
    argv: Callable[[Path, Path], list[str]]
    written: str | None


def _train_argv(tmp: Path, out: Path) -> list[str]:
    write_cifar10(tmp / "data", per_file=8, n_test=10)
    model = write_model(tmp / "tiny.py")
    return ["train", str(model), "--data-dir", str(tmp / "data"), "--out", str(out)]


COMMANDS = [
    Command("activation", lambda tmp, out: ["activation", "--list", "--out", str(out)], None),
    Command(
        "plot",
        lambda tmp, out: ["plot", str(_metrics_run(tmp / "inputs" / "r")), "--out", str(out)],
        None,
    ),
    Command(
        "report",
        lambda tmp, out: ["report", str(_report_run(tmp / "inputs" / "r")), "--out", str(out)],
        None,
    ),
    Command(
        "network",
        lambda tmp, out: ["-q", "network", "--algo", "gd", "--form", "fc", "--out", str(out)],
        "gd_fc.py",
    ),
    Command(
        "simulate",
        lambda tmp, out: [
            "-q",
            *("simulate", "--algorithms", "gd", "--depths", "1", "--samples", "4"),
            *("--dim", "2", "--epochs", "1", "--device", "cpu", "--out", str(out)),
        ],
        "simulation.json",
    ),
    Command(
        "train",
        lambda tmp, out: ["-q", *_train_argv(tmp, out), "--epochs", "1", "--device", "cpu"],
        "metrics.csv",
    ),
]
FILE_NAMES = {"activation": "list.txt", "plot": "curves.png", "report": "results.md"}
BY_NAME = {c.name: c for c in COMMANDS}


def _layout(tmp: Path, command: Command) -> tuple[Path, Path]:
    """(the path given to the command, the file it writes) under tmp/out."""
    if command.written is None:
        (tmp / "out").mkdir()
        path = tmp / "out" / FILE_NAMES[command.name]
        return path, path
    return tmp / "out", tmp / "out" / command.written


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every entry under `folder` (links not followed): kind and size, to prove nothing changed."""
    out = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        out[str(path.relative_to(folder))] = (stat.filemode(info.st_mode)[0], info.st_size)
    return out


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], *messages: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("derive: error:") and err.count("\n") == 1, err
    assert any(m in err for m in messages), err
    return err


@pytest.mark.parametrize("name", list(BY_NAME))
def test_symlinked_output_is_written_through(tmp_path, capsys, name):
    """The link stays a link; its target gets the new content (nothing replaces the link).

    Folder commands (network, simulate, train) refuse to overwrite an earlier run's files without
    --force, so there the link dangles and the write creates its target."""
    command = BY_NAME[name]
    given, written = _layout(tmp_path, command)
    argv = command.argv(tmp_path, given)
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "target"
    if command.written is None:
        target.write_bytes(b"old")
    written.parent.mkdir(parents=True, exist_ok=True)
    written.symlink_to(target)
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert written.is_symlink() and os.readlink(written) == str(target)
    assert target.read_bytes() not in (b"", b"old")
    assert not [p for p in (tmp_path / "elsewhere").iterdir() if p.name != "target"]


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
@pytest.mark.parametrize("name", list(BY_NAME))
def test_non_regular_output_is_refused_and_nothing_written(tmp_path, capsys, name, kind):
    """/dev/null (through a link, as /dev/stdout would be), a FIFO, a folder: exit 2, untouched."""
    command = BY_NAME[name]
    given, written = _layout(tmp_path, command)
    argv = command.argv(tmp_path, given)
    written.parent.mkdir(parents=True, exist_ok=True)
    if kind == "device":
        written.symlink_to(os.devnull)
    elif kind == "fifo":
        os.mkfifo(written)
    else:
        written.mkdir()
    before = _snapshot(tmp_path / "out")
    _refused(capsys, argv, "not a regular file", "is a directory", "not a directory")
    assert _snapshot(tmp_path / "out") == before
    if kind == "device":
        assert os.readlink(written) == os.devnull
    if kind == "fifo":
        assert stat.S_ISFIFO(written.lstat().st_mode)


@pytest.mark.parametrize("name", list(BY_NAME))
def test_too_long_name_is_one_line_exit_2(tmp_path, capsys, name):
    command = BY_NAME[name]
    given, _ = _layout(tmp_path, command)
    long = given.parent / LONG / given.name if command.written is None else given / LONG
    before = _snapshot(tmp_path)
    err = _refused(capsys, command.argv(tmp_path, long), "path component is 300 bytes long")
    assert len(err) < 300  # the 300 characters are not echoed whole
    inputs = set(_snapshot(tmp_path)) - set(before)
    assert not any(LONG in p or p.startswith("out") for p in inputs)


def test_too_long_data_dir_is_one_line_exit_2(tmp_path, capsys):
    model = write_model(tmp_path / "tiny.py")
    argv = ["train", str(model), "--data-dir", str(tmp_path / LONG), "--out", str(tmp_path / "r")]
    _refused(capsys, argv, "path component is 300 bytes long")
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (a read-only folder)")
@pytest.mark.parametrize("name", ["activation", "plot", "report"])
def test_read_only_folder_is_one_line_exit_2(tmp_path, capsys, name):
    """/proc refuses new files even to root (a chmod'ed folder would not stop root)."""
    command = BY_NAME[name]
    out = Path("/proc/self") / FILE_NAMES[name]
    _refused(capsys, command.argv(tmp_path, out), "cannot write", "not writable")


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{long}"],
        ["report", "--runs-root", "{long}"],
        ["report", "{run}", "--simulation", "{long}", "--out", "{tmp}/r.md"],
        ["plot", "{long}", "--out", "{tmp}/c.png"],
        ["network", "--algo", "{long}.toml", "--show"],
        ["simulate", "--resume", "--out", "{long}"],
        ["demo", "--out", "{long}"],
    ],
)
def test_too_long_input_paths_are_one_line_exit_2(tmp_path, capsys, argv):
    run = _report_run(tmp_path / "run")
    long = tmp_path / LONG
    filled = [a.format(long=long, run=run, tmp=tmp_path) for a in argv]
    _refused(capsys, filled, "is 300 bytes long", "303 bytes long", "cannot read")
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "c.png").exists()
