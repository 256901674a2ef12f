"""The files of a search run directory, each written atomically.

- metrics.csv: a row per epoch — epoch, train_loss, train_acc (the weight half, augmented, during
  the epoch), val_loss, val_acc (the architecture half, eval mode, after the epoch), arch_loss (mean
  L_val the architecture steps saw), lr, seconds, and genotype: the genotype derived after the epoch
  as compact JSON (CSV-quoted).
- genotype.json: the genotype after the last completed epoch (`Genotype.dumps()`).
- summary.json, checkpoint.pt: as `derive train` (derive.rundir, derive.train.checkpoint).
- cells.dot, cells.png: the plot of the cells (derive.nas.cellplot).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from derive.fsutil import atomic_write_text
from derive.nas.genotype import Genotype, from_json
from derive.readers import parse_json
from derive.rundir import CHECKPOINT, SUMMARY, Column, MetricsTable, RunDirectory

METRICS = "metrics.csv"
GENOTYPE = "genotype.json"
PLOT_FILES = ("cells.dot", "cells.png")
RUN_FILES = (METRICS, SUMMARY, CHECKPOINT, GENOTYPE, *PLOT_FILES)
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


def _genotype(text: str) -> Genotype:
    return from_json(parse_json(text, "the genotype column"))


# Numbers are read as floats and must be finite (a search stops before it writes a NaN row).
TABLE = MetricsTable(
    METRICS,
    (
        *(Column(name, fmt, float, finite=True) for name, fmt in _FORMATS.items()),
        Column("genotype", None, _genotype),
    ),
    not_ours="{path!r} is not a search metrics file ({header})",
)
METRICS_HEADER = TABLE.header


def run_directory(run_dir: Path) -> RunDirectory:
    """The run folder of `derive nas search`."""
    return RunDirectory(run_dir, RUN_FILES)


def metrics_csv(history: Sequence[Mapping[str, object]]) -> str:
    return TABLE.text(history)


def write_metrics(run_dir: Path, history: Sequence[Mapping[str, object]]) -> None:
    TABLE.write(run_dir, history)


def read_metrics(path: str | Path) -> list[dict[str, object]]:
    """Rows of a search metrics.csv (numbers as floats, genotype as a Genotype); UserError if malformed."""
    return TABLE.read(path)


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
    "run_directory",
    "write_genotype",
    "write_metrics",
]
