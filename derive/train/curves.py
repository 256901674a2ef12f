"""Learning curves of one or more runs in one figure: loss (train solid, test dashed) and error vs epoch.

matplotlib is an optional extra (`pip install 'derive[plot]'`), imported on first use through
`derive.plotting`, with the Agg canvas (no display, no global backend switch).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from derive.errors import UserError
from derive.fsutil import check_path, output_file
from derive.limits import TITLE_CHARS
from derive.plotting import log_scale_y, new_figure, save_figure
from derive.train.runfiles import read_metrics, read_summary

log = logging.getLogger(__name__)
FORMATS = (".png", ".pdf", ".svg")


def plain_text(text: str | None) -> str | None:
    """`text` as matplotlib shows it literally: no mathtext ($...$), so any title or folder name
    draws as typed instead of failing in the TeX-like parser."""
    return None if text is None else text.replace("$", r"\$")


def run_label(run_dir: Path, rows: list[dict[str, float]]) -> str:
    """'NAME (model, dataset): final E %, best B % @ k' from the run's files."""
    summary = read_summary(run_dir) or {}
    model = (
        (summary.get("model") or {}).get("spec") if isinstance(summary.get("model"), dict) else None
    )
    dataset = (
        (summary.get("dataset") or {}).get("name")
        if isinstance(summary.get("dataset"), dict)
        else None
    )
    what = ", ".join(str(x) for x in (Path(str(model)).name if model else None, dataset) if x)
    best = min(rows, key=lambda r: (-r["test_acc"], r["epoch"]))
    final = 100 * (1 - rows[-1]["test_acc"])
    name = run_dir.name or str(run_dir)
    return (
        f"{name}{f' ({what})' if what else ''}: final {final:.2f} %, "
        f"best {100 * (1 - best['test_acc']):.2f} % @ {int(best['epoch'])}"
    )


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Draw the curves of every run in `run_dirs` into `out` (.png, .pdf or .svg), atomically; return `out`."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"--out {str(out)!r}: the file name must end in {', '.join(FORMATS)}")
    output_file(out, "--out")  # a folder, a device or a read-only place: refused before drawing
    if title is not None and len(title) > TITLE_CHARS:
        raise UserError(f"--title is {len(title):,} characters long; at most {TITLE_CHARS}")
    runs = []
    for run_dir in map(Path, run_dirs):
        if not check_path(run_dir, "RUN_DIR").is_dir():
            raise UserError(f"run directory {str(run_dir)!r} does not exist")
        rows = read_metrics(run_dir)
        if rows:
            runs.append((run_dir, rows))
        else:
            log.warning("%s has no completed epoch yet; left out", run_dir)
    if not runs:
        raise UserError("no completed epoch to plot in any of the runs given")
    fig = new_figure((12, 4.2 + 0.22 * len(runs)), 130, "derive plot")
    from matplotlib.ticker import MaxNLocator

    ax_loss, ax_err = fig.subplots(1, 2)
    lr_drops: set[float] = set()
    values: dict[object, list[float]] = {ax_loss: [], ax_err: []}
    for i, (run_dir, rows) in enumerate(runs):
        color = f"C{i % 10}"
        epochs = [r["epoch"] for r in rows]
        curves = {
            (ax_loss, "-", 1.6): [r["train_loss"] for r in rows],
            (ax_loss, "--", 1.6): [r["test_loss"] for r in rows],
            (ax_err, "-", 1.8): [100 * (1 - r["test_acc"]) for r in rows],
            (ax_err, ":", 1.2): [100 * (1 - r["train_acc"]) for r in rows],
        }
        for (ax, style, width), ys in curves.items():
            label = run_label(run_dir, rows) if (ax, style) == (ax_err, "-") else None
            ax.plot(epochs, ys, color=color, lw=width, ls=style, label=plain_text(label))
            values[ax] += [y for y in ys if y > 0 and y == y and y != float("inf")]
        lr_drops.update(
            b["epoch"] - 0.5 for a, b in zip(rows, rows[1:], strict=False) if b["lr"] < a["lr"]
        )
    for ax in (ax_loss, ax_err):
        for x in sorted(lr_drops):
            ax.axvline(x, color="0.6", lw=0.8, ls=(0, (2, 3)), zorder=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if (
            values[ax] and max(values[ax]) / min(values[ax]) > 4
        ):  # wide range (long runs): log scale
            log_scale_y(ax)
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.set_title("loss: train (solid), test (dashed)")
    ax_err.set_ylabel("error (%)")
    ax_err.set_title("error: test (solid), train (dotted)")
    if lr_drops:
        ax_loss.text(
            0.01,
            0.01,
            "grey dashes: lr divided",
            transform=ax_loss.transAxes,
            fontsize=7,
            color="0.4",
        )
    fig.legend(
        loc="outside lower center", ncols=1 if len(runs) < 3 else 2, fontsize=8, frameon=False
    )
    if title:
        fig.suptitle(plain_text(title))
    return save_figure(fig, out)
