"""simulation_wellposed.png: error against depth, one row per κ; the optimizers' own errors
against iterations, then the networks learned from the teacher and from a random start.

matplotlib is imported on first use (`derive.plotting`), with the Agg canvas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from derive.experiments.wellposed.files import Grid
from derive.experiments.wellposed.study import ALGORITHMS
from derive.plotting import new_figure, save_figure

PANELS = (
    ("teacher", "optimizer_error", "optimizer after d iterations"),
    ("teacher", "test_error", "network of depth d, learned from the teacher"),
    ("random", "test_error", "network of depth d, learned from a random start"),
)


class ErrorSource(Protocol):
    def geometric(
        self, kappa: float, algorithm: str, depth: int, start: str, field: str
    ) -> float | None: ...


def plot_errors(runs: ErrorSource, grid: Grid, out: Path) -> Path:
    """Geometric means over the seeds, log scale, one line per algorithm."""
    labels = dict(ALGORITHMS)
    fig = new_figure((13.5, 3.6 * len(grid.kappas) + 0.6), 100, "the well-posed simulation plot")
    axes = fig.subplots(len(grid.kappas), len(PANELS), squeeze=False, sharey="row")
    for row, kappa in enumerate(grid.kappas):
        for column, (start, field, title) in enumerate(PANELS):
            ax = axes[row][column]
            for i, algorithm in enumerate(grid.algorithms):
                points = [
                    (d, runs.geometric(kappa, algorithm, d, start, field)) for d in grid.depths
                ]
                points = [(d, y) for d, y in points if y is not None]
                ax.plot(
                    [d for d, _ in points],
                    [y for _, y in points],
                    marker="o",
                    ms=3,
                    lw=1.3,
                    color=f"C{i}",
                    label=labels[algorithm],
                )
            ax.set_yscale("log")
            ax.set_xscale("log")
            ax.set_xticks(list(grid.depths), [str(d) for d in grid.depths])
            ax.minorticks_off()
            ax.grid(True, alpha=0.3)
            ax.set_title(f"κ = {kappa:g}: {title}", fontsize=9)
            ax.set_xlabel("d (iterations = layers)")
        axes[row][0].set_ylabel("test MSE / target variance")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=len(names) or 1, frameon=False)
    return save_figure(fig, out)
