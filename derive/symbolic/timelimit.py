"""Wall-clock limits for SymPy computations (SIGALRM; no limit where that is unavailable).

A safety net so a user expression cannot make `integrate` or `simplify` run for ever. Limits nest:
the earliest deadline fires, and only the block that owns it stops (`limit.expired` becomes True);
outer blocks see the exception pass through. The built-in activations never come near their
limits, so their results never depend on time.

A `budget` is one wall-clock deadline for a whole command (`derive activation --expr`): inside it,
every `time_limit` block ends by the budget's deadline at the latest, `time_limit(None)` included.
All blocks cut short by the budget share its deadline, and the outermost of them owns it: an
analysis wrapped in `time_limit(None)` stops as a whole and reports itself undecided (TIME_LIMIT);
code that loops over many points also asks `budget_spent()` between them.
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


@dataclass(frozen=True)
class Budget:
    """The deadline (time.monotonic) of the current wall-clock budget."""

    deadline: float

    def spent(self) -> bool:
        return time.monotonic() >= self.deadline


#: How an analysis that the budget stopped is reported.
TIME_LIMIT = "undecided (time limit)"

_stack: list[Limit] = []
_previous_handler = None
_budget: Budget | None = None


@contextlib.contextmanager
def budget(seconds: float | None) -> Iterator[None]:
    """One wall-clock budget of `seconds` for everything inside (None: none of its own). Budgets
    nest: the earlier deadline holds."""
    global _budget
    outer = _budget
    if seconds is not None:
        deadline = time.monotonic() + seconds
        _budget = Budget(deadline if outer is None else min(deadline, outer.deadline))
    try:
        yield
    finally:
        _budget = outer


def budget_spent() -> bool:
    """True once the current budget's deadline has passed (False outside any budget)."""
    return _budget is not None and _budget.spent()


def _usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _earliest() -> Limit:
    """The block whose deadline comes first; of blocks that share it (those a budget cut short),
    the outermost."""
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
    """Stop the block after `seconds` (None: no limit of its own) or at the end of the current
    budget, whichever comes first; check `.expired` afterwards."""
    deadline = math.inf if seconds is None else time.monotonic() + seconds
    if _budget is not None:
        deadline = min(deadline, _budget.deadline)
    if math.isinf(deadline) or not _usable():
        yield Limit(math.inf)
        return
    global _previous_handler
    limit = Limit(deadline)
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
