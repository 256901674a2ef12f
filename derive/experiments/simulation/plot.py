"""simulation.png: train MSE against epoch, one column per depth (whole run; second half zoomed).

matplotlib is imported on first use (`derive.plotting`), with the Agg canvas (no display, no global
backend switch).
Grey dashes mark the best constant prediction's MSE of the data (below it: memorization).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from derive.experiments.paper_tables import SIM_COLUMNS
from derive.experiments.simulation.config import NETWORKS
from derive.plotting import new_figure, save_figure


def plot_simulation(
    data: Mapping[str, object], curves: Sequence[Mapping[str, object]], out: str | Path
) -> Path:
    """Draw `curves` (curves.csv rows) into the PNG `out`, atomically; return `out`."""
    config = data["config"]
    depths = sorted(config["depths"])
    algorithms = [a for a in SIM_COLUMNS if a in config["algorithms"]]
    best_constant = data["data"]["best_constant_mse"]
    half = config["epochs"] / 2
    fig = new_figure((4.2 * len(depths) + 0.6, 7.4), 110, "the simulation plot")
    axes = fig.subplots(2, len(depths), squeeze=False)
    for column, depth in enumerate(depths):
        whole, late = axes[0][column], axes[1][column]
        late_values: list[float] = []
        for i, algorithm in enumerate(algorithms):
            points = sorted(
                (int(r["epoch"]), float(r["train_mse"]))
                for r in curves
                if r["algorithm"] == algorithm and r["depth"] == depth
            )
            points = [(e, y) for e, y in points if math.isfinite(y)]
            if not points:
                continue
            style = {"color": f"C{i}", "lw": 1.5, "label": NETWORKS[algorithm].label}
            whole.plot([max(e, 0.5) for e, _ in points], [y for _, y in points], **style)
            tail = [(e, y) for e, y in points if e >= half]
            late.plot([e for e, _ in tail], [y for _, y in tail], **style)
            late_values += [y for _, y in tail]
        for ax in (whole, late):
            ax.axhline(best_constant, color="0.5", lw=0.9, ls="--", zorder=0)
            ax.grid(True, alpha=0.3)
        whole.set_xscale("log")
        whole.set_title(f"depth {depth}")
        whole.set_xlabel("epoch (log; 0 drawn at 0.5)")
        late.set_title(f"depth {depth}: second half, zoomed")
        late.set_xlabel("epoch")
        if late_values:
            low, high = min(late_values + [best_constant]), max(late_values + [best_constant])
            pad = 0.08 * (high - low) or 1e-4
            late.set_ylim(low - pad, high + pad)
    axes[0][0].set_ylabel("train MSE")
    axes[1][0].set_ylabel("train MSE")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels) or 1, frameon=False)
    fig.suptitle(
        f"{config['samples']:,} samples, dim {config['dim']}, {config['epochs']:,} epochs; "
        f"dashes: best constant prediction (MSE {best_constant:.5f})",
        fontsize=10,
    )
    return save_figure(fig, out)
