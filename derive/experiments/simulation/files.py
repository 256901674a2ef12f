"""The files of a simulation output folder, and reading them back (for `derive report --simulation`).

- curves.csv: algorithm,depth,epoch,train_mse,batch_loss_mean,seconds — every evaluation of every run
- final.csv: algorithm,depth,status,epochs_completed,final_train_mse,parameters,seconds (ours only)
- simulation.json: every option, the data's reference values, device, versions, command, wall time,
  status ("running" until the end, then "completed") and the per-run results
- simulation.md: our final MSE table beside the papers' printed Table 2 / B1, with the settings
- simulation.png: train MSE against epoch, one panel per depth

Every file is written atomically; curves.csv and simulation.json are rewritten as the run goes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import platform
from pathlib import Path

from derive import __version__
from derive.devices import thread_settings
from derive.errors import UserError
from derive.experiments.simulation import plot, table
from derive.experiments.simulation.config import SimulationConfig
from derive.experiments.simulation.results import SimulationResult
from derive.fsutil import atomic_write_text, check_path, remove_file
from derive.readers import read_json_object
from derive.rundir import Column, MetricsTable, RunDirectory, json_text, optional_float

CURVES = "curves.csv"
FINAL = "final.csv"
JSON = "simulation.json"
MARKDOWN = "simulation.md"
PLOT = "simulation.png"
OUTPUTS = (CURVES, FINAL, JSON, MARKDOWN, PLOT)
CURVES_TABLE = MetricsTable(
    CURVES,
    (
        Column("algorithm", None, str),
        Column("depth", "{:d}", int),
        Column("epoch", "{:d}", int),
        Column("train_mse", "{:.8f}"),
        Column("batch_loss_mean", "{:.8f}", optional_float),
        Column("seconds", "{:.3f}"),
    ),
    not_ours="{path!r} is not a derive simulation curves file",
)
FINAL_TABLE = MetricsTable(
    FINAL,
    (
        Column("algorithm", None, str),
        Column("depth", "{:d}", int),
        Column("status", None, str),
        Column("epochs_completed", "{:d}", int),
        Column("final_train_mse", "{:.8f}", optional_float),
        Column("parameters", "{:d}", int),
        Column("seconds", "{:.3f}"),
    ),
    not_ours="{path!r} is not a derive simulation final file",
)
CURVES_HEADER = CURVES_TABLE.header
FINAL_HEADER = FINAL_TABLE.header
HOLDS_SIMULATION = (
    "{folder!r} already holds a simulation: add --resume to continue it, --force to start over, "
    "or give another --out"
)


def run_directory(out_dir: str | Path) -> RunDirectory:
    """The output folder of `derive simulate`."""
    return RunDirectory(Path(out_dir), OUTPUTS, holds_message=HOLDS_SIMULATION, what="--out")


def curves_csv(result: SimulationResult) -> str:
    return CURVES_TABLE.text([dataclasses.asdict(p) for p in result.curves])


def final_csv(result: SimulationResult) -> str:
    return FINAL_TABLE.text([dataclasses.asdict(r) for r in result.runs])


def summary(result: SimulationResult, status: str, command: str | None) -> dict[str, object]:
    """The content of simulation.json."""
    import torch  # deferred: torch is slow to import, and reading a folder back needs no torch

    return {
        "status": status,
        "command": command,
        "config": result.config.to_dict(),
        "data": {
            "z0_and_f": "independent draws from N(0, I), z0 first, one torch.Generator seeded with --seed",
            "mean_f_squared": result.data.mean_f_squared,
            "best_constant_mse": result.data.best_constant_mse,
            "mean_z0_squared": result.data.mean_x0_squared,
        },
        "loss": "torch MSELoss: mean over samples and coordinates of (Net(z0) - f)^2",
        "device": result.device,
        "software": {
            "derive": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_threads": thread_settings(),
        },
        "wall_time_seconds": result.wall_seconds,
        "runs": [
            {
                "algorithm": r.algorithm,
                "depth": r.depth,
                "status": r.status,
                "epochs_completed": r.epochs_completed,
                "final_train_mse": r.final_train_mse,
                "parameters": r.parameters,
                "train_seconds": r.seconds,
                "compile_seconds": r.compile_seconds,
                "device": r.device,
            }
            for r in result.runs
        ],
    }


def _json(data: dict[str, object]) -> str:
    """simulation.json's text: strict JSON (a non-finite number becomes null)."""
    return json_text(data)


def write_progress(out: Path, result: SimulationResult, status: str, command: str | None) -> None:
    """Rewrite curves.csv and simulation.json (after each evaluation and each run)."""
    atomic_write_text(out / CURVES, curves_csv(result))
    atomic_write_text(out / JSON, _json(summary(result, status, command)))


