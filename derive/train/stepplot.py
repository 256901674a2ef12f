"""Per-step curves of one or more runs (`derive plot --steps`): the batch loss and the gradient norm of
every optimizer step, from each run's steps.csv (`derive train --log-steps`), so spikes show.

matplotlib is an optional extra (`pip install 'derive[plot]'`), imported on first use (`derive.plotting`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from derive.errors import UserError
from derive.plotting import log_scale_y, new_figure, save_figure
from derive.train.curves import FORMATS
from derive.train.runfiles import STEPS, read_summary
from derive.train.steplog import read_steps


def _label(run_dir: Path, rows: list[dict[str, float]]) -> str:
    summary = read_summary(run_dir) or {}
    model = summary.get("model", {}).get("spec") if isinstance(summary.get("model"), dict) else None
    peak = max(rows, key=lambda r: r["loss"] if math.isfinite(r["loss"]) else math.inf)
    what = f" ({Path(str(model)).name})" if model else ""
    return (
        f"{run_dir.name or run_dir}{what}: peak loss {peak['loss']:.2f} at step {int(peak['step'])}"
    )


def _chance(run_dir: Path) -> float | None:
    summary = read_summary(run_dir) or {}
    dataset = summary.get("dataset")
    classes = dataset.get("num_classes") if isinstance(dataset, dict) else None
    return math.log(classes) if isinstance(classes, int) and classes > 1 else None


def plot_steps(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    title: str | None = None,
    log_y: bool = True,
) -> Path:
    """Draw the per-step loss (and gradient norm) of every run into `out`, atomically; return `out`."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"--out {str(out)!r}: the file name must end in {', '.join(FORMATS)}")
    if not out.parent.is_dir():
        raise UserError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist")
    runs = []
    for run_dir in map(Path, run_dirs):
        if not run_dir.is_dir():
            raise UserError(f"run directory {str(run_dir)!r} does not exist")
        if not (run_dir / STEPS).is_file():
            raise UserError(
                f"{str(run_dir)!r} has no {STEPS}: train it with `derive train ... --log-steps`"
            )
        rows = read_steps(run_dir)
        if rows:
            runs.append((run_dir, rows))
    if not runs:
        raise UserError(f"no logged step in any of the runs given ({STEPS} files are empty)")
    fig = new_figure((12, 4.2 + 0.22 * len(runs)), 130, "derive plot")
    ax_loss, ax_norm = fig.subplots(1, 2, sharex=True)
    chances = set()
    for i, (run_dir, rows) in enumerate(runs):
        color = f"C{i % 10}"
        steps = [r["step"] for r in rows]
        ax_loss.plot(
            steps, [r["loss"] for r in rows], color=color, lw=0.9, label=_label(run_dir, rows)
        )
        ax_norm.plot(steps, [r["grad_norm"] for r in rows], color=color, lw=0.9)
        chance = _chance(run_dir)
        if chance is not None:
            chances.add(round(chance, 6))
    for chance in sorted(chances):
        ax_loss.axhline(chance, color="0.4", lw=0.8, ls=":", zorder=0)
    if chances:
        ax_loss.text(
            0.99,
            0.99,
            "dotted: chance loss ln(classes)",
            transform=ax_loss.transAxes,
            fontsize=7,
            color="0.4",
            ha="right",
            va="top",
        )
    for ax in (ax_loss, ax_norm):
        ax.set_xlabel("optimizer step")
        ax.grid(True, alpha=0.3)
        if log_y:
            log_scale_y(ax)
    ax_loss.set_ylabel("training loss of the batch")
    ax_loss.set_title("loss per step")
    ax_norm.set_ylabel("gradient norm (L2, all parameters)")
    ax_norm.set_title("gradient norm per step")
    fig.legend(
        loc="outside lower center", ncols=1 if len(runs) < 3 else 2, fontsize=8, frameon=False
    )
    if title:
        fig.suptitle(title)
    return save_figure(fig, out)
