"""Run the well-posed study into a folder, resumably: finished runs are kept, the rest trained."""

from __future__ import annotations

import logging
from pathlib import Path

from derive.errors import UserError
from derive.experiments.wellposed.files import (
    RUNS,
    STUDY,
    Grid,
    read_runs,
    read_study,
    write_runs,
    write_study,
)
from derive.experiments.wellposed.study import ALGORITHMS, RunKey, Setting, run_one
from derive.fsutil import ensure_output_dir, remove_file

log = logging.getLogger("derive")

FULL = (
    Setting(),
    Grid(
        kappas=(10.0, 100.0),
        depths=(1, 2, 3, 5, 8, 12, 20, 40),
        seeds=(0, 1, 2, 3, 4, 5),
        algorithms=tuple(name for name, _ in ALGORITHMS),
    ),
)
"""The study as docs/results/simulation_wellposed.md reports it (about 40 CPU-minutes)."""

QUICK = (
    Setting(dim=4, train=32, test=32, steps=5),
    Grid(kappas=(10.0,), depths=(1, 3), seeds=(0, 1), algorithms=("gd", "nesterov")),
)
"""A reduced study that runs in seconds (the same code, tiny sizes)."""


def open_study(out: Path, setting: Setting, grid: Grid, resume: bool, force: bool) -> list:
    """Check and prepare `out`; the runs to keep. UserError (nothing written) on a conflict."""
    folder = ensure_output_dir(out, "--out")
    holds = (folder / STUDY).exists() or (folder / RUNS.name).exists()
    if holds and not (resume or force):
        raise UserError(f"{str(folder)!r} already holds a study: pass --resume or --force")
    if holds and force:
        for name in (STUDY, RUNS.name):
            remove_file(folder / name)
        holds = False
    if not holds:
        write_study(folder, setting, grid)
        return []
    recorded = read_study(folder)
    if recorded != (setting, grid):
        raise UserError(
            f"{str(folder)!r} holds a study with other settings; --resume needs the same ones"
        )
    return read_runs(folder)


def run_study(out: Path, quick: bool = False, resume: bool = False, force: bool = False) -> Path:
    """Every run of the grid not yet in out/runs.csv, appended as it finishes; returns `out`."""
    setting, grid = QUICK if quick else FULL
    done = open_study(out, setting, grid, resume, force)
    finished = {_key(r) for r in done}
    todo = [key for key in grid.keys() if key not in finished]
    log.info("wellposed: %d run(s) done, %d to go", len(done), len(todo))
    for number, key in enumerate(todo, start=1):
        result = run_one(key, setting)
        done.append(result)
        write_runs(out, done)
        log.info(
            "wellposed %d/%d: kappa %g %s depth %d %s seed %d: test %.3e (optimizer %.3e), %.1fs",
            number,
            len(todo),
            key.kappa,
            key.algorithm,
            key.depth,
            key.start,
            key.seed,
            result.test_error,
            result.optimizer_error,
            result.seconds,
        )
    return out


def _key(result: object) -> RunKey:
    r = result  # a RunResult
    return RunKey(r.kappa, r.algorithm, r.depth, r.start, r.seed)  # type: ignore[attr-defined]
