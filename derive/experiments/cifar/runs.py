"""Read `derive train` run folders and group them for the CIFAR report.

A run folder holds metrics.csv and summary.json (derive.train.runfiles and derive.rundir read them). The test error of
a run is the last metrics.csv row's, 100 · (1 − test_acc); the summary says which data, augmentation,
recipe, seed, device and status. Runs that share model, data, augmentation and every recipe option but
the seed form a group; the group's mean and sample standard deviation use its completed runs only, and
its diverged and unfinished runs are counted beside them.
"""

from __future__ import annotations

import json
import math
import os
import shlex
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path

from derive.errors import UserError
from derive.experiments.stats import mean_std
from derive.fsutil import check_path
from derive.rundir import SUMMARY, load_summary
from derive.train.config import RUNTIME_FIELDS, TrainConfig
from derive.train.runfiles import METRICS, read_metrics

FULL_SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000)}
HEAD_SIZES = (5_085, 1_017)  # cifar-10-head: the first 1,017 images of each official batch file
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
STATUSES = ("completed", "diverged", "running", "interrupted", "failed")
# Options that do not shape the result or are paths: never part of a group's identity.
_NOT_RECIPE = {"seed", "model", "data_dir", "out"}


@dataclass(frozen=True)
class Run:
    """One run folder, as the report needs it."""

    path: str
    model: str  # options.model: a zoo name or a .py path
    dataset: str  # cifar10 | cifar100
    train_size: int
    test_size: int
    data_folder: str
    augment: bool
    epochs: int
    epochs_completed: int
    status: str
    seed: int
    final_error: float | None  # %, last metrics row; None when no epoch completed
    best_error: float | None
    best_epoch: int | None
    parameters: int | None
    device: str
    torch: str
    wall_seconds: float
    recipe: tuple[tuple[str, str], ...]  # every recipe option but the seed, canonical text
    options: dict[str, object] = field(compare=False, hash=False, default_factory=dict)

    @property
    def variant(self) -> str:
        """'full' (the papers' benchmark), 'head' (cifar-10-head, 10 %) or 'subset' (any other size)."""
        sizes = (self.train_size, self.test_size)
        if sizes == FULL_SIZES.get(self.dataset):
            return "full"
        if self.dataset == "cifar10" and (
            sizes == HEAD_SIZES or "cifar-10-head" in self.data_folder
        ):
            return "head"
        return "subset"

    @property
    def data_label(self) -> str:
        """'CIFAR-10(+)', 'CIFAR-10-head (10 % subset)', 'CIFAR-100 subset (200 train / 60 test)'."""
        name = DATASET_LABELS.get(self.dataset, self.dataset)
        if self.variant == "head":
            name = "CIFAR-10-head (10 % subset)"
        elif self.variant == "subset":
            name = f"{name} subset ({self.train_size:,} train / {self.test_size:,} test)"
        return name + ("(+)" if self.augment and self.variant == "full" else "")

    @property
    def counted(self) -> bool:
        """Whether the run enters the mean: completed, every epoch done, a finite error."""
        return (
            self.status == "completed"
            and self.epochs_completed == self.epochs
            and self.final_error is not None
            and math.isfinite(self.final_error)
        )


