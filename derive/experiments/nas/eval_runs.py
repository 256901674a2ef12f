"""The evaluation runs of the NAS study: `derive train` runs of networks written by `derive nas network`.

An evaluation folder (`EVAL/<name>/`, e.g. docs/results/nas-eval/darts-s0) holds what
bench/nas_eval_study.sh keeps of a finished run: metrics.csv and summary.json (derive train's), the
network file it trained (`<module>.py`, named by summary.json's model spec) and, optionally,
cost.json (the CPU time of its sessions). The network file is read, never imported: its module
constants NAME, SPACE, GENOTYPE, CHANNELS and CELLS (derive's template writes them) say which
genotype was trained at which size, so the report can check that the evaluation of search run S
trained S's genotype. `<name>` is the search folder's name, or anything else for a reference network
(a built-in genotype such as darts_v2, trained at the same budget).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from derive.errors import UserError
from derive.experiments.tables import run_folders
from derive.nas.genotype import Genotype, genotype_of
from derive.readers import field, optional_field, read_json_object, read_text
from derive.train.runfiles import METRICS, SUMMARY, read_metrics

COST = "cost.json"
CONSTANTS: dict[str, type] = {
    "NAME": str,
    "SPACE": str,
    "GENOTYPE": dict,
    "CHANNELS": int,
    "CELLS": int,
}
NETWORK_BYTES = 10_000_000  # a generated network file is about 10 KB
# Entries of summary.json the report reads when they are there and not null, and their types.
_OPTIONAL_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("options.seed", int),
    ("options.epochs", int),
    ("epochs", int),
    ("status", str),
    ("model.spec", str),
    ("model.parameters", int),
    ("model.parameters_without_auxiliary", int),
    ("dataset.train_size", int),
    ("dataset.test_size", int),
)
# Options of derive train that define an evaluation's budget (the rest are runtime choices).
BUDGET = (
    "recipe_name",
    "epochs",
    "batch_size",
    "lr",
    "lr_schedule",
    "momentum",
    "weight_decay",
    "cutout",
    "auxiliary_weight",
    "drop_path",
    "grad_clip",
)


@dataclass(frozen=True)
class EvalRun:
    """One evaluation folder, as the report needs it."""

    name: str
    network: str  # the generated module's NAME
    genotype: Genotype
    channels: int
    cells: int
    seed: int
    status: str
    epochs: int
    epochs_completed: int
    test_error: float  # percent, after the last epoch (metrics.csv)
    parameters: int  # without the auxiliary head (DARTS's count)
    wall_seconds: float  # the seconds column: training and evaluation of the completed epochs
    cpu_seconds: float | None  # cost.json, when measured
    budget: tuple[tuple[str, object], ...]  # BUDGET's options, in order
    train_images: int
    test_images: int
    data_folder: str

    @property
    def completed(self) -> bool:
        return self.status == "completed" and self.epochs_completed == self.epochs


def network_constants(path: Path) -> dict[str, object]:
    """CONSTANTS of a generated network file, read as literals (UserError if one is missing)."""
    text = read_text(path, NETWORK_BYTES)  # UserError naming the file if it is damaged
    try:
        tree = ast.parse(text, filename=str(path))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise UserError(f"cannot read the network file {str(path)!r} ({exc})") from None
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in CONSTANTS:
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except (ValueError, TypeError, RecursionError, MemoryError):
                    pass
    missing = [name for name in CONSTANTS if name not in found]
    if missing:
        raise UserError(
            f"{str(path)!r} is not a network written by `derive nas network` "
            f"(no {', '.join(missing)})"
        )
    for name, kind in CONSTANTS.items():
        field(found, name, kind, f"the network file {str(path)!r}")
    return found


def read_eval_run(folder: Path) -> EvalRun:
    """One evaluation folder (UserError when a file is missing or not a NAS network's run)."""
    where = str(folder / SUMMARY)
    summary = read_json_object(folder / SUMMARY)  # UserError naming the file if damaged
    if not isinstance(summary.get("options"), dict):
        raise UserError(f"{where} is not a `derive train` summary")
    for path, kind in _OPTIONAL_FIELDS:
        optional_field(summary, path, kind, where)
    model = summary.get("model") if isinstance(summary.get("model"), dict) else {}
    spec = str(model.get("spec") or "")
    if not spec.endswith(".py"):
        raise UserError(
            f"{folder}: the run trained {spec!r}, not a network file of derive nas network"
        )
    constants = network_constants(folder / Path(spec).name)
    source = f"{folder / Path(spec).name} GENOTYPE"
    genotype = genotype_of(constants["GENOTYPE"], source)
    rows = read_metrics(folder / METRICS)
    if not rows:
        raise UserError(f"{folder}/{METRICS} has no completed epoch")
    cost = None
    if (folder / COST).is_file():
        path = folder / COST
        measured = read_json_object(path)
        cost = float(field(measured, "process_cpu_seconds", (int, float), str(path)))  # type: ignore[arg-type]
    options = summary["options"]
    data = summary.get("dataset") if isinstance(summary.get("dataset"), dict) else {}
    return EvalRun(
        name=folder.name,
        network=str(constants["NAME"]),
        genotype=genotype,
        channels=int(constants["CHANNELS"]),  # type: ignore[arg-type]
        cells=int(constants["CELLS"]),  # type: ignore[arg-type]
        seed=int(options.get("seed", 0)),
        status=str(summary.get("status")),
        epochs=int(summary.get("epochs") or options.get("epochs") or 0),
        epochs_completed=len(rows),
        test_error=100 * (1 - rows[-1]["test_acc"]),
        parameters=int(model.get("parameters_without_auxiliary") or model.get("parameters") or 0),
        wall_seconds=sum(row["seconds"] for row in rows),
        cpu_seconds=cost,
        budget=tuple((key, options.get(key)) for key in BUDGET),
        train_images=int(data.get("train_size") or 0),
        test_images=int(data.get("test_size") or 0),
        data_folder=str(data.get("folder") or options.get("data_dir") or ""),
    )


def collect_evals(root: str | Path) -> dict[str, EvalRun]:
    """Every evaluation folder directly under `root` (those holding a summary.json), by name."""
    return {folder.name: read_eval_run(folder) for folder in run_folders(root, "--eval")}


__all__ = ["BUDGET", "COST", "EvalRun", "collect_evals", "network_constants", "read_eval_run"]
