"""Whether a source is what `ruff format` (line length 100, no configuration read) leaves unchanged."""

from __future__ import annotations

import subprocess

from ruff.__main__ import find_ruff_bin

from derive.codegen.generate import LINE_LENGTH


def is_formatted(source: str) -> bool:
    """`ruff format --check` on the source: True when formatting would change nothing."""
    command = [
        find_ruff_bin(),
        "format",
        "--check",
        "--isolated",
        f"--line-length={LINE_LENGTH}",
        "-",
    ]
    return subprocess.run(command, input=source, capture_output=True, text=True).returncode == 0
