"""argparse value types shared by the commands: a bad value becomes argparse's one-line usage error."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def number(
    kind: Callable[[str], float], what: str, low: float = 0, high: float | None = None
) -> Callable[[str], float]:
    """An argparse type: `kind(text)`, finite, at least `low` (and at most `high`); otherwise
    'expected WHAT, got TEXT'."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and value >= low and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse
