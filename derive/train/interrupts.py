"""Ctrl-C and SIGTERM during training: finish the step, write a checkpoint, then stop.

Inside `deferred_interrupts()` the first SIGINT or SIGTERM only sets `requested`; the training loop
looks at it after each optimizer step, writes a checkpoint of that exact position and calls
`raise_requested()`, which raises what the signal would have raised at once (KeyboardInterrupt, or
derive.signals.Terminated for SIGTERM). A second signal raises at once, without a checkpoint, and
so does the first one if the loop has not reached the end of a step GRACE_SECONDS later (a step
that hangs; a signal during the test evaluation, which finishes before the epoch's checkpoint).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from derive.signals import Terminated

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_SECONDS = 10.0


class Interrupts:
    """The signal that asked the run to stop, if any."""

    def __init__(self, timer: bool = False) -> None:
        self.signum: int | None = None
        self.timer = timer  # whether a SIGALRM handler is installed (deferred_interrupts)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """A signal handler: remember the first signal, raise on the second."""
        if self.signum is not None:
            self.raise_requested(signum)
        self.signum = signum
        if self.timer:
            signal.setitimer(signal.ITIMER_REAL, GRACE_SECONDS)

    def hold(self) -> None:
        """The loop is stopping in order (writing a checkpoint): no deadline any more."""
        if self.timer:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _late(self, signum: int, frame: FrameType | None) -> None:
        self.raise_requested()

    def raise_requested(self, signum: int | None = None) -> None:
        """Raise the exception of the signal received (KeyboardInterrupt or Terminated)."""
        self.hold()
        signum = self.signum if signum is None else signum
        if signum == signal.SIGTERM:
            raise Terminated(f"received signal {signum} (SIGTERM)")
        raise KeyboardInterrupt


NEVER = Interrupts()  # outside deferred_interrupts(): nothing is ever requested


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[Interrupts]:
    """Within the block SIGINT and SIGTERM set `requested` (main thread only; elsewhere they act as
    before and `requested` stays False)."""
    if threading.current_thread() is not threading.main_thread():
        yield Interrupts()
        return
    interrupts = Interrupts(timer=hasattr(signal, "setitimer"))
    handlers = {s: interrupts.handle for s in _SIGNALS}
    if interrupts.timer:
        handlers[signal.SIGALRM] = interrupts._late
    previous = {s: signal.signal(s, handler) for s, handler in handlers.items()}
    try:
        yield interrupts
    finally:
        interrupts.hold()
        for s, handler in previous.items():
            signal.signal(s, handler)