def _plot(data: dict[str, object], curves: list[dict[str, object]], out: Path) -> str | None:
    """Draw simulation.png; its name, or None (with a warning) when matplotlib is missing."""
    try:
        plot.plot_simulation(data, curves, out / PLOT)
    except UserError as exc:  # no matplotlib: keep the table, skip the picture
        logging.getLogger("derive.simulate").warning("no %s: %s", PLOT, exc)
        remove_file(out / PLOT)
        return None
    return PLOT


def write_final(out: Path, result: SimulationResult, command: str | None) -> None:
    """Write every output file: the data first, then the plot (if matplotlib is there) and the table."""
    data = summary(result, "completed", command)
    atomic_write_text(out / CURVES, curves_csv(result))
    atomic_write_text(out / FINAL, final_csv(result))
    atomic_write_text(out / JSON, _json(data))
    plot_name = _plot(data, read_curves_text(curves_csv(result)), out)
    atomic_write_text(out / MARKDOWN, table.simulation_markdown(data, plot_name=plot_name))


def read_curves_text(text: str, where: str = CURVES) -> list[dict[str, object]]:
    """Rows of a curves.csv text; UserError if malformed."""
    return CURVES_TABLE.read_text(text, where)


def read_simulation(folder: str | Path) -> tuple[dict[str, object], list[dict[str, object]]]:
    """(simulation.json, curves.csv rows) of an output folder; UserError if missing or malformed."""
    folder = check_path(folder, "simulation folder")
    if not folder.is_dir():
        raise UserError(f"simulation folder {str(folder)!r} does not exist")
    if not (folder / JSON).is_file():
        raise UserError(f"{str(folder)!r} is not a derive simulation folder (no {JSON})")
    data = read_json_object(folder / JSON)
    try:
        curves_text = (folder / CURVES).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"{str(folder)!r} is not a derive simulation folder ({exc.strerror or exc}: "
            f"{Path(exc.filename or '').name})"
        ) from None
    check_summary(data, str(folder / JSON))
    return data, read_curves_text(curves_text, str(folder / CURVES))


# What each run entry of simulation.json holds: key -> accepted types (None: may be null).
RUN_FIELDS: dict[str, tuple[type | None, ...]] = {
    "algorithm": (str,),
    "depth": (int,),
    "status": (str,),
    "epochs_completed": (int,),
    "final_train_mse": (int, float, None),
    "parameters": (int,),
    "train_seconds": (int, float),
}


def _is(value: object, kinds: tuple[type | None, ...]) -> bool:
    if value is None:
        return None in kinds
    if isinstance(value, bool):
        return False
    ok = isinstance(value, tuple(k for k in kinds if k is not None))
    return ok and (not isinstance(value, float) or math.isfinite(value))


def check_summary(data: object, where: str) -> None:
    """UserError (one line) unless `data` is a simulation.json that the table, plot and resume can use."""
    if not (
        isinstance(data, dict)
        and isinstance(data.get("config"), dict)
        and isinstance(data.get("runs"), list)
        and isinstance(data.get("data"), dict)
    ):
        raise UserError(f"{where!r} is not a derive simulation summary")
    config = dict(data["config"])
    derived = {k: config.pop(k, None) for k in ("effective_batch_size", "eval_every_effective")}
    try:
        rebuilt = SimulationConfig(
            **{
                **config,
                "algorithms": tuple(config["algorithms"]),
                "depths": tuple(config["depths"]),
            }
        )
    except (KeyError, TypeError, ValueError, UserError) as exc:
        raise UserError(f"{where!r}: malformed config ({exc})") from None
    if list(rebuilt.algorithms) != config["algorithms"] or derived["effective_batch_size"] != (
        rebuilt.effective_batch_size
    ):
        raise UserError(f"{where!r}: malformed config (algorithm names or batch size)")
    reference = data["data"]
    for key in ("mean_f_squared", "best_constant_mse"):
        if not _is(reference.get(key), (int, float)):
            raise UserError(f"{where!r}: malformed data.{key} {reference.get(key)!r}")
    for number, run in enumerate(data["runs"], start=1):
        if not isinstance(run, dict):
            raise UserError(f"{where!r}: run {number} is not an object")
        for key, kinds in RUN_FIELDS.items():
            if not _is(run.get(key), kinds):
                raise UserError(f"{where!r}: run {number} has a malformed {key} {run.get(key)!r}")


def render(folder: str | Path) -> Path:
    """Redraw simulation.md and simulation.png of an output folder from its simulation.json and curves.csv.

    For a run that was stopped before the end (the table then says "Status: running"), or after a
    change to the table's layout. Returns the markdown's path.
    """
    folder = Path(folder)
    data, curves = read_simulation(folder)
    plot_name = _plot(data, curves, folder)
    return atomic_write_text(
        folder / MARKDOWN, table.simulation_markdown(data, plot_name=plot_name)
    )
