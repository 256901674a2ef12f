"""A run folder and its lifecycle, shared by `derive train`, `derive nas search`, `derive simulate`
and the stability study (which runs `derive train`).

Lifecycle: `RunDirectory.check` (before anything is built: the folder can be written, and one that
already holds a run needs --resume or --force), `RunDirectory.open` (create the folder, delete the
temporary files a killed run left and, with --force, the previous run's files), then the run writes
its status into its summary as it goes: "running", then "completed", or "diverged", "interrupted"
(Ctrl-C, SIGTERM) or "failed" when it stops early (`recording_stop`). Every file is written
atomically (temporary file, then rename), so a killed run never leaves half a file.

Also here: the metrics tables (`MetricsTable`: one writer and one reader, typed by column), the
summary's JSON, and the comparison of a run's recorded settings with the ones asked for now
(`changed_settings`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from derive.errors import UserError
from derive.fsutil import (
    atomic_write_text,
    check_path,
    clean_stale_temp,
    ensure_output_dir,
    output_file,
    remove_file,
)
from derive.readers import read_csv_rows, read_json_object

SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
# What a run folder that already holds a run says, unless --resume or --force is given.
HOLDS_RUN = (
    "{folder!r} already holds a run ({files}): add --resume to continue it, --force to start "
    "over, or choose another --out"
)


class TrainingDiverged(Exception):
    """The training loss became NaN or infinite; the checkpoint on disk is the last good epoch."""

    exit_code = 3


@dataclass(frozen=True)
class RunDirectory:
    """A run's output folder (`path`) and the files a run writes there (`files`)."""

    path: Path
    files: tuple[str, ...]  # the files that mark a run
    also_removed: tuple[str, ...] = ()  # deleted with them (--force), but no run by themselves
    holds_message: str = HOLDS_RUN  # with {folder!r} and {files}
    what: str = "output directory"  # how a folder that cannot be created is named

    def existing(self) -> list[str]:
        """The run files the folder holds now."""
        return [name for name in self.files if (self.path / name).exists()]

    def check_writable(self) -> None:
        """UserError unless every run file can be written (derive.fsutil.output_file): not a
        directory, device or FIFO; a symlink is written through. Writes nothing."""
        folder = check_path(self.path, "--out")
        if folder.is_dir():
            for name in self.files:
                output_file(folder / name, "--out")
        elif folder.exists():
            raise UserError(f"--out {str(self.path)!r} exists and is not a directory")

    def check(self, resume: bool, force: bool) -> None:
        """UserError, before anything is written, unless the folder can take the run: writable,
        and either new, or holding a run that --resume continues or --force replaces."""
        self.check_writable()
        existing = self.existing()
        if existing and not (resume or force):
            raise UserError(
                self.holds_message.format(folder=str(self.path), files=", ".join(existing))
            )

    def open(self, force: bool) -> list[Path]:
        """Create the folder (checked writable); delete the temporary files a killed run left and,
        with `force`, the previous run's files. Returns the temporary files deleted."""
        ensure_output_dir(self.path, self.what)
        stale = clean_stale_temp(self.path, self.files)
        if force:
            self.remove_files()
        return stale

    def remove_files(self) -> None:
        """Delete every run file of the folder (a fresh start must not leave stale ones)."""
        for name in self.files + self.also_removed:
            remove_file(self.path / name, "run file")

    def missing_folders(self) -> list[Path]:
        """The folder and those of its parents that do not exist yet, deepest first: what a run
        creates."""
        missing: list[Path] = []
        for folder in (self.path, *self.path.parents):
            if os.path.lexists(folder):
                break
            missing.append(folder)
        return missing

    def remove_if_new(self, created: list[Path], kept_by: str = CHECKPOINT) -> None:
        """Remove the folders a run created (`missing_folders` before it began) if it stopped before
        writing `kept_by`: only the run's own files are deleted, and a folder that holds anything
        else is kept."""
        with contextlib.suppress(OSError, UserError):
            if not created or (created[0] / kept_by).exists():
                return
            clean_stale_temp(created[0], self.files)
            self.remove_files()
            for folder in created:
                folder.rmdir()


def stop_status(exc: BaseException) -> str:
    """The status of a run stopped by `exc`: diverged, interrupted (Ctrl-C) or failed."""
    if isinstance(exc, TrainingDiverged):
        return "diverged"
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"


@contextlib.contextmanager
def recording_stop(
    write_status: Callable[[str], None],
    write_failure: Callable[[str], None] | None = None,
    before: Callable[[BaseException], None] | None = None,
) -> Iterator[None]:
    """On an exception in the body, call `before(exc)`, record why the run stopped, and re-raise.

    A divergence is recorded by `write_status("diverged")`; an interruption or a failure by
    `write_failure(status)` (default `write_status`), whose own errors are swallowed so that the
    original exception is the one raised.
    """
    try:
        yield
    except BaseException as exc:
        if before is not None:
            before(exc)
        status = stop_status(exc)
        if status == "diverged":
            write_status(status)
        else:
            with contextlib.suppress(Exception):
                (write_failure or write_status)(status)
        raise


