"""What every study's report shares: markdown tables, writing the report file, finding run folders.

from derive.experiments.tables import markdown_table, write_report
write_report("docs/results/x.md", "\\n".join(markdown_table(["a", "b"], [["1", "2"]])) + "\\n")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from derive.errors import UserError
from derive.fsutil import atomic_write_text, check_path, ensure_output_dir
from derive.rundir import SUMMARY

RULES = {"": "---", "l": ":---", "r": "---:", "c": ":---:"}
"""The separator cell of each column alignment: none given, left, right, centred."""


def markdown_table(
    head: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] | None = None
) -> list[str]:
    """The lines of a markdown table: header, separator, one line per row.

    `align` gives each column's alignment, "l", "r", "c" or "" (none), e.g. "lrr"; without it
    every separator cell is a plain `---`."""
    alignment = [""] * len(head) if align is None else list(align)
    if len(alignment) != len(head) or any(a not in RULES for a in alignment):
        raise ValueError(f"align {align!r}: one of l, r, c or '' per column of {len(head)}")
    rule = "|" + "".join(RULES[a] + "|" for a in alignment)
    lines = ["| " + " | ".join(head) + " |", rule]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def write_report(out: str | Path, text: str) -> Path:
    """Write `text` to `out` atomically (its folder created if missing); UserError if it cannot."""
    target = check_path(out, "--out")
    if not target.is_dir():  # a folder is refused by atomic_write_text, with the others
        ensure_output_dir(target.parent, "--out folder")
    return atomic_write_text(target, text)


def run_folders(root: str | Path, option: str) -> list[Path]:
    """The folders directly under `root` that hold a summary.json, sorted by name; UserError
    (naming the command-line `option` that gave `root`) when `root` is not a folder."""
    base = Path(root)
    if not base.is_dir():
        raise UserError(f"{option} {str(root)!r} is not a folder")
    return sorted(p for p in base.iterdir() if (p / SUMMARY).is_file())
