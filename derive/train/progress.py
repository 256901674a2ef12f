"""A throttled progress line on stderr within each epoch: batch i/n, loss, accuracy, images per second.

On a terminal the line is redrawn in place; otherwise (a log file, CI) a full line is written at most
once per interval, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Call `due()` cheaply every batch; when it says so, compute the numbers and call `show(...)`."""

    def __init__(
        self, interval: float | None = None, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = (1.0 if self.tty else 30.0) if interval is None else interval
        self.enabled = enabled and self.interval > 0
        self._last = time.monotonic()
        self._drawn = False

    def start_epoch(self) -> None:
        self._last = time.monotonic()

    def due(self) -> bool:
        return self.enabled and time.monotonic() - self._last >= self.interval

    def show(
        self,
        epoch: int,
        epochs: int,
        batch: int,
        batches: int,
        loss: float,
        acc: float,
        rate: float,
    ) -> None:
        self._last = time.monotonic()
        line = (
            f"epoch {epoch}/{epochs}  batch {batch}/{batches}  loss {loss:.4f}  "
            f"acc {100 * acc:.2f}%  {rate:,.0f} img/s"
        )
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the in-place line (before a permanent log line)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