def json_safe(value: object) -> object:
    """Replace non-finite floats by None (JSON has no NaN) throughout nested dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def json_text(data: object) -> str:
    """Strict JSON text (a non-finite number becomes null), indented, with a final newline."""
    return json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"


def write_summary(run_dir: Path, summary: Mapping[str, object]) -> None:
    atomic_write_text(run_dir / SUMMARY, json_text(summary))


def load_summary(run_dir: str | Path) -> dict[str, object] | None:
    """summary.json of a run, or None if the run has none yet; UserError (naming the file and
    what is wrong) if it is damaged: not UTF-8, not a JSON object, out of derive.readers' bounds."""
    path = Path(run_dir) / SUMMARY
    if not path.exists() and not path.is_symlink():
        return None
    return read_json_object(path)


def read_summary(run_dir: str | Path) -> dict[str, object] | None:
    """summary.json of a run, or None if absent or unreadable (where it is informative only)."""
    try:
        return load_summary(run_dir)
    except UserError:
        return None


def changed_settings(
    recorded: Mapping[str, object], requested: Mapping[str, object], may_change: frozenset[str]
) -> list[tuple[str, object, object]]:
    """(name, recorded value, requested value) for each setting, but those in `may_change`, that a
    run recorded differently from what is asked now; a setting missing on one side counts as None."""
    return [
        (key, recorded.get(key), requested.get(key))
        for key in sorted(set(recorded) | set(requested))
        if key not in may_change and recorded.get(key) != requested.get(key)
    ]


def optional_float(text: str) -> float | None:
    """None for an empty field, else float(text)."""
    return float(text) if text else None


@dataclass(frozen=True)
class Column:
    """A column of a metrics table: how a value is written (`fmt`; None: as text; None is written
    as an empty field) and how a field is read back (`parse`, raising ValueError if malformed;
    `finite`: a number must also be finite)."""

    name: str
    fmt: str | None = None
    parse: Callable[[str], object] = float
    finite: bool = False

    def write(self, value: object) -> object:
        if value is None:
            return ""
        return value if self.fmt is None else self.fmt.format(value)

    def read(self, text: str) -> object:
        value = self.parse(text)
        if self.finite and isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{self.name} is {text}, not a finite number")
        return value


@dataclass(frozen=True)
class MetricsTable:
    """A CSV file of rows (one per epoch, evaluation or run), written whole and atomically.

    `optional` columns follow `columns` when every row has them (as ImageNet runs add top-5
    accuracy); `check_row(row, number)` raises ValueError for a row that its writer would never
    write; `not_ours` is the error for a wrong header ({path!r} and {header} are filled in).
    """

    name: str
    columns: tuple[Column, ...]
    not_ours: str
    optional: tuple[Column, ...] = ()
    check_row: Callable[[dict[str, object], int], None] | None = None

    @property
    def header(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def text(self, rows: Sequence[Mapping[str, object]]) -> str:
        """The file's text: the header, then a line per row (CSV-quoted where a field needs it)."""
        extra = tuple(c for c in self.optional if rows and all(c.name in r for r in rows))
        columns = self.columns + extra
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(c.name for c in columns)
        for row in rows:
            writer.writerow(c.write(row[c.name]) for c in columns)
        return out.getvalue()

    def write(self, folder: Path, rows: Sequence[Mapping[str, object]]) -> None:
        atomic_write_text(folder / self.name, self.text(rows))

    def read(self, path: str | Path) -> list[dict[str, object]]:
        """Rows of the file (from its folder or the file itself), each field parsed by its column;
        UserError if missing or malformed."""
        path, reader = read_csv_rows(path, self.name)
        return self._rows(reader, str(path))

    def read_text(self, text: str, where: str) -> list[dict[str, object]]:
        """Rows of the file's text (`where` names it in errors); UserError if malformed."""
        return self._rows(csv.reader(io.StringIO(text)), where)

    def _rows(self, reader: Iterator[list[str]], where: str) -> list[dict[str, object]]:
        columns = self._columns(next(reader, None), where)
        rows: list[dict[str, object]] = []
        for number, record in enumerate(reader, start=2):
            if not record:
                continue
            try:
                if len(record) != len(columns):
                    raise ValueError(f"{len(record)} fields")
                row = {c.name: c.read(v) for c, v in zip(columns, record, strict=True)}
                if self.check_row is not None:
                    self.check_row(row, len(rows) + 1)
            except (ValueError, UserError) as exc:
                raise UserError(f"{where!r} line {number} is malformed ({exc})") from None
            rows.append(row)
        return rows

    def _columns(self, header: list[str] | None, where: str) -> tuple[Column, ...]:
        """The columns a header names; UserError unless it is `columns` then optional ones."""
        names = tuple(h.strip() for h in header) if header is not None else ()
        known = {c.name: c for c in self.optional}
        rest = names[len(self.columns) :]
        if names[: len(self.columns)] != self.header or not set(rest) <= set(known):
            raise UserError(self.not_ours.format(path=where, header=",".join(self.header)))
        return self.columns + tuple(known[name] for name in rest)
