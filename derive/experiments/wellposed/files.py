"""The well-posed study's run files: study.json (the setting and the grid) and runs.csv (a row
per finished run, rewritten whole and atomically after each run, so a killed study resumes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from derive.errors import UserError
from derive.experiments.wellposed.study import ALGORITHMS, STARTS, RunKey, RunResult, Setting
from derive.fsutil import atomic_write_text
from derive.readers import read_json_object
from derive.rundir import Column, MetricsTable

STUDY = "study.json"


def _check_row(row: dict[str, object], number: int) -> None:
    if row["algorithm"] not in dict(ALGORITHMS) or row["start"] not in STARTS:
        raise ValueError(f"unknown algorithm or start in run {number}")
    if int(row["depth"]) < 1:  # type: ignore[call-overload]
        raise ValueError("depth < 1")


RUNS = MetricsTable(
    "runs.csv",
    (
        Column("kappa", "{:g}", float, finite=True),
        Column("algorithm", None, str),
        Column("depth", "{:d}", int),
        Column("start", None, str),
        Column("seed", "{:d}", int),
        Column("optimizer_error", "{:.6e}", float, finite=True),
        Column("initial_error", "{:.6e}", float, finite=True),
        Column("test_error", "{:.6e}", float),
        Column("train_error", "{:.6e}", float),
        Column("seconds", "{:.2f}", float, finite=True),
    ),
    "{path!r} is not a well-posed study's runs.csv (header {header})",
    check_row=_check_row,
)


@dataclass(frozen=True)
class Grid:
    """The runs of a study: every κ × seed × algorithm × start × depth."""

    kappas: tuple[float, ...]
    depths: tuple[int, ...]
    seeds: tuple[int, ...]
    algorithms: tuple[str, ...]

    def keys(self) -> list[RunKey]:
        """In the order they run: a seed at a time, so a stopped study holds whole seeds."""
        return [
            RunKey(kappa, algorithm, depth, start, seed)
            for seed in self.seeds
            for kappa in self.kappas
            for algorithm in self.algorithms
            for start in STARTS
            for depth in self.depths
        ]


def study_record(setting: Setting, grid: Grid) -> dict[str, object]:
    """What study.json holds: the setting and the grid, as JSON values."""
    return {
        "setting": asdict(setting),
        "grid": {k: list(v) for k, v in asdict(grid).items()},
    }


def write_study(folder: Path, setting: Setting, grid: Grid) -> None:
    atomic_write_text(folder / STUDY, json.dumps(study_record(setting, grid), indent=2) + "\n")


def read_study(folder: Path) -> tuple[Setting, Grid]:
    """The recorded setting and grid; UserError when missing or not a study's."""
    record = read_json_object(folder / STUDY)
    try:
        setting = Setting(**record["setting"])  # type: ignore[arg-type]
        grid = record["grid"]
        return setting, Grid(
            tuple(float(x) for x in grid["kappas"]),  # type: ignore[index]
            tuple(int(x) for x in grid["depths"]),  # type: ignore[index]
            tuple(int(x) for x in grid["seeds"]),  # type: ignore[index]
            tuple(str(x) for x in grid["algorithms"]),  # type: ignore[index]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(
            f"{str(folder / STUDY)!r} is not a well-posed study's record ({exc})"
        ) from None


def read_runs(folder: Path) -> list[RunResult]:
    """The finished runs in folder/runs.csv (none when the file does not exist yet)."""
    if not (folder / RUNS.name).is_file():
        return []
    return [RunResult(**row) for row in RUNS.read(folder)]  # type: ignore[arg-type]


def write_runs(folder: Path, runs: Sequence[RunResult]) -> None:
    RUNS.write(folder, [r.row() for r in runs])
