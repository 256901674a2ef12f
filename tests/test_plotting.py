"""derive.plotting: the figure plumbing shared by derive plot, the simulation and the stability study."""

from __future__ import annotations

import sys

import pytest

from derive.errors import UserError
from derive.plotting import log_scale_y, new_figure, save_figure

pytest.importorskip("matplotlib")


def test_missing_matplotlib_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"^drawing X needs matplotlib: install it$"):
        new_figure((2, 2), 50, "drawing X", "install it")


def test_figure_saved_atomically_in_the_format_of_its_name(tmp_path):
    fig = new_figure((2, 2), 50, "test")
    ax = fig.subplots()
    ax.plot([1, 2, 3], [1, 10, 100])
    log_scale_y(ax, subs=(1, 2, 5))
    assert ax.get_yscale() == "log"
    assert ax.yaxis.get_major_formatter()(20.0, 0) == "20"  # plain numbers, not 2×10¹
    png, svg = save_figure(fig, tmp_path / "a.png"), save_figure(fig, tmp_path / "a.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:500]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.svg"]  # no temp file left
