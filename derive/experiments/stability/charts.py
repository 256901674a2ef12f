"""The stability study's figures, drawn from its files (matplotlib, Agg; an optional extra).

- losses.png: per-step training loss of every seed, one panel per arm (main and dense arms);
- ablations.png: the same for ResNet-56 and its one-change-at-a-time variants;
- gradnorms.png: per-step gradient norm, median over seeds and the range, arms side by side;
- features.png: std of z_k against the block, at step 1 and after the probe's updates.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from derive.errors import UserError
from derive.experiments.stability.jobs import RUNS
from derive.experiments.stability.plan import (
    ABLATION_ARMS,
    ABLATION_BASELINE,
    CHANCE_LOSS,
    DENSE_ARMS,
    MAIN_ARMS,
    PREACT_ARMS,
    SPIKE_LOSS,
    Arm,
    arm,
)
from derive.experiments.stability.readout import read_study
from derive.plotting import log_scale_y, new_figure, save_figure
from derive.train.steplog import read_steps

NEEDED_BY = "drawing the figures"
HINT = "install derive[plot] (or give --no-figures)"


def _figure(figsize: tuple[float, float]):
    return new_figure(figsize, 110, NEEDED_BY, HINT)


def _log_axis(ax) -> None:
    log_scale_y(ax, subs=(1, 2, 5))


def _steps_by_arm(study: Path, runs) -> dict[str, list[list[dict[str, float]]]]:
    out: dict[str, list[list[dict[str, float]]]] = {}
    for r in runs:
        if r.complete and r.steps_done:
            out.setdefault(r.arm.name, []).append(read_steps(study / RUNS / Path(r.path).name))
    return out


def _loss_grid(study: Path, steps, arms: list[Arm], title: str, out: Path, columns: int) -> Path:
    shown = [a for a in arms if steps.get(a.name)]
    if not shown:
        raise UserError("no finished run with steps.csv to draw")
    rows = math.ceil(len(shown) / columns)
    fig = _figure((4.2 * columns, 3.0 * rows + 0.6))
    axes = fig.subplots(rows, columns, squeeze=False, sharey=True)
    top = max(
        max(r["loss"] for r in run if math.isfinite(r["loss"]))
        for a in shown
        for run in steps[a.name]
    )
    for ax, a in zip(axes.flat, shown, strict=False):
        for i, run in enumerate(steps[a.name]):
            ax.plot(
                [r["step"] for r in run],
                [r["loss"] for r in run],
                lw=0.7,
                color=f"C{i % 10}",
                alpha=0.8,
            )
        ax.axhline(CHANCE_LOSS, color="0.3", ls=":", lw=0.9)
        ax.axhline(SPIKE_LOSS, color="0.3", ls="--", lw=0.8)
        n = len(steps[a.name])
        ax.set_title(f"{a.label} ({n} seed{'s' if n != 1 else ''})", fontsize=9)
        ax.grid(True, alpha=0.3)
        _log_axis(ax)
        ax.set_ylim(1.2, max(top * 1.1, SPIKE_LOSS * 1.2))
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("optimizer step")
    for ax in axes[:, 0]:
        ax.set_ylabel("batch training loss")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, out)


def _band(
    runs: list[list[dict[str, float]]], key: str
) -> tuple[list[float], list[float], list[float], list[float]]:
    n = min(len(run) for run in runs)
    x, med, low, high = [], [], [], []
    for i in range(n):
        values = [run[i][key] for run in runs if math.isfinite(run[i][key])]
        if not values:
            continue
        x.append(runs[0][i]["step"])
        med.append(statistics.median(values))
        low.append(min(values))
        high.append(max(values))
    return x, med, low, high


# One panel per comparison: (title, arms drawn in it).
PANELS: tuple[tuple[str, list[str]], ...] = (
    ("depth 20", ["resnet20", "hbnet20"]),
    ("depth 56", ["resnet56", "hbnet56"]),
    ("depth 110", ["resnet110", "hbnet110", "resnet110-warmup"]),
    ("dense pair", [a.name for a in DENSE_ARMS]),
    ("depth 164, pre-activation", [a.name for a in PREACT_ARMS]),
    ("ResNet-56 variants", [ABLATION_BASELINE] + [a.name for a in ABLATION_ARMS]),
)


def _gradnorms(steps, out: Path) -> Path:
    panels = [(t, [n for n in names if steps.get(n)]) for t, names in PANELS]
    panels = [(t, names) for t, names in panels if names]
    fig = _figure((4.0 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (title, names) in zip(axes, panels, strict=True):
        for i, name in enumerate(names):
            x, med, low, high = _band(steps[name], "grad_norm")
            ax.plot(x, med, color=f"C{i}", lw=1.0, label=f"{arm(name).label} (median)")
            ax.fill_between(x, low, high, color=f"C{i}", alpha=0.15, lw=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.grid(True, alpha=0.3)
        _log_axis(ax)
        ax.legend(fontsize=6.5, frameon=False)
    axes[0].set_ylabel("gradient norm (median; band: min–max over seeds)")
    return save_figure(fig, out)


def _features(probes: dict[str, dict], out: Path) -> Path:
    by_arm: dict[str, list[dict]] = {}
    for name, p in sorted(probes.items()):
        by_arm.setdefault(name.rsplit("-s", 1)[0], []).append(p)
    panels = [(t, [n for n in names if by_arm.get(n)]) for t, names in PANELS]
    panels = [(t, names) for t, names in panels if names]
    if not panels:
        raise UserError("no probe to draw")
    fig = _figure((4.0 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, names) in zip(axes, panels, strict=True):
        for i, name in enumerate(names):
            mine = by_arm[name]
            blocks = len(mine[0]["blocks"])
            x = list(range(1, blocks + 1))
            for row, style, when in (
                (0, "-", "step 1"),
                (-1, "--", f"after {mine[0]['steps'] - 1} updates"),
            ):
                y = [statistics.fmean(p["z_std"][row][j] for p in mine) for j in range(blocks)]
                ax.plot(x, y, ls=style, color=f"C{i}", lw=1.1, label=f"{arm(name).label}, {when}")
            stages = [b[0] for b in mine[0]["blocks"]]
            for j in range(1, blocks):
                if stages[j] != stages[j - 1]:
                    ax.axvline(j + 0.5, color="0.7", lw=0.7, ls=":")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("block (stages split by dotted lines)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, frameon=False)
    axes[0].set_ylabel("std of z_k over the batch (mean over seeds)")
    return save_figure(fig, out)


def draw_figures(study: str | Path) -> list[Path]:
    """Draw every figure of the study into STUDY; return their paths."""
    root = Path(study)
    runs, probes = read_study(root)
    steps = _steps_by_arm(root, runs)
    written = [
        _loss_grid(
            root,
            steps,
            list(MAIN_ARMS + DENSE_ARMS + PREACT_ARMS),
            "per-step training loss, every seed (CIFAR-10-head, lr 0.1; dotted: chance ln 10, dashed: spike threshold)",
            root / "losses.png",
            columns=3,
        )
    ]
    if any(steps.get(a.name) for a in ABLATION_ARMS):
        written.append(
            _loss_grid(
                root,
                steps,
                [arm(ABLATION_BASELINE), *ABLATION_ARMS],
                "ResNet-56, one choice of the recipe changed at a time: per-step training loss, every seed",
                root / "ablations.png",
                columns=5,
            )
        )
    written.append(_gradnorms(steps, root / "gradnorms.png"))
    if probes:
        written.append(_features(probes, root / "features.png"))
    return written
