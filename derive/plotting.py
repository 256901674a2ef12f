"""The matplotlib plumbing every figure of the project shares: an Agg figure, a log axis, a save.

matplotlib is an optional extra (`derive[plot]`): it is imported on first use, and its absence is
a UserError with the caller's own hint, never an ImportError traceback. Figures are drawn on the
Agg canvas (no display) and written atomically, in the format the file name says.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from derive.errors import UserError
from derive.fsutil import atomic_write_bytes

INSTALL_HINT = "install derive[plot] (pip install 'derive[plot]')"


def new_figure(figsize: tuple[float, float], dpi: int, needed_by: str, hint: str = INSTALL_HINT):
    """An Agg-backed Figure with constrained layout; UserError '<needed_by> needs matplotlib: <hint>'."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError(f"{needed_by} needs matplotlib: {hint}") from None
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def log_scale_y(ax: Any, subs: tuple[float, ...] = (1, 2, 3, 5)) -> None:
    """A log y axis labelled in plain numbers (1, 2, 5, 10, ...), no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def save_figure(fig: Any, out: str | Path) -> Path:
    """Write `fig` to `out` atomically, in the format of its suffix (.png, .svg, .pdf)."""
    out = Path(out)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=out.suffix.lower().lstrip(".") or "png")
    return atomic_write_bytes(out, buffer.getvalue())
