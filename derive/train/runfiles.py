"""The files of a run directory: metrics.csv (a row per epoch), summary.json, checkpoint.pt.

All are written atomically (temporary file, then rename), so a killed run never leaves half a file.
metrics.csv is always rewritten whole from the history stored in the checkpoint, so the two agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from derive.errors import UserError
from derive.fsutil import (
    atomic_write_text,
    check_path,
    clean_stale_temp,
    output_file,
    read_csv_rows,
    remove_file,
)
from derive.readers import read_json_object

METRICS = "metrics.csv"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
RUN_FILES = (METRICS, SUMMARY, CHECKPOINT)
METRICS_HEADER = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds")
# Columns after METRICS_HEADER that some runs add: ImageNet runs record top-5 accuracy.
EXTRA_COLUMNS = ("test_top5_acc",)
_FORMATS = {
    "epoch": "{:d}",
    "train_loss": "{:.6f}",
    "train_acc": "{:.6f}",
    "test_loss": "{:.6f}",
    "test_acc": "{:.6f}",
    "lr": "{:.6g}",
    "seconds": "{:.3f}",
    "test_top5_acc": "{:.6f}",
}


def check_run_files(run_dir: Path) -> None:
    """UserError unless every run file of `run_dir` can be written (derive.fsutil.output_file):
    not a directory, device or FIFO; a symlink is written through. Writes nothing."""
    folder = check_path(run_dir, "--out")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {str(run_dir)!r} exists and is not a directory")
    if folder.is_dir():
        for name in RUN_FILES:
            output_file(folder / name, "--out")


def clean_run_dir(run_dir: Path, force: bool) -> list[Path]:
    """Delete the temporary files a killed run left (`.checkpoint.pt.*.tmp`, ...) and, with
    `force`, the previous run's files too; return the temporary files deleted."""
    stale = clean_stale_temp(run_dir, RUN_FILES)
    if force:
        for name in RUN_FILES:
            remove_file(run_dir / name, "run file")
    return stale


def metrics_csv(history: Sequence[Mapping[str, float]]) -> str:
    """The text of metrics.csv for `history` (one mapping per epoch with every METRICS_HEADER key)."""
    extra = tuple(k for k in EXTRA_COLUMNS if history and all(k in row for row in history))
    header = METRICS_HEADER + extra
    lines = [",".join(header)]
    for row in history:
        lines.append(",".join(_FORMATS[k].format(row[k]) for k in header))
    return "\n".join(lines) + "\n"


def write_metrics(run_dir: Path, history: Sequence[Mapping[str, float]]) -> None:
    atomic_write_text(run_dir / METRICS, metrics_csv(history))


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv (from a run directory or the file itself); UserError if missing or malformed."""
    path, reader = read_csv_rows(path, METRICS)
    header = next(reader, None)
    names = tuple(h.strip() for h in header) if header is not None else ()
    if names[: len(METRICS_HEADER)] != METRICS_HEADER or not set(
        names[len(METRICS_HEADER) :]
    ) <= set(EXTRA_COLUMNS):
        raise UserError(
            f"{str(path)!r} is not a derive metrics file (header should be {','.join(METRICS_HEADER)})"
        )
    rows = []
    for number, record in enumerate(reader, start=2):
        if not record:
            continue
        try:
            if len(record) != len(names):
                raise ValueError(f"{len(record)} fields")
            row = {k: float(v) for k, v in zip(names, record, strict=True)}
            check_metrics_row(row, len(rows) + 1)
        except ValueError as exc:
            raise UserError(f"{str(path)!r} line {number} is malformed ({exc})") from None
        rows.append(row)
    return rows


def check_metrics_row(row: Mapping[str, float], epoch: int) -> None:
    """ValueError unless `row` is what derive train writes for `epoch`: every value finite (a NaN or
    infinite loss stops a run before its row is written), losses, lr and seconds >= 0, accuracies
    fractions in [0, 1], epochs numbered 1, 2, 3, ..."""
    for key in row:
        if not math.isfinite(row[key]):
            raise ValueError(f"{key} is {row[key]}, not a finite number")
    if row["epoch"] != epoch:
        raise ValueError(f"epoch {row['epoch']:g} where epoch {epoch} belongs")
    for key in ("train_acc", "test_acc", *(k for k in EXTRA_COLUMNS if k in row)):
        if not 0 <= row[key] <= 1:
            raise ValueError(f"{key} {row[key]:g} is not a fraction in [0, 1]")
    for key in ("train_loss", "test_loss", "lr", "seconds"):
        if row[key] < 0:
            raise ValueError(f"{key} {row[key]:g} is negative")


def json_safe(value: object) -> object:
    """Replace non-finite floats by None (JSON has no NaN) throughout nested dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_summary(run_dir: Path, summary: Mapping[str, object]) -> None:
    atomic_write_text(
        run_dir / SUMMARY, json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n"
    )


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
