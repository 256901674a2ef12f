"""argparse value types shared by the commands: a bad value becomes argparse's one-line usage error."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def number(kind: Callable[[str], float], what: str, low: float = 0) -> Callable[[str], float]:
    """An argparse type: `kind(text)`, finite and at least `low`; otherwise 'expected WHAT, got TEXT'."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and value >= low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse
