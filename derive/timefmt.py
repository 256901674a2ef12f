"""How long something takes or has left, in words a progress line can show ("about 4 min left")."""

from __future__ import annotations

import math


def duration(seconds: float) -> str:
    """'45 s' below 90 s, '12 min' below 90 minutes, '3.4 h' above; '?' when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def time_left(seconds: float) -> str:
    """'about 12 min left' (the estimate every progress line of derive shows)."""
    return f"about {duration(seconds)} left"
