"""The numbers of the stability study, computed from its files (runs/*, probes/*), one run at a time.

`read_study(STUDY)` reads every run folder (metrics.csv, steps.csv, summary.json) and probe file
and returns, per run, the figures the doc tabulates: initial loss, peak loss and largest gradient
norm over the first PEAK_STEPS steps, the epoch losses, the final test accuracy, whether it spiked
and whether it failed to learn (criteria in derive.experiments.stability.plan).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from derive.errors import UserError
from derive.experiments.stability.jobs import PROBES, RUNS
from derive.experiments.stability.plan import (
    ALL_ARMS,
    FAILED_EPOCH,
    FAILED_LOSS,
    PEAK_STEPS,
    SPIKE_LOSS,
    Arm,
)
from derive.experiments.stability.probe import read_probe
from derive.readers import field
from derive.train.runfiles import load_summary, read_metrics
from derive.train.steplog import STEPS, read_steps

_NAME = re.compile(r"^(?P<arm>.+)-s(?P<seed>\d+)$")


@dataclass(frozen=True)
class RunFigures:
    """One run of the study, as the doc needs it."""

    path: str
    arm: Arm
    seed: int
    status: str
    epochs: int  # planned
    epochs_done: int
    steps_done: int
    initial_loss: float | None
    peak_loss: float | None  # max batch loss over steps 1..PEAK_STEPS
    peak_step: int | None
    max_grad_norm: float | None  # over steps 1..PEAK_STEPS
    epoch_losses: tuple[float, ...]  # train_loss per completed epoch
    final_test_acc: float | None  # percent
    warmup_steps_taken: int | None  # steps whose lr was below the schedule's (None: no warm-up)
    seconds: float
    device: str
    options: dict

    @property
    def complete(self) -> bool:
        return self.status in ("completed", "diverged") and (
            self.status == "diverged" or self.epochs_done == self.epochs
        )

    @property
    def spiked(self) -> bool | None:
        if self.status == "diverged":
            return True
        return None if self.peak_loss is None else self.peak_loss > SPIKE_LOSS

    @property
    def failed(self) -> bool | None:
        """Failed to learn (FAILED_EPOCH's loss above FAILED_LOSS); None when the budget is shorter."""
        if self.status == "diverged":
            return True
        if len(self.epoch_losses) < FAILED_EPOCH:
            return None
        return self.epoch_losses[FAILED_EPOCH - 1] > FAILED_LOSS


def parse_name(name: str) -> tuple[Arm, int] | None:
    match = _NAME.match(name)
    if not match:
        return None
    for a in ALL_ARMS:
        if a.name == match["arm"]:
            return a, int(match["seed"])
    return None


def read_run(folder: Path) -> RunFigures | None:
    """The figures of one run folder; None for a run that has not written its summary.json yet."""
    parsed = parse_name(folder.name)
    if parsed is None:
        raise UserError(f"{folder}: not a run of the study (expected ARM-sSEED with a known arm)")
    a, seed = parsed
    summary = load_summary(folder)  # UserError naming the file if it is damaged
    if summary is None:
        return None  # just started: `derive train` writes its summary first thing
    where = str(folder / "summary.json")
    options = field(summary, "options", dict, where)
    for key, kind in (("lr", (int, float)), ("warmup_steps", int), ("epochs", int)):
        if key in options:  # type: ignore[operator]
            field(summary, f"options.{key}", kind, where)
    if options.get("model") != a.model or options.get("seed") != seed:
        raise UserError(
            f"{folder}: summary.json says model {options.get('model')!r} seed {options.get('seed')!r}, "
            f"the folder name says {a.model} seed {seed}"
        )
    rows = read_metrics(folder) if (folder / "metrics.csv").is_file() else []
    steps = read_steps(folder) if (folder / STEPS).is_file() else []
    early = [r for r in steps if r["step"] <= PEAK_STEPS]
    finite = [r for r in early if math.isfinite(r["loss"])]
    peak = max(finite, key=lambda r: r["loss"]) if finite else None
    base_lr = float(options.get("lr", 0.1))
    warm = None
    if int(options.get("warmup_steps") or 0) > 0:
        warm = sum(1 for r in steps if r["lr"] < base_lr * (1 - 1e-6))
    device = summary.get("device") if isinstance(summary.get("device"), dict) else {}
    return RunFigures(
        path=str(folder),
        arm=a,
        seed=seed,
        status=str(summary.get("status")),
        epochs=int(options.get("epochs") or 0),
        epochs_done=len(rows),
        steps_done=len(steps),
        initial_loss=steps[0]["loss"] if steps else None,
        peak_loss=peak["loss"] if peak else None,
        peak_step=int(peak["step"]) if peak else None,
        max_grad_norm=max(
            (r["grad_norm"] for r in early if math.isfinite(r["grad_norm"])), default=None
        ),
        epoch_losses=tuple(r["train_loss"] for r in rows),
        final_test_acc=100 * rows[-1]["test_acc"] if rows else None,
        warmup_steps_taken=warm,
        seconds=float(sum(r["seconds"] for r in rows)),
        device=f"{device.get('name', '?')}, {device.get('precision', '?')}, {device.get('memory_format', '?')}",
        options=dict(options),
    )


def read_study(study: str | Path) -> tuple[list[RunFigures], dict[str, dict]]:
    """Every finished run of the study (sorted by arm order, then seed) and the probes of those runs
    (by run name), but a diverged run's. Runs still in progress are left out: the same finished
    files, the same doc."""
    root = Path(study)
    runs_dir = root / RUNS
    if not runs_dir.is_dir():
        raise UserError(f"{str(study)!r} is not a stability study folder (no {RUNS}/ inside)")
    read = [read_run(f) for f in sorted(runs_dir.iterdir()) if f.is_dir()]
    runs = [r for r in read if r is not None and r.complete]  # in progress: not a result yet
    if not runs:
        raise UserError(f"no finished run in {runs_dir}")
    order = {a.name: i for i, a in enumerate(ALL_ARMS)}
    runs.sort(key=lambda r: (order[r.arm.name], r.seed))
    probes = {}
    by_name = {Path(r.path).name: r for r in runs}
    if (root / PROBES).is_dir():
        for path in sorted((root / PROBES).glob("*.json")):
            run = by_name.get(path.stem)
            # the probe of a finished run; a diverged run's probe holds NaN rows, left out
            if run is not None and run.status != "diverged":
                probes[path.stem] = read_probe(path)
                check_probe_agrees(path, probes[path.stem], run, probes)
    return runs, probes


def check_probe_agrees(path: Path, probe: dict, run: RunFigures, probes: dict[str, dict]) -> None:
    """UserError unless the probe at `path` is of its run's model and seed, and replays as many
    steps as the study's other probes, with the blocks and parts of its arm's other probes (the
    report averages them index by index)."""
    model = probe.get("model", run.arm.model)
    if model != run.arm.model or probe["seed"] != run.seed:
        raise UserError(
            f"{str(path)!r} is a probe of {model!r} seed {probe['seed']!r}, "
            f"the file name says {run.arm.model} seed {run.seed}"
        )
    for name, other in probes.items():
        same_arm = name.rsplit("-s", 1)[0] == run.arm.name
        keys = ("steps", "blocks", "parts") if same_arm else ("steps",)
        for key in keys:
            if other.get(key) != probe.get(key):
                raise UserError(
                    f"{str(path)!r} disagrees with the probe {name!r} on {key} "
                    "(the report compares probes step by step and block by block)"
                )
