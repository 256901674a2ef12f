"""The files of a `derive train` run folder: metrics.csv (a row per epoch), summary.json,
checkpoint.pt, and steps.csv with --log-steps. derive.rundir has the folder's lifecycle.

All are written atomically (temporary file, then rename), so a killed run never leaves half a file.
metrics.csv is always rewritten whole from the history stored in the checkpoint, so the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from derive.rundir import (
    CHECKPOINT,
    SUMMARY,
    Column,
    MetricsTable,
    RunDirectory,
    json_safe,
    load_summary,
    read_summary,
    write_summary,
)

METRICS = "metrics.csv"
STEPS = "steps.csv"  # written by derive.train.steplog with --log-steps
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


def run_directory(run_dir: Path) -> RunDirectory:
    """The run folder of `derive train` (steps.csv, written with --log-steps, goes with --force)."""
    return RunDirectory(run_dir, RUN_FILES, also_removed=(STEPS,))


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


# Every column is read as a float (the epoch too), as the report and plots expect.
TABLE = MetricsTable(
    METRICS,
    tuple(Column(name, _FORMATS[name]) for name in METRICS_HEADER),
    not_ours="{path!r} is not a derive metrics file (header should be {header})",
    optional=tuple(Column(name, _FORMATS[name]) for name in EXTRA_COLUMNS),
    check_row=check_metrics_row,  # type: ignore[arg-type]
)


def metrics_csv(history: Sequence[Mapping[str, float]]) -> str:
    """The text of metrics.csv for `history` (one mapping per epoch with every METRICS_HEADER key)."""
    return TABLE.text(history)


def write_metrics(run_dir: Path, history: Sequence[Mapping[str, float]]) -> None:
    TABLE.write(run_dir, history)


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv (from a run directory or the file itself); UserError if missing or malformed."""
    return TABLE.read(path)  # type: ignore[return-value]


__all__ = [
    "CHECKPOINT",
    "EXTRA_COLUMNS",
    "METRICS",
    "METRICS_HEADER",
    "RUN_FILES",
    "SUMMARY",
    "check_metrics_row",
    "json_safe",
    "load_summary",
    "metrics_csv",
    "read_metrics",
    "read_summary",
    "run_directory",
    "write_metrics",
    "write_summary",
]
