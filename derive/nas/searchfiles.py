"""The files of a search run directory, each written atomically.

- metrics.csv: a row per epoch — epoch, train_loss, train_acc (the weight half, augmented, during
  the epoch), val_loss, val_acc (the architecture half, eval mode, after the epoch), arch_loss (mean
  L_val the architecture steps saw), lr, seconds, and genotype: the genotype derived after the epoch
  as compact JSON (CSV-quoted).
- genotype.json: the genotype after the last completed epoch (`Genotype.dumps()`).
- summary.json, checkpoint.pt: as `derive train` (derive.train.runfiles / checkpoint).
- cells.dot, cells.png: the plot of the cells (derive.nas.plot).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from derive.errors import UserError
from derive.fsutil import atomic_write_text, read_csv_rows
from derive.nas.genotype import Genotype, from_json
from derive.readers import parse_json
from derive.train.runfiles import CHECKPOINT, SUMMARY

METRICS = "metrics.csv"
GENOTYPE = "genotype.json"
PLOT_FILES = ("cells.dot", "cells.png")
RUN_FILES = (METRICS, SUMMARY, CHECKPOINT, GENOTYPE, *PLOT_FILES)
METRICS_HEADER = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "arch_loss",
    "lr",
    "seconds",
    "genotype",
)
_FORMATS = {
    "epoch": "{:d}",
    "train_loss": "{:.6f}",
    "train_acc": "{:.6f}",
    "val_loss": "{:.6f}",
    "val_acc": "{:.6f}",
    "arch_loss": "{:.6f}",
    "lr": "{:.6g}",
    "seconds": "{:.3f}",
}


def compact(genotype: Genotype) -> str:
    """The genotype as one line of JSON (the metrics.csv column)."""
    return json.dumps(genotype.to_json(), separators=(",", ":"))


def metrics_csv(history: Sequence[Mapping[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(METRICS_HEADER)
    for row in history:
        writer.writerow(
            [_FORMATS[k].format(row[k]) if k in _FORMATS else row[k] for k in METRICS_HEADER]
        )
    return out.getvalue()


def write_metrics(run_dir: Path, history: Sequence[Mapping[str, object]]) -> None:
    atomic_write_text(run_dir / METRICS, metrics_csv(history))


def read_metrics(path: str | Path) -> list[dict[str, object]]:
    """Rows of a search metrics.csv (numbers as floats, genotype as a Genotype); UserError if malformed."""
    path, reader = read_csv_rows(path, METRICS)
    if tuple(next(reader, ())) != METRICS_HEADER:
        raise UserError(f"{str(path)!r} is not a search metrics file ({','.join(METRICS_HEADER)})")
    rows = []
    for number, record in enumerate(reader, start=2):
        try:
            if len(record) != len(METRICS_HEADER):
                raise ValueError(f"{len(record)} fields")
            row: dict[str, object] = {
                k: _finite(k, v) for k, v in zip(METRICS_HEADER[:-1], record, strict=False)
            }
            row["genotype"] = from_json(parse_json(record[-1], "the genotype column"))
        except (ValueError, UserError) as exc:
            raise UserError(f"{str(path)!r} line {number} is malformed ({exc})") from None
        rows.append(row)
    return rows


def _finite(name: str, text: str) -> float:
    """float(text); ValueError unless finite (a search stops before it writes a NaN row)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{name} is {text}, not a finite number")
    return value


def write_genotype(run_dir: Path, genotype: Genotype) -> None:
    atomic_write_text(run_dir / GENOTYPE, genotype.dumps())


__all__ = [
    "GENOTYPE",
    "METRICS",
    "METRICS_HEADER",
    "PLOT_FILES",
    "RUN_FILES",
    "compact",
    "metrics_csv",
    "read_metrics",
    "write_genotype",
    "write_metrics",
]
