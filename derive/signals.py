"""SIGTERM handled like Ctrl-C: a long run stops the same way (records "interrupted", resumable).

`kill PID`, a batch scheduler's time limit and `docker stop` send SIGTERM; without a handler Python
dies at once, leaving summary.json saying "running". Inside `terminate_as_interrupt()` SIGTERM
raises `Terminated`, a KeyboardInterrupt, so every `except KeyboardInterrupt` path (the training
loop, the simulation) records "interrupted" and the atomic writers remove their temporary file.
The CLI then exits with 143 (128 + 15, the shell's status for SIGTERM); Ctrl-C still gives 130.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; handled as an interrupt. The CLI exits with `exit_code`."""

    exit_code = 128 + signal.SIGTERM


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"received signal {signum} (SIGTERM)")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
