"""derive.experiments.tables.markdown_table: the lines written, with and without column alignment."""

from __future__ import annotations

import pytest

from derive.experiments.tables import markdown_table


def test_without_alignment_every_separator_cell_is_plain() -> None:
    lines = markdown_table(["a", "b"], [["1", "2"], ["3", "4"]])
    assert lines == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | 4 |"]


def test_alignment_sets_each_separator_cell() -> None:
    lines = markdown_table(["x", "y", "z", "w"], [["1", "2", "3", "4"]], align=["l", "r", "c", ""])
    assert lines[1] == "|:---|---:|:---:|---|"
    assert lines[0] == "| x | y | z | w |" and lines[2] == "| 1 | 2 | 3 | 4 |"
    assert markdown_table(["x", "y"], [], align="rr") == ["| x | y |", "|---:|---:|"]


@pytest.mark.parametrize("align", ["r", "rrr", "rx", ["right", "r"]])
def test_an_alignment_per_column_or_a_value_error(align) -> None:
    with pytest.raises(ValueError, match="per column of 2"):
        markdown_table(["x", "y"], [["1", "2"]], align=align)