def _field(data: dict[str, object], path: str, kind: type | tuple[type, ...], where: str) -> object:
    value: object = data
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise UserError(f"{where}: summary.json lacks {path!r} (not a derive train run?)")
        value = value[key]
    ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in _as_tuple(kind))
    if not ok:
        raise UserError(f"{where}: summary.json has a malformed {path!r}: {value!r}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def read_run(path: str | Path) -> Run:
    """The Run of one folder; UserError (one line) if it is missing or not a derive train run."""
    where = str(path)
    folder = check_path(path, "run folder")
    if not folder.is_dir():
        raise UserError(f"run folder {where!r} does not exist or is not a folder")
    summary = load_summary(folder)  # UserError naming the file if it is damaged
    if summary is None:
        raise UserError(f"{where!r} is not a derive train run: no {SUMMARY}")
    status = _field(summary, "status", str, where)
    if status not in STATUSES:
        raise UserError(f"{where}: unknown run status {status!r} in {SUMMARY}")
    # A run that diverged, failed or was stopped in its first epoch has no metrics.csv yet.
    no_epoch = status != "completed" and not (folder / METRICS).exists()
    rows = [] if no_epoch else read_metrics(folder)  # UserError if missing or malformed
    options = _field(summary, "options", dict, where)
    epochs = _field(summary, "options.epochs", int, where)
    dataset = _field(summary, "dataset.name", str, where)
    last = rows[-1] if rows else None
    final = 100 * (1 - last["test_acc"]) if last else None
    best = min(rows, key=lambda r: (-r["test_acc"], r["epoch"])) if rows else None
    params = (
        summary.get("model", {}).get("parameters")
        if isinstance(summary.get("model"), dict)
        else None
    )
    recipe = tuple(
        sorted(
            (k, json.dumps(v, sort_keys=True))
            for k, v in options.items()
            if k not in _NOT_RECIPE and k not in RUNTIME_FIELDS
        )
    )
    return Run(
        path=where,
        model=str(_field(summary, "options.model", str, where)),
        dataset=str(dataset),
        train_size=int(_field(summary, "dataset.train_size", int, where)),
        test_size=int(_field(summary, "dataset.test_size", int, where)),
        data_folder=str(summary["dataset"].get("folder", "")),
        augment=bool(_field(summary, "options.augment", bool, where)),
        epochs=int(epochs),
        epochs_completed=len(rows),
        status=str(status),
        seed=int(_field(summary, "options.seed", int, where)),
        final_error=final,
        best_error=100 * (1 - best["test_acc"]) if best else None,
        best_epoch=int(best["epoch"]) if best else None,
        parameters=params if isinstance(params, int) and not isinstance(params, bool) else None,
        device=_device_text(_mapping(summary, "device")),
        torch=str(_mapping(summary, "software").get("torch", "?")),
        wall_seconds=float(sum(r["seconds"] for r in rows)),
        recipe=recipe,
        options=dict(options),
    )


def _mapping(summary: dict[str, object], key: str) -> dict[str, object]:
    value = summary.get(key)
    return value if isinstance(value, dict) else {}


def _device_text(device: dict[str, object]) -> str:
    """'cpu (Xeon, 1 threads), fp32': the device and the arithmetic actually used."""
    name = str(device.get("name", "?"))
    precision = device.get("precision")
    return f"{name}, {precision}" if precision else name


def find_runs(root: str | Path) -> list[Path]:
    """Every folder under `root` (itself included) holding a metrics.csv or a summary.json, sorted.

    UserError if there is none.
    """
    base = check_path(root, "--runs-root")
    if not base.is_dir():
        raise UserError(f"--runs-root {str(root)!r} does not exist or is not a folder")
    found = sorted(
        Path(dirpath) for dirpath, _, files in os.walk(base) if METRICS in files or SUMMARY in files
    )
    if not found:
        raise UserError(f"no run folder (with {METRICS} or {SUMMARY}) under {str(root)!r}")
    return found


def collect_runs(paths: list[str | Path], roots: list[str | Path] = ()) -> list[Run]:
    """Read every run folder given and found under `roots`, once each, sorted by path."""
    folders = [Path(p) for p in paths]
    for root in roots:
        folders += find_runs(root)
    if not folders:
        raise UserError("no run folders: give RUN_DIR arguments or --runs-root")
    seen: dict[Path, Path] = {}
    for folder in folders:
        seen.setdefault(folder.resolve(), folder)
    runs = [read_run(p) for p in seen.values()]
    return sorted(runs, key=lambda r: r.path)


@dataclass
class Group:
    """Runs of one model, data, augmentation and recipe, over seeds."""

    runs: list[Run]

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def counted(self) -> list[Run]:
        return [r for r in self.runs if r.counted]

    @property
    def diverged(self) -> int:
        return sum(r.status == "diverged" for r in self.runs)

    @property
    def unfinished(self) -> int:
        return sum(not r.counted and r.status != "diverged" for r in self.runs)

    def errors(self) -> list[float]:
        return [r.final_error for r in self.counted if r.final_error is not None]

    def mean_std(self) -> tuple[float | None, float | None]:
        """Mean and sample standard deviation (n − 1) of the counted runs' final errors."""
        return mean_std(self.errors())

    def seeds(self) -> list[int]:
        """Every run's seed, repeats kept (two runs with one seed are not two samples)."""
        return sorted(r.seed for r in self.runs)

    def devices(self) -> list[str]:
        return sorted({r.device for r in self.runs})


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by (data, augmentation, model, recipe), in a fixed order."""
    groups: dict[tuple[object, ...], list[Run]] = {}
    for run in runs:
        key = (
            run.dataset,
            run.variant,
            run.train_size,
            run.test_size,
            run.augment,
            run.model,
            run.recipe,
        )
        groups.setdefault(key, []).append(run)
    return [
        Group(sorted(v, key=lambda r: (r.seed, r.path)))
        for _, v in sorted(groups.items(), key=lambda kv: _order(kv[1][0]))
    ]


MODEL_ORDER = (
    "resnet56",
    "hbnet56",
    "resnet110",
    "hbnet110",
    "densenet40",
    "agdnet40",
    "densenet52",
    "agdnet52",
)


def _order(run: Run) -> tuple[object, ...]:
    model_rank = MODEL_ORDER.index(run.model) if run.model in MODEL_ORDER else len(MODEL_ORDER)
    return (
        ("full", "head", "subset").index(run.variant),
        run.dataset,
        run.augment,
        run.train_size,
        model_rank,
        run.model,
        run.recipe,
    )


def train_command(run: Run) -> str:
    """A `derive train` command line with the run's data, folder and every option that is not the default."""
    options = run.options
    parts = ["derive", "train", run.model, "--dataset", run.dataset]
    parts += ["--data-dir", str(options.get("data_dir", "DIR")), "--out", run.path]
    skip = {
        "model",
        "data_dir",
        "out",
        "dataset",
        "resume",
        "force",
        "download",
        "download_url",
        "progress_interval",
    }
    negatable = {"nesterov", "augment", "flip", "paper_init"}
    for f in fields(TrainConfig):
        if f.name in skip or f.name not in options:
            continue
        default = _default(f)
        value = options[f.name]
        if f.name == "lr_milestones":
            default, value = list(default or ()), list(value or ())
        if value == default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "model_args" and isinstance(value, dict):
            parts += _model_arg_words(value)
        elif f.name in negatable:
            parts.append(flag if value else f"--no-{f.name.replace('_', '-')}")
        elif isinstance(value, bool):
            if value:
                parts.append(flag)
        elif isinstance(value, list):
            parts += [flag, ",".join(map(_exact, value))]
        else:
            parts += [flag, _exact(value)]
    return shlex.join(parts)


def _default(f: Field[object]) -> object:
    """A TrainConfig field's default (a default_factory's value too), None if it has none."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def _model_arg_words(args: dict[str, object]) -> list[str]:
    """`--model-arg NAME=VALUE` words (NAME.KEY=VALUE for a mapping's entries)."""
    words: list[str] = []
    for name, value in args.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for key, item in items:
            target = name if key is None else f"{name}.{key}"
            words += ["--model-arg", f"{target}={_exact(item)}"]
    return words


def _exact(value: object) -> str:
    """A value as a command-line word that parses back to the same value (floats unrounded)."""
    return repr(value) if isinstance(value, float) else str(value)


def recipe_differences(run: Run) -> list[str]:
    """'name=value' for each recipe option (but epochs) that differs from derive train's default."""
    out = []
    for f in fields(TrainConfig):
        key = f.name
        if key in {"epochs", "augment", "dataset"} or key not in dict(run.recipe):
            continue
        default = _default(f)
        if key == "lr_milestones":
            default = list(default or ())
        if json.dumps(default, sort_keys=True) != dict(run.recipe)[key]:
            out.append(f"{key}={dict(run.recipe)[key]}")
    return out
