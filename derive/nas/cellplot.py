"""A picture of the searched cells in the style of the papers' figures (DARTS Fig. 4-5, SCIS Fig. 3).

Inputs c_{k−2}, c_{k−1} on the left, the intermediate nodes, the output c_k (their concatenation)
on the right, an arrow per kept operation labelled with its name. `cells.dot` (Graphviz source) is
always written; `cells.png` is rendered by Graphviz `dot` when installed, else by matplotlib (the
`plot` extra), else skipped with a log line.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from derive.fsutil import atomic_write_bytes, atomic_write_text
from derive.nas.genotype import Gene, Genotype

log = logging.getLogger(__name__)

_COLOURS = {
    "none": "gray",
    "max_pool_3x3": "darkorange",
    "avg_pool_3x3": "goldenrod",
    "skip_connect": "forestgreen",
    "neg_skip_connect": "firebrick",
    "sep_conv_3x3": "royalblue",
    "sep_conv_5x5": "navy",
    "dil_conv_3x3": "purple",
    "dil_conv_5x5": "magenta",
}


def _name(index: int) -> str:
    return ("c_{k-2}", "c_{k-1}")[index] if index < 2 else str(index - 2)


def dot_source(genotype: Genotype) -> str:
    """Graphviz source with one cluster per cell type (deterministic text)."""
    lines = ["digraph cells {", "  rankdir=LR;", '  node [style=filled, fontname="Helvetica"];']
    for cell in ("normal", "reduce"):
        gene, concat = genotype.cell(cell == "reduce")
        lines.append(f"  subgraph cluster_{cell} {{")
        lines.append(f'    label="{cell} cell ({genotype.space})";')
        for i in range(len(gene) + 2):
            colour = "darkseagreen2" if i < 2 else "lightblue"
            lines.append(f'    {cell}_{i} [label="{_name(i)}", fillcolor={colour}, shape=box];')
        lines.append(f'    {cell}_out [label="c_{{k}}", fillcolor=palegoldenrod, shape=box];')
        for node, pairs in enumerate(gene):
            for op, source in pairs:
                lines.append(
                    f'    {cell}_{source} -> {cell}_{node + 2} [label="{op}", '
                    f"color={_COLOURS.get(op, 'black')}];"
                )
        for index in concat:
            lines.append(f"    {cell}_{index} -> {cell}_out [color=gray];")
        lines.append("  }")
    return "\n".join(lines + ["}"]) + "\n"


def write_plot(genotype: Genotype, out_dir: Path) -> list[Path]:
    """Write cells.dot and, if a renderer exists, cells.png; return the paths written."""
    written = [atomic_write_text(out_dir / "cells.dot", dot_source(genotype))]
    png = out_dir / "cells.png"
    dot = shutil.which("dot")
    if dot:
        result = subprocess.run(
            [dot, "-Tpng"], input=dot_source(genotype).encode(), capture_output=True, timeout=60
        )
        if result.returncode == 0:
            written.append(atomic_write_bytes(png, result.stdout))
            return written
        log.warning("dot failed (%s); drawing with matplotlib", result.stderr.decode()[:200])
    try:
        data = _matplotlib_png(genotype)
    except ImportError:
        log.info("neither graphviz nor matplotlib is installed: wrote only %s", written[0])
        return written
    written.append(atomic_write_bytes(png, data))
    return written


Positions = dict[int | str, tuple[float, float]]
"""Where each node of a cell is drawn: DARTS input index, or "out" for c_k."""


def _positions(gene: Gene) -> Positions:
    pos: Positions = {0: (0.0, 0.0), 1: (0.0, 2.0)}
    for node in range(len(gene)):
        pos[node + 2] = (1.5 + 1.3 * node, 3.0 if node % 2 else -1.0)
    pos["out"] = (1.5 + 1.3 * len(gene), 1.0)
    return pos


def _matplotlib_png(genotype: Genotype) -> bytes:
    """Both cells drawn with matplotlib, as PNG bytes; ImportError when it is not installed."""
    # deferred: matplotlib is an optional dependency (the `plot` extra)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    fig, axes = plt.subplots(2, 1, figsize=(9, 8))
    for ax, cell in zip(axes, ("normal", "reduce"), strict=True):
        gene, concat = genotype.cell(cell == "reduce")
        pos = _positions(gene)
        _draw_operations(ax, gene, pos, FancyArrowPatch)
        _draw_nodes(ax, concat, pos, FancyArrowPatch)
        ax.set_title(f"{cell} cell — space {genotype.space}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _draw_operations(ax: Any, gene: Gene, pos: Positions, arrow: type) -> None:
    """An arrow per kept operation, labelled with its name at the middle of its arc."""
    seen: dict[tuple[int, int], int] = {}
    for node, pairs in enumerate(gene):
        for op, source in pairs:
            key = (source, node + 2)
            bend = 0.15 + 0.25 * seen.get(key, 0)
            seen[key] = seen.get(key, 0) + 1
            start, end = pos[source], pos[node + 2]
            colour = _COLOURS.get(op, "black")
            ax.add_patch(
                arrow(
                    start,
                    end,
                    connectionstyle=f"arc3,rad={bend}",
                    arrowstyle="-|>",
                    mutation_scale=12,
                    color=colour,
                    shrinkA=14,
                    shrinkB=14,
                )
            )
            # the midpoint of matplotlib's arc3 Bézier curve (control point mid + rad·(dy, −dx))
            dx, dy = end[0] - start[0], end[1] - start[1]
            mx = (start[0] + end[0]) / 2 + bend * dy / 2
            my = (start[1] + end[1]) / 2 - bend * dx / 2
            ax.text(
                mx,
                my,
                op,
                fontsize=7,
                color=colour,
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none"},
            )


def _draw_nodes(ax: Any, concat: Sequence[int], pos: Positions, arrow: type) -> None:
    """The inputs, the intermediate nodes and the output c_k, with the concatenation's arrows."""
    for index in concat:
        ax.add_patch(
            arrow(
                pos[index],
                pos["out"],
                arrowstyle="-|>",
                color="lightgray",
                mutation_scale=10,
                shrinkA=14,
                shrinkB=14,
            )
        )
    for key, (x, y) in pos.items():
        label = "c_k" if key == "out" else _name(int(key))
        fill = "#cde8cd" if key in (0, 1) else "#f0eab0" if key == "out" else "#cfe3f5"
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round", "facecolor": fill, "edgecolor": "gray"},
        )
    ax.set_xlim(-0.8, pos["out"][0] + 0.8)
    ax.set_ylim(-2.2, 4.2)
    ax.set_aspect("equal")
    ax.set_axis_off()


__all__ = ["dot_source", "write_plot"]
