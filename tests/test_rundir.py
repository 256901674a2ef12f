"""The shared run-folder lifecycle (derive/rundir.py): the checks before a run, --force, the cleanup
after bad input, the status a stopped run records, and the typed metrics tables."""

from __future__ import annotations

import csv
import io

import pytest

from derive.errors import UserError
from derive.rundir import (
    Column,
    MetricsTable,
    RunDirectory,
    TrainingDiverged,
    changed_settings,
    optional_float,
    recording_stop,
)

TABLE = MetricsTable(
    "rows.csv",
    (Column("name", None, str), Column("epoch", "{:d}", int), Column("loss", "{:.3f}")),
    not_ours="{path!r} is not a rows file ({header})",
    optional=(Column("extra", "{:.2f}", optional_float),),
)


def test_a_folder_that_holds_a_run_needs_resume_or_force(tmp_path):
    folder = RunDirectory(tmp_path / "run", ("a.csv", "b.json"))
    folder.check(resume=False, force=False)  # a new folder is fine
    folder.open(force=False)
    (folder.path / "b.json").write_text("{}")
    with pytest.raises(UserError, match=r"already holds a run \(b\.json\): add --resume"):
        folder.check(resume=False, force=False)
    folder.check(resume=True, force=False)
    folder.check(resume=False, force=True)


def test_each_command_keeps_its_own_message(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    folder = RunDirectory(tmp_path, ("a.csv",), holds_message="{folder!r} holds a study")
    with pytest.raises(UserError, match=r"^'.*' holds a study$"):
        folder.check(resume=False, force=False)


def test_a_file_in_the_way_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "a.csv").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        RunDirectory(tmp_path, ("a.csv",)).check(resume=True, force=True)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(UserError, match="exists and is not a directory"):
        RunDirectory(tmp_path / "plain", ("a.csv",)).check(resume=False, force=False)


def test_force_deletes_the_run_files_and_temporary_files_but_nothing_else(tmp_path):
    for name in ("a.csv", ".a.csv.x1y2.tmp", "steps.csv", "notes.txt"):
        (tmp_path / name).write_text("x")
    stale = RunDirectory(tmp_path, ("a.csv",), also_removed=("steps.csv",)).open(force=True)
    assert [p.name for p in stale] == [".a.csv.x1y2.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_bad_input_removes_only_the_folders_the_run_created(tmp_path):
    folder = RunDirectory(tmp_path / "new" / "run", ("a.csv", "checkpoint.pt"))
    created = folder.missing_folders()
    assert created == [tmp_path / "new" / "run", tmp_path / "new"]
    folder.open(force=False)
    (folder.path / "a.csv").write_text("x")
    folder.remove_if_new(created)
    assert list(tmp_path.iterdir()) == []
    # a folder that holds something else is kept, and so is a run with a checkpoint
    folder.open(force=False)
    (folder.path / "mine.txt").write_text("x")
    folder.remove_if_new(created)
    assert (folder.path / "mine.txt").exists()
    (folder.path / "mine.txt").unlink()
    (folder.path / "checkpoint.pt").write_text("x")
    folder.remove_if_new(created)
    assert (folder.path / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (TrainingDiverged("nan"), "diverged"),
        (KeyboardInterrupt(), "interrupted"),
        (RuntimeError("boom"), "failed"),
    ],
)
def test_a_stopped_run_records_why_and_raises_the_original_error(error, status):
    written: list[str] = []
    with pytest.raises(type(error)), recording_stop(written.append):
        raise error
    assert written == [status]


def test_a_failure_to_write_the_status_does_not_hide_why_the_run_stopped():
    def broken(status: str) -> None:
        raise OSError("disk full")

    with pytest.raises(KeyboardInterrupt), recording_stop(broken):
        raise KeyboardInterrupt


def test_changed_settings_names_each_difference_but_the_allowed_ones():
    recorded = {"lr": 0.1, "epochs": 10, "seed": 1}
    requested = {"lr": 0.05, "epochs": 20, "new": True}
    assert changed_settings(recorded, requested, frozenset({"epochs"})) == [
        ("lr", 0.1, 0.05),
        ("new", None, True),
        ("seed", 1, None),
    ]


def test_a_table_reads_back_what_it_writes_typed_by_column(tmp_path):
    rows = [
        {"name": "a,b", "epoch": 1, "loss": 0.12345, "extra": None},
        {"name": "c", "epoch": 2, "loss": 2.0, "extra": 0.5},
    ]
    TABLE.write(tmp_path, rows)
    text = (tmp_path / "rows.csv").read_text()
    # the csv module, not the table, reads the text: the quoting is standard CSV
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "epoch", "loss", "extra"],
        ["a,b", "1", "0.123", ""],
        ["c", "2", "2.000", "0.50"],
    ]
    assert TABLE.read(tmp_path) == [
        {"name": "a,b", "epoch": 1, "loss": 0.123, "extra": None},
        {"name": "c", "epoch": 2, "loss": 2.0, "extra": 0.5},
    ]


def test_an_optional_column_is_written_only_when_every_row_has_it():
    assert TABLE.text([{"name": "a", "epoch": 1, "loss": 1.0}]).splitlines()[0] == "name,epoch,loss"


def test_a_malformed_table_is_one_line_naming_the_file_and_line(tmp_path):
    with pytest.raises(UserError, match=r"is not a rows file \(name,epoch,loss\)"):
        TABLE.read_text("name,when\n", "x.csv")
    with pytest.raises(UserError, match=r"'x.csv' line 3 is malformed \(2 fields\)"):
        TABLE.read_text("name,epoch,loss\na,1,0.5\nb,2\n", "x.csv")
    with pytest.raises(UserError, match=r"line 2 is malformed \(invalid literal"):
        TABLE.read_text("name,epoch,loss\na,one,0.5\n", "x.csv")
    finite = MetricsTable("f.csv", (Column("loss", "{:g}", float, finite=True),), "{path!r}")
    with pytest.raises(
        UserError, match=r"line 2 is malformed \(loss is nan, not a finite number\)"
    ):
        finite.read_text("loss\nnan\n", "f.csv")
