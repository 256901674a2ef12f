"""Wall-clock limits for SymPy computations (SIGALRM; no limit where that is unavailable).

A safety net so a user expression cannot make `integrate` or `simplify` run for ever. Limits nest:
the earliest deadline fires, and only the block that owns it stops (`limit.expired` becomes True);
outer blocks see the exception pass through. The built-in activations never come near their
limits, so their results never depend on time.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass


class TimeLimitExceeded(BaseException):
    """Raised inside a limited block when a deadline passes (BaseException: SymPy's broad
    `except Exception` handlers must not swallow it)."""

    def __init__(self, owner: Limit):
        super().__init__("time limit exceeded")
        self.owner = owner


@dataclass(eq=False)
class Limit:
    deadline: float
    expired: bool = False


_stack: list[Limit] = []
_previous_handler = None


def _usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _earliest() -> Limit:
    return min(_stack, key=lambda lim: lim.deadline)


def _on_alarm(signum, frame) -> None:  # noqa: ARG001
    if _stack:
        owner = _earliest()
        if time.monotonic() >= owner.deadline:
            raise TimeLimitExceeded(owner)


def _arm() -> None:
    remaining = max(_earliest().deadline - time.monotonic(), 1e-3)
    # Repeat every 0.2 s in case a bare `except:` in library code swallowed the first alarm.
    signal.setitimer(signal.ITIMER_REAL, remaining, 0.2)


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[Limit]:
    """Stop the block after `seconds` (None: no limit of its own); check `.expired` afterwards."""
    if seconds is None or not _usable():
        yield Limit(math.inf)
        return
    global _previous_handler
    limit = Limit(time.monotonic() + seconds)
    if not _stack:
        _previous_handler = signal.signal(signal.SIGALRM, _on_alarm)
    _stack.append(limit)
    _arm()
    try:
        yield limit
    except TimeLimitExceeded as exc:
        if exc.owner is not limit:
            raise
        limit.expired = True
    finally:
        _stack.remove(limit)
        if _stack:
            _arm()
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, _previous_handler)
